"""Initial schema: hosts, pci_devices, instances, instance_pci_requests, tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Written by hand to match ``pcifleet/store/models.py`` (the migration test checks
that they agree); later revisions must never edit this file.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), server_default=sa.text("'enabled'"), nullable=False),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pci_stats", sa.JSON(), nullable=False),
        sa.Column("generation", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("vcpus", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("vcpus_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("memory_mb", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("memory_mb_used", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("agent_credential_hash", sa.String(255), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    op.create_table(
        "pci_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(12), nullable=False),
        sa.Column("vendor_id", sa.String(4), nullable=False),
        sa.Column("product_id", sa.String(4), nullable=False),
        sa.Column("dev_type", sa.String(8), nullable=False),
        sa.Column("parent_addr", sa.String(12), nullable=True),
        sa.Column("numa_node", sa.Integer(), nullable=True),
        sa.Column("ifname", sa.String(16), nullable=True),
        sa.Column("driver", sa.String(64), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("pool_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), server_default=sa.text("'available'"), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("request_id", sa.String(36), nullable=True),
        sa.Column("vanished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_pci_devices_host_id_hosts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pci_devices")),
        sa.UniqueConstraint("host_id", "address", name=op.f("uq_pci_devices_host_id_address")),
    )
    op.create_index(
        "ix_pci_devices_host_pool_status", "pci_devices", ["host_id", "pool_id", "status"]
    )
    op.create_index("ix_pci_devices_host_parent", "pci_devices", ["host_id", "parent_addr"])
    op.create_index(op.f("ix_pci_devices_instance_uuid"), "pci_devices", ["instance_uuid"])

    op.create_table(
        "instances",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("flavor_id", sa.String(255), nullable=True),
        sa.Column("image_id", sa.String(255), nullable=True),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), server_default=sa.text("'BUILD'"), nullable=False),
        sa.Column("task_state", sa.String(32), nullable=True),
        sa.Column("fault", sa.JSON(), nullable=True),
        sa.Column("vcpus", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("memory_mb", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("numa_cells", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_instances")),
    )
    op.create_index(op.f("ix_instances_project_id"), "instances", ["project_id"])
    op.create_index(op.f("ix_instances_host"), "instances", ["host"])

    op.create_table(
        "instance_pci_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("specs", sa.JSON(), nullable=False),
        sa.Column("alias_name", sa.String(255), nullable=True),
        sa.Column("numa_policy", sa.String(16), server_default=sa.text("'legacy'"), nullable=False),
        sa.Column("source", sa.String(8), server_default=sa.text("'flavor'"), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_instance_pci_requests_instance_uuid_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_pci_requests")),
        sa.UniqueConstraint("request_id", name=op.f("uq_instance_pci_requests_request_id")),
    )
    op.create_index(
        op.f("ix_instance_pci_requests_instance_uuid"), "instance_pci_requests", ["instance_uuid"]
    )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index("ix_tasks_host_state", "tasks", ["host", "state"])
    op.create_index(op.f("ix_tasks_instance_uuid"), "tasks", ["instance_uuid"])


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("instance_pci_requests")
    op.drop_table("instances")
    op.drop_table("pci_devices")
    op.drop_table("hosts")
