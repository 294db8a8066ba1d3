"""The store's core tables: hosts, their PCI devices, instances, PCI requests, tasks.

The schema itself is made by the migrations (``migrations/versions``); these
models must agree with them, which ``tests/store/test_migrations.py`` checks.
The OpenStack resource tables (users, networks, ports, flavors...) live in
``cloud.py`` with their own migration.

Device status values are those of ``pcifleet.pci.DeviceStatus``: available,
claimed, allocated, unavailable (a PF whose VF is in use, or VFs of a PF in use),
removed (vanished from the host while free).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from pcifleet.store.base import Base

UUID_LEN = 36
NAME_LEN = 255
ADDRESS_LEN = 12  # dddd:bb:ss.f


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC.

    PostgreSQL keeps the zone; SQLite stores text without it, so naive values
    read back are UTC by construction (only aware UTC values are written).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )


class Host(Timestamps, Base):
    """A compute host: its reported capacity, pools and the generation guarding them."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True, nullable=False)
    # Administrative state: "enabled" or "disabled"; liveness comes from last_report_at.
    state: Mapped[str] = mapped_column(
        String(16), nullable=False, default="enabled", server_default=text("'enabled'")
    )
    # Why an operator disabled the host (os-services disabled_reason); None when enabled.
    disabled_reason: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    # Marked down by an operator (os-services forced_down): down whatever it reports.
    forced_down: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    last_report_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The host's pools (PciPools.to_json()); always rewritten with the devices it summarises.
    pci_stats: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    # Bumped by every change of the host's devices, pools or counters; writers
    # compare-and-swap it (UPDATE ... WHERE generation = :seen).
    generation: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    vcpus_used: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    memory_mb: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    memory_mb_used: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    # The host's NUMA cells as its agent reports them (NumaTopology.to_json()),
    # null until an agent that reads them reports.
    numa_topology: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # Hash of the host agent's credential (argon2); never the secret itself.
    agent_credential_hash: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)


class PciDeviceRow(Timestamps, Base):
    """One PCI function of a host that a device_spec made assignable."""

    __tablename__ = "pci_devices"
    __table_args__ = (
        UniqueConstraint("host_id", "address"),
        # The claim path: free devices of one pool on one host.
        Index("ix_pci_devices_host_pool_status", "host_id", "pool_id", "status"),
        # PF/VF dependency updates look VFs up by their parent.
        Index("ix_pci_devices_host_parent", "host_id", "parent_addr"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False)
    address: Mapped[str] = mapped_column(String(ADDRESS_LEN), nullable=False)
    vendor_id: Mapped[str] = mapped_column(String(4), nullable=False)
    product_id: Mapped[str] = mapped_column(String(4), nullable=False)
    dev_type: Mapped[str] = mapped_column(String(8), nullable=False)
    parent_addr: Mapped[str | None] = mapped_column(String(ADDRESS_LEN), nullable=True)
    numa_node: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ifname: Mapped[str | None] = mapped_column(String(16), nullable=True)
    driver: Mapped[str | None] = mapped_column(String(64), nullable=True)
    extra: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    tags: Mapped[dict[str, str | None]] = mapped_column(JSON, nullable=False, default=dict)
    pool_id: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="available", server_default=text("'available'")
    )
    instance_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(String(UUID_LEN), nullable=True)
    # Set when the host stopped reporting a device that an instance still holds:
    # the row is kept (never silently dropped) and flagged for the operator.
    vanished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Instance(Timestamps, Base):
    """A server: what it asked for and where it runs."""

    __tablename__ = "instances"

    uuid: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flavor_id: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    image_id: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    host: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True, index=True)
    # Nova's status (BUILD, ACTIVE, SHUTOFF...), kept beside the states it is
    # derived from (pcifleet.compute.states) so lists filter on it with an index.
    status: Mapped[str] = mapped_column(
        String(16), nullable=False, default="BUILD", server_default=text("'BUILD'")
    )
    vm_state: Mapped[str] = mapped_column(
        String(16), nullable=False, default="building", server_default=text("'building'")
    )
    task_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Nova's power_state numbers: 0 nostate, 1 running, 3 paused, 4 shutdown...
    power_state: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    # Servers made by one multi-create request share a reservation id.
    reservation_id: Mapped[str | None] = mapped_column(String(UUID_LEN), nullable=True, index=True)
    launch_index: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    fault: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default=text("0"))
    memory_mb: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    # Host NUMA nodes the instance's cells are placed on (for the NUMA policy), or null.
    numa_cells: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    # Nova's lock: a locked server refuses changes from anyone but an admin;
    # locked_by ("owner" or "admin") says who may lift it.
    locked: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    locked_by: Mapped[str | None] = mapped_column(String(8), nullable=True)
    locked_reason: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)


