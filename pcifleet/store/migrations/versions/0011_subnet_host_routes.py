"""Subnets keep their host routes.

Revision ID: 0011_subnet_host_routes
Revises: 0010_domains_groups
Create Date: 2026-11-27

A subnet's ``host_routes`` (``[{"destination": cidr, "nexthop": ip}, ...]``,
what DHCP hands a guest as classless static routes) live in one JSON column
beside ``dns_nameservers`` and ``allocation_pools``: they are read and
replaced whole with the subnet, never queried one by one. Existing subnets
get an empty list.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_subnet_host_routes"
down_revision: str | None = "0010_domains_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subnets") as batch:
        batch.add_column(sa.Column("host_routes", sa.JSON(), nullable=True))
    op.execute("UPDATE subnets SET host_routes = '[]'")
    with op.batch_alter_table("subnets") as batch:
        batch.alter_column("host_routes", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("subnets") as batch:
        batch.drop_column("host_routes")
