"""Hosts as compute services: why a host was disabled, and whether it is forced down.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

``os-services`` shows each host as a ``nova-compute`` service; an operator who
disables one gives a reason (``disabled_reason``) and may mark it down at once
(``forced_down``, compute microversion 2.11) instead of waiting for its
reports to age out.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite can only drop a column by rebuilding the table (downgrade)
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("disabled_reason", sa.String(255), nullable=True))
        batch.add_column(
            sa.Column("forced_down", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("forced_down")
        batch.drop_column("disabled_reason")
