"""Evacuate (Nova's ``evacuate`` action): rebuild a server whose host is down on
another host, with fresh claims taken by the same scheduler and claim code as
a boot or a move.

Three steps, each one transaction, like a move's:

1. ``request_evacuate``: only when the server's host is down (Nova's
   ComputeServiceInUse otherwise); the server moves to task_state
   ``rebuilding`` (compare and swap), an ``evacuation`` migration is recorded
   and an ``evacuate`` job queued.
2. ``run_evacuate``: the scheduler claims a new host (never the old one;
   ``--host`` narrows it) for the flavor's alias requests and a VF per SR-IOV
   port, under the same request ids. Inside the claim's transaction the server
   moves to ``rebuild_spawning`` on the new host, its ports are bound to the
   new host's VFs (their old binding kept in the migration) and a ``rebuild``
   task asks the new host to build the domain (defined only, for a stopped
   server, which stays stopped as before microversion 2.95). No valid host:
   ERROR with a fault, as Nova's conductor does; the old host's claims stay,
   so it can be evacuated again.
3. The ``rebuild`` report (``rebuild_result``): built, the old host's claims
   are freed and the migration is ``done``; the old host's instance list no
   longer names the server, so its agent destroys the stale domain when it
   comes back. Failed: the new host is freed, the ports bound as before and
   the server is in ERROR on its old host, evacuable again.

The old host keeps its claims until the rebuild succeeded, so a delete at any
step frees both ends (``moves.close_moves``) and nothing is ever held twice
for one request, nor leaked.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.compute import events, jobs
from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.faults import server_fault
from pcifleet.compute.hosts import host_is_up
from pcifleet.compute.move_claim import MoveGone, claim_destination, open_move
from pcifleet.compute.move_steps import (
    flavor_numa_nodes,
    give_back_dest,
    latest_migration,
    port_binding,
    port_requests,
)
from pcifleet.compute.moves import alias_requests, flavor_size, request_from_dict, request_to_dict
from pcifleet.compute.placement import bind_ports, build_payload
from pcifleet.compute.preconditions import ready_for
from pcifleet.compute.release import server_ports, tell_scheduler
from pcifleet.compute.states import PowerState, TaskState, VmState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.store import claims
from pcifleet.store.cloud import ServerDetails
from pcifleet.store.models import Host, Instance, Migration, Task

EVACUATE = "evacuate"
REBUILD = "rebuild"  # the new host's task
EVENT_SCHEDULE = "conductor_rebuild_server"
EVENT_REBUILD = "compute_rebuild_instance"
# Nova's check_instance_state for evacuate.
EVACUABLE = frozenset({VmState.ACTIVE, VmState.STOPPED, VmState.ERROR})


def request_evacuate(
    session: Session,
    ctx: Context,
    uuid: str,
    *,
    request_id: str,
    host_down_after: float,
    host: str | None = None,
) -> int:
    """Ask for the server to be rebuilt elsewhere; the ``evacuate`` job's id."""
    seen = ready_for(session, uuid, EVACUATE, EVACUABLE)
    if not seen.host:
        raise Conflict(f"Cannot '{EVACUATE}' instance {uuid}: it is not on any host")
    if host_is_up(session, seen.host, host_down_after):
        # Nova answers ComputeServiceInUse with a 400 too.
        raise BadRequest(f"Compute service of {seen.host} is still in use.")
    if host is not None:
        if host == seen.host:
            raise BadRequest("The target host can't be the same one.")
        if session.scalar(select(Host.id).where(Host.name == host)) is None:
            raise NotFound(f"Compute host {host} could not be found.")
    if not swap(session, seen, task_state=TaskState.REBUILDING):
        raise Conflict(f"Cannot '{EVACUATE}' instance {uuid}: its state changed meanwhile")
    details = session.get(ServerDetails, uuid)
    flavor = dict(details.flavor or {}) if details is not None else {}
    return open_move(
        session,
        ctx,
        seen,
        migration_type="evacuation",
        status="pre-migrating",
        requested_host=host,
        old_flavor=flavor,
        new_flavor=flavor,
        new_requests=[request_to_dict(r) for r in alias_requests(session, uuid)],
        action=EVACUATE,
        event=EVENT_SCHEDULE,
        job_kind=EVACUATE,
        request_id=request_id,
    )


