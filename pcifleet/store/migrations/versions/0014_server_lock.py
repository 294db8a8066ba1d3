"""Servers can be locked (Nova's lock/unlock), and keep their user_data.

Revision ID: 0014_server_lock
Revises: 0013_move_disks
Create Date: 2026-11-28

``instances.locked`` is a plain column (not in the details table) because
``GET /servers?locked=`` filters on it beside the other instance columns;
``locked_by`` is "owner" or "admin" (who may unlock), ``locked_reason`` the
text given from microversion 2.73. Existing servers are unlocked.
``server_details.user_data`` keeps what a boot or rebuild was given, which a
rebuild from 2.57 answers with.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_server_lock"
down_revision: str | None = "0013_move_disks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(
            sa.Column("locked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("locked_by", sa.String(8), nullable=True))
        batch.add_column(sa.Column("locked_reason", sa.String(255), nullable=True))
    with op.batch_alter_table("server_details") as batch:
        batch.add_column(sa.Column("user_data", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_details") as batch:
        batch.drop_column("user_data")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("locked_reason")
        batch.drop_column("locked_by")
        batch.drop_column("locked")
