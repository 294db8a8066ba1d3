"""Guest NUMA, trusted VFs and distinct PFs: a host's NUMA cells, a port's NUMA
affinity policy, and PCI requests that must land on different PFs.

Revision ID: 0007_numa_topology
Revises: 0006_identity_admin
Create Date: 2026-11-27

``hosts.numa_topology`` holds the cells an agent reports (CPUs, memory,
socket) so the scheduler can place a server with ``hw:numa_nodes`` on cells
that exist and the build can pin it there; ``ports.numa_affinity_policy`` is
Neutron's port-numa-affinity-policy field; ``instance_pci_requests.distinct_pf``
marks the requests of a server whose devices must come from different PFs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_numa_topology"
down_revision: str | None = "0006_identity_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch mode: SQLite can only drop a column by rebuilding the table (downgrade)
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("numa_topology", sa.JSON(), nullable=True))
    with op.batch_alter_table("ports") as batch:
        batch.add_column(sa.Column("numa_affinity_policy", sa.String(16), nullable=True))
    with op.batch_alter_table("instance_pci_requests") as batch:
        batch.add_column(
            sa.Column("distinct_pf", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("instance_pci_requests") as batch:
        batch.drop_column("distinct_pf")
    with op.batch_alter_table("ports") as batch:
        batch.drop_column("numa_affinity_policy")
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("numa_topology")