def run_evacuate(engine: Engine, job: jobs.Job, qbh: frozenset[str] = frozenset()) -> None:
    """Claim a new host and, in the claim's transaction, bind the ports there
    and ask it to build the domain."""
    uuid = job.subject or ""
    migration_id = int(job.payload.get("migration", 0))
    with Session(engine) as session:
        seen = load(session, uuid)
        migration = session.get(Migration, migration_id)
        if (
            seen is None
            or migration is None
            or seen.task_state is not TaskState.REBUILDING
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

    def rebuild_there(session: Session, result: claims.ClaimResult) -> None:
        if not swap(
            session,
            seen,
            task_state=TaskState.REBUILD_SPAWNING,
            host=result.host,
            numa_cells=result.numa_cells,
        ):
            raise MoveGone(uuid)
        found = session.get(Migration, migration_id)
        instance = session.get(Instance, uuid)
        assert found is not None and instance is not None
        found.dest_compute = result.host
        found.status = "migrating"
        found.port_bindings = {p.id: port_binding(p) for p in server_ports(session, uuid)}
        devices = claims.instance_devices_in(session.connection(), uuid, result.host)
        ports = bind_ports(session, uuid, result.host, devices, qbh)
        stopped = seen.vm_state is VmState.STOPPED
        session.add(
            Task(
                host=result.host,
                instance_uuid=uuid,
                kind=REBUILD,
                state="pending",
                payload=build_payload(
                    session, instance, result.host, ports, devices, start=not stopped
                ),
            )
        )
        events.finish_event(session, uuid, EVACUATE, EVENT_SCHEDULE, ok=True, final=False)
        events.begin_event(session, uuid, EVACUATE, EVENT_REBUILD, result.host)

    def fail(session: Session, why: str) -> None:
        # As Nova's conductor: ERROR with the reason; still on the old host.
        if swap(session, seen, vm_state=VmState.ERROR, task_state=None, fault=server_fault(why)):
            events.finish_event(session, uuid, EVACUATE, EVENT_SCHEDULE, ok=False, details=why)

    claim_destination(
        engine,
        job,
        migration_id,
        requests,
        vcpus=vcpus,
        memory_mb=memory_mb,
        numa_nodes=numa_nodes,
        then=rebuild_there,
        no_host=fail,
        waiting_status="pre-migrating",
    )


def run_evacuate_job(engine: Engine, job: jobs.Job, qbh: frozenset[str] = frozenset()) -> None:
    """The worker's entry point for an ``evacuate`` job."""
    run_evacuate(engine, job, qbh)
    with Session(engine) as session:
        migration = latest_migration(session, job.subject or "")
        dest = migration.dest_compute if migration is not None else None
    tell_scheduler(engine, dest)


def rebuild_result(session: Session, task: Task, ok: bool, message: str) -> list[str]:
    """The effect of the new host's ``rebuild`` report; the hosts freed."""
    uuid = task.instance_uuid
    assert uuid is not None
    seen = load(session, uuid)
    migration = latest_migration(session, uuid)
    if (
        seen is None
        or migration is None
        or seen.task_state is not TaskState.REBUILD_SPAWNING
        or seen.host != task.host
    ):
        return []  # deleted meanwhile, or a late report of a step already ended
    if ok:
        return _rebuilt(session, seen, task.host, migration)
    why = message or f"the rebuild failed on host {task.host}"
    source = migration.source_compute
    if not swap(session, seen, vm_state=VmState.ERROR, task_state=None, host=source,
                fault=server_fault(why)):  # fmt: skip
        return []
    give_back_dest(session, uuid, migration)
    migration.status = "failed"
    events.finish_event(session, uuid, EVACUATE, EVENT_REBUILD, ok=False, details=why,
                        host=task.host)  # fmt: skip
    return [task.host]


def _rebuilt(session: Session, seen: Seen, host: str, migration: Migration) -> list[str]:
    stopped = seen.vm_state is VmState.STOPPED
    power = PowerState.SHUTDOWN if stopped else PowerState.RUNNING
    done = VmState.STOPPED if stopped else VmState.ACTIVE
    if not swap(session, seen, vm_state=done, task_state=None, power_state=power, fault=None):
        return []
    claims.allocate(session.connection(), host, seen.uuid)
    for port in server_ports(session, seen.uuid):
        port.status = "ACTIVE"
    source = migration.source_compute
    vcpus, memory_mb = flavor_size(migration.old_flavor)
    claims.free(session.connection(), source, seen.uuid, vcpus=vcpus, memory_mb=memory_mb)
    migration.status = "done"
    events.finish_event(session, seen.uuid, EVACUATE, EVENT_REBUILD, ok=True, host=host)
    return [source]
