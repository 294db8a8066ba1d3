"""The steps of a move after it was asked for (see ``moves`` for the whole story):
the ``move`` job that claims a destination, and the effect of each host task's
report. Every step is one transaction that moves the server on by compare and
swap and queues the next task, so a crash between two steps leaves a job or a
task row that is taken again, never a half-done move.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.compute import events, jobs
from pcifleet.compute.faults import server_fault
from pcifleet.compute.move_claim import MoveGone, claim_destination
from pcifleet.compute.moves import (
    EVENT_FINISH,
    EVENT_FINISH_REVERT,
    EVENT_PREP,
    EVENT_RESIZE,
    EVENT_REVERT,
    MIGRATE,
    RESIZE,
    REVERT,
    flavor_size,
    request_from_dict,
    stays_stopped,
)
from pcifleet.compute.placement import bind_ports, build_payload
from pcifleet.compute.release import server_ports, tell_scheduler
from pcifleet.compute.states import PowerState, TaskState, VmState
from pcifleet.compute.transitions import load, swap
from pcifleet.pci import InvalidNumaRequest, PciRequest, instance_numa
from pcifleet.store import claims
from pcifleet.store.cloud import Port, ServerDetails
from pcifleet.store.models import Instance, InstancePciRequest, Migration, Task
from pcifleet.virt.tasks import InstanceRef, MoveDisk, MoveSourceTask, PowerTask

# task kind -> what its report means; dispatched by ``results.apply_result``
MOVE_KINDS = ("move_source", "move_dest", "revert_dest", "revert_source", "confirm_source")


def verb_of(migration: Migration) -> str:
    return RESIZE if migration.migration_type == "resize" else MIGRATE


def port_requests(session: Session, uuid: str) -> list[PciRequest]:
    rows = session.scalars(
        select(InstancePciRequest)
        .where(InstancePciRequest.instance_uuid == uuid, InstancePciRequest.source == "port")
        .order_by(InstancePciRequest.id)
    )
    return [
        PciRequest(count=r.count, specs=[dict(s) for s in r.specs], request_id=r.request_id,
                   source=r.source, numa_policy=r.numa_policy,  # type: ignore[arg-type]
                   distinct_pf=bool(r.distinct_pf))
        for r in rows
    ]  # fmt: skip


def flavor_numa_nodes(flavor: dict[str, Any] | None) -> int | None:
    """``hw:numa_nodes`` (or dedicated CPUs' one cell) of a flavor as a server
    keeps it; a flavor that no longer parses places without NUMA."""
    specs = (flavor or {}).get("extra_specs")
    try:
        return instance_numa(specs if isinstance(specs, dict) else {}).nodes
    except InvalidNumaRequest:
        return None


def run_move(engine: Engine, job: jobs.Job) -> None:
    """Claim the destination (the scheduler's claim, never the source host) and,
    in the claim's transaction, ask the source to stop the domain."""
    uuid = job.subject or ""
    migration_id = int(job.payload.get("migration", 0))
    with Session(engine) as session:
        seen = load(session, uuid)
        migration = session.get(Migration, migration_id)
        if (
            seen is None
            or migration is None
            or seen.task_state is not TaskState.RESIZE_PREP
            or migration.status != "pre-migrating"
        ):
            jobs.finish(session, job)  # moved on, or done by an earlier run
            session.commit()
            return
        requests = port_requests(session, uuid) + [
            request_from_dict(r) for r in migration.new_requests
        ]
        vcpus, memory_mb = flavor_size(migration.new_flavor)
        numa_nodes = flavor_numa_nodes(migration.new_flavor)
        source = migration.source_compute
        verb = verb_of(migration)

    def stop_source(session: Session, result: claims.ClaimResult) -> None:
        # the destination's cells, which its build places the guest on
        if not swap(
            session, seen, task_state=TaskState.RESIZE_MIGRATING, numa_cells=result.numa_cells
        ):
            raise MoveGone(uuid)
        found = session.get(Migration, migration_id)
        assert found is not None
        found.dest_compute = result.host
        found.status = "migrating"
        session.add(
            Task(
                host=source,
                instance_uuid=uuid,
                kind="move_source",
                state="pending",
                # stop, then hand the disk over for the destination to take
                payload=MoveSourceTask(InstanceRef(uuid, seen.name), found.uuid).to_dict(),
            )
        )
        events.finish_event(session, uuid, verb, EVENT_PREP, ok=True, host=result.host,
                            final=False)  # fmt: skip
        events.begin_event(session, uuid, verb, EVENT_RESIZE, source)

    def stay(session: Session, why: str) -> None:
        # As Nova: the server stays where it was, the action says why.
        if swap(session, seen, task_state=None):
            events.finish_event(session, uuid, verb, EVENT_PREP, ok=False, details=why)

    claim_destination(
        engine,
        job,
        migration_id,
        requests,
        vcpus=vcpus,
        memory_mb=memory_mb,
        numa_nodes=numa_nodes,
        then=stop_source,
        no_host=stay,
        waiting_status="pre-migrating",
    )


def latest_migration(session: Session, uuid: str) -> Migration | None:
    return session.scalar(
        select(Migration)
        .where(Migration.instance_uuid == uuid)
        .order_by(Migration.id.desc())
        .limit(1)
    )


def _set_flavor(session: Session, uuid: str, flavor: dict[str, Any]) -> None:
    instance = session.get(Instance, uuid)
    details = session.get(ServerDetails, uuid)
    assert instance is not None
    vcpus, memory_mb = flavor_size(flavor)
    instance.vcpus, instance.memory_mb = vcpus, memory_mb
    if flavor.get("id"):
        instance.flavor_id = str(flavor["id"])
    if details is not None:
        details.flavor = dict(flavor)


def port_binding(port: Port) -> dict[str, Any]:
    return {
        "host_id": port.binding_host_id,
        "profile": dict(port.binding_profile or {}),
        "vif_type": port.vif_type,
        "vif_details": dict(port.vif_details or {}),
    }


def give_back_dest(session: Session, uuid: str, migration: Migration) -> None:
    """Free what the destination holds and put the ports and the flavor back."""
    vcpus, memory_mb = flavor_size(migration.new_flavor)
    if migration.dest_compute:
        claims.free(
            session.connection(), migration.dest_compute, uuid, vcpus=vcpus, memory_mb=memory_mb
        )
    for port in server_ports(session, uuid):
        saved = migration.port_bindings.get(port.id)
        if saved is not None:
            port.binding_host_id = saved["host_id"]
            port.binding_profile = saved["profile"]
            port.vif_type = saved["vif_type"]
            port.vif_details = saved["vif_details"]
    _set_flavor(session, uuid, migration.old_flavor)


def move_result(
    session: Session, task: Task, ok: bool, message: str, qbh: frozenset[str]
) -> list[str]:
    """The effect of a move task's report; the hosts whose devices were freed."""
    uuid = task.instance_uuid
    assert uuid is not None
    seen = load(session, uuid)
    migration = latest_migration(session, uuid)
    if seen is None or migration is None:
        return []
    verb = verb_of(migration)
    why = message or f"the {task.kind} step failed on host {task.host}"
    if task.kind == "move_source" and ok and migration.disk_sha256 is None:
        # Without the disk the destination could only start from the image,
        # losing what the guest wrote: the move fails instead.
        ok = False
        why = (
            f"host {task.host} stopped the server but handed over no disk for migration "
            f"{migration.uuid} (is its agent older than the controller?)"
        )
    if task.kind == "move_source" and seen.task_state is TaskState.RESIZE_MIGRATING:
        if not ok:
            # As Nova's rollback: active on its source, the fault recorded.
            if swap(session, seen, task_state=None, fault=server_fault(why)):
                give_back_dest(session, uuid, migration)
                migration.status = "error"
                events.finish_event(session, uuid, verb, EVENT_RESIZE, ok=False, details=why)
                return [h for h in (migration.dest_compute,) if h]
            return []
        dest = migration.dest_compute
        assert dest is not None
        if not swap(session, seen, task_state=TaskState.RESIZE_FINISH, host=dest):
            return []
        migration.port_bindings = {p.id: port_binding(p) for p in server_ports(session, uuid)}
        migration.status = "post-migrating"
        _set_flavor(session, uuid, migration.new_flavor)
        devices = claims.instance_devices_in(session.connection(), uuid, dest)
        ports = bind_ports(session, uuid, dest, devices, qbh)
        instance = session.get(Instance, uuid)
        assert instance is not None
        session.add(
            Task(
                host=dest,
                instance_uuid=uuid,
                kind="move_dest",
                state="pending",
                payload=build_payload(
                    session,
                    instance,
                    dest,
                    ports,
                    devices,
                    start=not stays_stopped(seen),
                    disk=_handed_over(migration),
                ),
            )
        )
        events.finish_event(session, uuid, verb, EVENT_RESIZE, ok=True, final=False)
        events.begin_event(session, uuid, verb, EVENT_FINISH, dest)
        return []
    if task.kind == "move_dest" and seen.task_state is TaskState.RESIZE_FINISH:
        if ok:
            power = PowerState.SHUTDOWN if stays_stopped(seen) else PowerState.RUNNING
            if swap(session, seen, vm_state=VmState.RESIZED, task_state=None, power_state=power):
                claims.allocate(session.connection(), task.host, uuid)
                for port in server_ports(session, uuid):
                    port.status = "ACTIVE"
                migration.status = "finished"
                events.finish_event(session, uuid, verb, EVENT_FINISH, ok=True, host=task.host)
            return []
        # The server goes back to its source, which keeps its devices; it is
        # stopped there, so it is an ERROR an operator (or a hard reboot) fixes.
        source = migration.source_compute
        if not swap(session, seen, vm_state=VmState.ERROR, task_state=None,
                    host=source, fault=server_fault(why)):  # fmt: skip
            return []
        give_back_dest(session, uuid, migration)
        migration.status = "error"
        events.finish_event(session, uuid, verb, EVENT_FINISH, ok=False, details=why)
        return [task.host]
    if task.kind == "revert_dest" and seen.task_state is TaskState.RESIZE_REVERTING:
        if not ok:
            if swap(session, seen, task_state=None):
                migration.status = "finished"
                events.finish_event(session, uuid, REVERT, EVENT_REVERT, ok=False, details=why)
            return []
        source = migration.source_compute
        if stays_stopped(seen):
            # Nothing to start: the source's domain was left shut off.
            if not swap(session, seen, vm_state=VmState.STOPPED, task_state=None, host=source):
                return []
            give_back_dest(session, uuid, migration)
            migration.status = "reverted"
            events.finish_event(session, uuid, REVERT, EVENT_REVERT, ok=True, host=task.host)
            return [task.host]
        if not swap(session, seen, host=source):
            return []
        give_back_dest(session, uuid, migration)
        session.add(
            Task(
                host=source,
                instance_uuid=uuid,
                kind="revert_source",
                state="pending",
                payload=PowerTask(InstanceRef(uuid, seen.name), "start").to_dict(),
            )
        )
        events.finish_event(session, uuid, REVERT, EVENT_REVERT, ok=True, final=False)
        events.begin_event(session, uuid, REVERT, EVENT_FINISH_REVERT, source)
        return [task.host]
    if task.kind == "revert_source" and seen.task_state is TaskState.RESIZE_REVERTING:
        migration.status = "reverted"
        if ok:
            swap(session, seen, vm_state=VmState.ACTIVE, task_state=None,
                 power_state=PowerState.RUNNING)  # fmt: skip
        else:
            swap(session, seen, vm_state=VmState.ERROR, task_state=None, fault=server_fault(why))
        events.finish_event(session, uuid, REVERT, EVENT_FINISH_REVERT, ok=ok,
                            details=None if ok else why, host=task.host)  # fmt: skip
        return []
    return []  # confirm_source, or a report for a step the server has left


def _handed_over(migration: Migration) -> MoveDisk:
    assert migration.disk_sha256 is not None and migration.disk_size is not None
    return MoveDisk(migration.uuid, migration.disk_sha256, migration.disk_size)


def run_move_job(engine: Engine, job: jobs.Job) -> None:
    """The worker's entry point for a ``move`` job."""
    run_move(engine, job)
    with Session(engine) as session:
        migration = latest_migration(session, job.subject or "")
        dest = migration.dest_compute if migration is not None else None
    tell_scheduler(engine, dest)
