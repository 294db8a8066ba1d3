"""Keypairs (Nova's os-keypairs), and the keypair a server was booted with.

Revision ID: 0012_keypairs
Revises: 0010_domains_groups
Create Date: 2026-11-27

A keypair belongs to a user (names are unique per user, as Nova has them) and
goes with the user. Only the public half is stored. A server keeps the name
and the public key it was booted with in ``server_details``, so deleting or
replacing the keypair afterwards leaves the server as it was, as in Nova.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_keypairs"
down_revision: str | None = "0011_subnet_host_routes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_pairs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            sa.String(36),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(8), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_key_pairs_user_id_name"),
    )
    op.create_index("ix_key_pairs_user_id", "key_pairs", ["user_id"])
    with op.batch_alter_table("server_details") as batch:
        batch.add_column(sa.Column("key_name", sa.String(255), nullable=True))
        batch.add_column(sa.Column("key_data", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_details") as batch:
        batch.drop_column("key_data")
        batch.drop_column("key_name")
    op.drop_index("ix_key_pairs_user_id", table_name="key_pairs")
    op.drop_table("key_pairs")
