"""A cold move's disk, handed from the source host to the controller.

Revision ID: 0013_move_disks
Revises: 0012_keypairs
Create Date: 2026-11-28

The source's agent uploads the server's overlay when it has stopped the
guest; the controller keeps the file under its data directory and records
its SHA-256 and size on the migration, so the destination's build can name
what it must download and check. Both stay null for moves that hand over no
disk (evacuations, live migrations, and every move before this revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_move_disks"
down_revision: str | None = "0012_keypairs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("migrations") as batch:
        batch.add_column(sa.Column("disk_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("disk_size", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("migrations") as batch:
        batch.drop_column("disk_size")
        batch.drop_column("disk_sha256")
