"""Hardening: tokens remember the token they came from; failed logins are counted.

Revision ID: 0009_hardening
Revises: 0007_numa_topology
Create Date: 2026-11-27

``tokens.parent_audit_id`` is the audit id of the token a token was issued
from (Keystone's second ``audit_ids`` entry): revoking a token revokes every
token issued from it, as Keystone's revocation by audit chain does.
``login_failures`` counts failed password logins per user name and per client
address in a fixed window, so several controllers sharing one database share
one limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_hardening"
down_revision: str | None = "0007_numa_topology"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("parent_audit_id", sa.String(32), nullable=True))
        batch.create_index("ix_tokens_parent_audit_id", ["parent_audit_id"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(320), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_parent_audit_id")
        batch.drop_column("parent_audit_id")
