"""Indexes for the two lookups every boot makes by a column that had none.

Revision ID: 0015_boot_indexes
Revises: 0014_server_lock
Create Date: 2026-11-28

A schedule job finds its servers by ``instances.reservation_id`` and labels
a server's PCI requests with their ports by ``ports.pci_request_id``; both
scanned the whole table, so every boot cost more as the cloud grew.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015_boot_indexes"
down_revision: str | None = "0014_server_lock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_instances_reservation_id", "instances", ["reservation_id"])
    op.create_index("ix_ports_pci_request_id", "ports", ["pci_request_id"])


def downgrade() -> None:
    op.drop_index("ix_ports_pci_request_id", table_name="ports")
    op.drop_index("ix_instances_reservation_id", table_name="instances")
