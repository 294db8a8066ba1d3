"""Server moves: the ``migrations`` table (cold migrate, resize, evacuate).

Revision ID: 0005_migrations
Revises: 0004
Create Date: 2026-12-02

Named for what it adds rather than numbered alone: another branch may add its
own 0005, and the merge then only has to re-point one ``down_revision``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_migrations"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("migration_type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_compute", sa.String(255), nullable=False),
        sa.Column("dest_compute", sa.String(255), nullable=True),
        sa.Column("requested_host", sa.String(255), nullable=True),
        sa.Column("old_flavor", sa.JSON(), nullable=False),
        sa.Column("new_flavor", sa.JSON(), nullable=False),
        sa.Column("new_requests", sa.JSON(), nullable=False),
        sa.Column("port_bindings", sa.JSON(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migrations")),
        sa.UniqueConstraint("uuid", name=op.f("uq_migrations_uuid")),
    )
    op.create_index(op.f("ix_migrations_instance_uuid"), "migrations", ["instance_uuid"])
    op.create_index(op.f("ix_migrations_status"), "migrations", ["status"])


def downgrade() -> None:
    op.drop_table("migrations")