class InstancePciRequest(Base):
    """One PCI request of an instance (from a flavor alias or an SR-IOV port)."""

    __tablename__ = "instance_pci_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid", ondelete="CASCADE"), nullable=False, index=True
    )
    request_id: Mapped[str] = mapped_column(String(UUID_LEN), unique=True, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    specs: Mapped[list[dict[str, str | None]]] = mapped_column(JSON, nullable=False)
    alias_name: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    numa_policy: Mapped[str] = mapped_column(
        String(16), nullable=False, default="legacy", server_default=text("'legacy'")
    )
    source: Mapped[str] = mapped_column(
        String(8), nullable=False, default="flavor", server_default=text("'flavor'")
    )
    distinct_pf: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


class Task(Timestamps, Base):
    """Work for a host agent (build, delete, power, console...), fed in id order.

    A task handed to an agent is leased until ``leased_until``; one whose lease
    ran out is handed out again (``attempts`` counts) or failed by the reconciler.
    """

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_host_state", "host", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    instance_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # pending -> running -> done | failed; pending -> cancelled (its server went away)
    state: Mapped[str] = mapped_column(
        String(16), nullable=False, default="pending", server_default=text("'pending'")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Job(Timestamps, Base):
    """The controller's own durable work (scheduling a server...), taken by workers
    with a lease; a row is deleted in the transaction that finishes its work."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_not_before", "state", "not_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    # what the job is about: a server's uuid, or a multi-create's reservation id
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # pending -> running (leased); a lease that runs out makes it takeable again
    state: Mapped[str] = mapped_column(
        String(16), nullable=False, default="pending", server_default=text("'pending'")
    )
    attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    leased_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class InstanceAction(Base):
    """One user-visible action on a server (Nova's os-instance-actions record)."""

    __tablename__ = "instance_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False, index=True)
    request_id: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    finish_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # None while it runs or after success; "Error" when an event failed (as Nova)
    message: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False, default=utcnow)


class InstanceActionEvent(Base):
    """A step of an action (scheduling, the host's work) with its outcome."""

    __tablename__ = "instance_action_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    host: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    finish_time: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # None while running, then "Success" or "Error"
    result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    details: Mapped[str | None] = mapped_column(String(1024), nullable=True)


class Migration(Timestamps, Base):
    """One move of a server (Nova's migration record): a cold migration, a
    resize, an evacuation. Open while the server may hold devices on both hosts;
    ``port_bindings`` keeps each port's source binding for a revert."""

    __tablename__ = "migrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False, unique=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False, index=True)
    # migration, resize, evacuation (Nova's migration_type)
    migration_type: Mapped[str] = mapped_column(String(16), nullable=False)
    # Nova's words: pre-migrating, migrating, post-migrating, finished, confirmed,
    # reverting, reverted, done, error, failed
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    source_compute: Mapped[str] = mapped_column(String(NAME_LEN), nullable=False)
    dest_compute: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    # the host the user asked for (migrate --host), if any
    requested_host: Mapped[str | None] = mapped_column(String(NAME_LEN), nullable=True)
    old_flavor: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    new_flavor: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # the new flavor's alias PCI requests (dicts), taken over by the server on confirm
    new_requests: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    # port id -> its binding on the source (host_id, profile, vif_details)
    port_bindings: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the server's disk as the source handed it to the controller (a cold move)
    disk_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disk_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Core handles for the hot paths (plain statements, no ORM unit of work).
hosts_table = cast(Table, Host.__table__)
pci_devices_table = cast(Table, PciDeviceRow.__table__)
instances_table = cast(Table, Instance.__table__)
instance_pci_requests_table = cast(Table, InstancePciRequest.__table__)
tasks_table = cast(Table, Task.__table__)
jobs_table = cast(Table, Job.__table__)
instance_actions_table = cast(Table, InstanceAction.__table__)
instance_action_events_table = cast(Table, InstanceActionEvent.__table__)
migrations_table = cast(Table, Migration.__table__)
