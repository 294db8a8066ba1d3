"""Durable server lifecycle: server states, leased agent tasks, jobs, actions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

``instances`` gains Nova's ``vm_state`` and ``power_state`` beside ``status``
(filled in from it), a reservation id and launch index for multi-create, and
``deleted_at``. Agent ``tasks`` get a lease. ``jobs`` holds the controller's own
work; ``instance_actions`` and their events are what ``server event list`` shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# status -> (vm_state, power_state) for rows written before this revision
_STATES = {
    "BUILD": ("building", 0),
    "ACTIVE": ("active", 1),
    "ERROR": ("error", 0),
    "DELETED": ("deleted", 0),
}


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(
            sa.Column("vm_state", sa.String(16), nullable=False, server_default="building")
        )
        batch.add_column(
            sa.Column("power_state", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("reservation_id", sa.String(36), nullable=True))
        batch.add_column(
            sa.Column("launch_index", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    instances = sa.table(
        "instances",
        sa.column("status", sa.String),
        sa.column("vm_state", sa.String),
        sa.column("power_state", sa.Integer),
    )
    for status, (vm_state, power) in _STATES.items():
        op.execute(
            instances.update()
            .where(instances.c.status == status)
            .values(vm_state=vm_state, power_state=power)
        )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(
            sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(1024), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_state_not_before", "jobs", ["state", "not_before"])
    op.create_index(op.f("ix_jobs_subject"), "jobs", ["subject"])
    op.create_table(
        "instance_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("project_id", sa.String(64), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message", sa.String(255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_actions")),
    )
    op.create_index(
        op.f("ix_instance_actions_instance_uuid"), "instance_actions", ["instance_uuid"]
    )
    op.create_table(
        "instance_action_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("details", sa.String(1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["instance_actions.id"],
            name=op.f("fk_instance_action_events_action_id_instance_actions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instance_action_events")),
    )
    op.create_index(
        op.f("ix_instance_action_events_action_id"), "instance_action_events", ["action_id"]
    )


def downgrade() -> None:
    op.drop_table("instance_action_events")
    op.drop_table("instance_actions")
    op.drop_table("jobs")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("leased_until")
        batch.drop_column("attempts")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("launch_index")
        batch.drop_column("reservation_id")
        batch.drop_column("power_state")
        batch.drop_column("vm_state")
