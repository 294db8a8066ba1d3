"""Live migration (Nova's ``os-migrateLive``): the guest keeps running while it
moves to another host.

Steps, each one transaction with the task it asks for (task_state
``migrating`` throughout, MIGRATING; the migration's status as Nova's):

1. ``request_live_migration``: an active or paused server on a host that is
   up; a server holding alias devices only if every one is live-migratable
   (``live_migratable`` on the alias, so its spec matches only devices tagged
   so). A ``live-migration`` migration ``queued`` and a ``live_migrate`` job.
2. ``run_live``: the scheduler claims a destination (never the source;
   ``--host`` narrows it) for the same requests (same ids); inside the claim's
   transaction the destination gets ``live_prepare`` (Nova's
   pre_live_migration: image, overlay disk, bridges), ``preparing``.
3. ``live_prepare`` done: the source gets ``live_source``, ``running``: unplug
   the direct ports, and send the domain with its macvtap ports on the
   destination's VF netdevs, its devices on the destination's addresses, and
   its disk into the overlay the destination made.
4. ``live_source`` done: the ports are bound to the destination (the source
   bindings kept in the migration), the server's host is the destination,
   which gets ``live_dest``, ``post-migrating``: run the domain (defined from
   the source's XML when the driver did not migrate it itself) and plug the
   direct ports' VFs.
5. ``live_dest`` done: devices allocated there, the source freed and its
   domain and disk removed (``live_cleanup``), migration ``completed``.

A failed ``live_prepare`` or ``live_source`` gives the destination back (and
has it remove what it prepared); the source agent plugged its ports back
itself. A failed ``live_dest`` rolls back to the source: the destination
freed, the bindings restored, ``live_rollback`` plugs the source's direct
ports again (unless the driver had moved the guest already: then it is in
ERROR on the destination, which holds its devices).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.compute import events, jobs
from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict
from pcifleet.compute.faults import server_fault
from pcifleet.compute.interfaces import task_device
from pcifleet.compute.move_claim import MoveGone, Unfit, claim_destination, open_move
from pcifleet.compute.move_steps import (
    give_back_dest,
    latest_migration,
    port_binding,
    port_requests,
)
from pcifleet.compute.moves import alias_requests, flavor_size
from pcifleet.compute.placement import bind_ports, build_payload, task_port
from pcifleet.compute.preconditions import ready_for
from pcifleet.compute.release import server_ports, tell_scheduler
from pcifleet.compute.states import TaskState, VmState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.pci import PciAddress
from pcifleet.store import claims
from pcifleet.store.cloud import ServerDetails
from pcifleet.store.models import Host, Instance, Migration, Task
from pcifleet.virt.tasks import (
    DeleteTask,
    DestFiles,
    InstanceRef,
    InterfaceTask,
    InvalidTask,
    LiveDestTask,
    LiveSourceTask,
)

ACTION = "live-migration"  # Nova's instance action name
JOB = "live_migrate"
PREPARE, SOURCE, DEST = "live_prepare", "live_source", "live_dest"
ROLLBACK, CLEANUP = "live_rollback", "live_cleanup"
LIVE_KINDS = (PREPARE, SOURCE, DEST, ROLLBACK, CLEANUP)
EVENT_SCHEDULE = "conductor_live_migrate_instance"
EVENT_PREPARE = "compute_pre_live_migration"
EVENT_SOURCE = "compute_live_migration"
EVENT_DEST = "compute_post_live_migration_at_destination"
# Nova's check_instance_state for live migration.
LIVE_MOVABLE = frozenset({VmState.ACTIVE, VmState.PAUSED})
# a direct (hostdev) port cannot migrate with the guest; macvtap can
UNPLUGGED = frozenset({"direct", "direct-physical"})


def _not_live_migratable(session: Session, uuid: str) -> list[str]:
    """The aliases of the server's devices that may not move live."""
    return sorted(
        {
            r.alias_name or r.request_id
            for r in alias_requests(session, uuid)
            if not r.specs
            or any(str(s.get("live_migratable", "")).lower() != "true" for s in r.specs)
        }
    )


def request_live_migration(
    session: Session,
    ctx: Context,
    uuid: str,
    *,
    request_id: str,
    host_down_after: float,
    host: str | None = None,
) -> int:
    """Ask for the server to move while it runs; the ``live_migrate`` job's id."""
    seen = ready_for(session, uuid, ACTION, LIVE_MOVABLE, host_down_after=host_down_after)
    if host is not None:
        if host == seen.host:
            raise BadRequest(f"Unable to migrate instance ({uuid}) to current host ({host}).")
        if session.scalar(select(Host.id).where(Host.name == host)) is None:
            raise BadRequest(f"Compute host {host} could not be found.")
    fixed = _not_live_migratable(session, uuid)
    if fixed:
        raise BadRequest(
            f"Instance {uuid} holds PCI devices that cannot be live migrated (alias "
            f"{', '.join(fixed)}): every alias device needs live_migratable on its alias "
            "and its device spec"
        )
    if not swap(session, seen, task_state=TaskState.MIGRATING):
        raise Conflict(f"Cannot '{ACTION}' instance {uuid}: its state changed meanwhile")
    flavor = _flavor(session, uuid)
    return open_move(
        session,
        ctx,
        seen,
        migration_type="live-migration",
        status="queued",
        requested_host=host,
        old_flavor=flavor,
        new_flavor=flavor,
        new_requests=[],
        action=ACTION,
        event=EVENT_SCHEDULE,
        job_kind=JOB,
        request_id=request_id,
    )


def _flavor(session: Session, uuid: str) -> dict[str, Any]:
    details = session.get(ServerDetails, uuid)
    return dict(details.flavor or {}) if details is not None else {}


def _by_request(devices: list[claims.ClaimedDevice]) -> dict[str, list[claims.ClaimedDevice]]:
    out: dict[str, list[claims.ClaimedDevice]] = defaultdict(list)
    for d in sorted(devices, key=lambda d: d.address):
        out[d.request_id].append(d)
    return out


def _source_task(
    session: Session, seen: Seen, source: str, dest: str, files: DestFiles
) -> LiveSourceTask:
    conn = session.connection()
    here = _by_request(claims.instance_devices_in(conn, seen.uuid, source))
    there = _by_request(claims.instance_devices_in(conn, seen.uuid, dest))
    netdevs: dict[str, str] = {}
    unplug: list[InterfaceTask] = []
    port_requests_ids: set[str] = set()
    for port in server_ports(session, seen.uuid):
        if port.pci_request_id is None:
            continue
        port_requests_ids.add(port.pci_request_id)
        (mine,), (theirs,) = here[port.pci_request_id], there[port.pci_request_id]
        if port.vnic_type in UNPLUGGED:
            unplug.append(
                InterfaceTask(InstanceRef(seen.uuid, seen.name), task_port(port), task_device(mine))
            )
        elif theirs.ifname:
            netdevs[port.mac_address.lower()] = theirs.ifname
        else:
            raise Unfit(f"the VF {theirs.address} on {dest} has no netdev for port {port.id}")
    hostdevs = {
        PciAddress.parse(a.address): PciAddress.parse(b.address)
        for request_id, mine in here.items()
        if request_id not in port_requests_ids
        for a, b in zip(mine, there.get(request_id, []), strict=True)
    }
    return LiveSourceTask(
        InstanceRef(seen.uuid, seen.name), dest, None, netdevs, hostdevs, tuple(unplug), files
    )


def run_live(engine: Engine, job: jobs.Job) -> None:
    """Claim the destination and, in the claim's transaction, have it prepare."""
    uuid = job.subject or ""
    migration_id = int(job.payload.get("migration", 0))
    with Session(engine) as session:
        seen = load(session, uuid)
        migration = session.get(Migration, migration_id)
        if (
            seen is None
            or migration is None
            or seen.task_state is not TaskState.MIGRATING
            or migration.status != "queued"
        ):
            jobs.finish(session, job)
            session.commit()
            return
        requests = port_requests(session, uuid) + alias_requests(session, uuid)
        vcpus, memory_mb = flavor_size(migration.old_flavor)
        source = migration.source_compute

    def start_prepare(session: Session, result: claims.ClaimResult) -> None:
        # A swap to the same state: it takes the row, so a delete's swap waits or wins.
        if not swap(session, seen, task_state=TaskState.MIGRATING):
            raise MoveGone(uuid)
        found = session.get(Migration, migration_id)
        assert found is not None
        found.dest_compute = result.host
        found.status = "preparing"
        # Checked now, so a destination that cannot take the guest is never prepared.
        _source_task(session, seen, source, result.host, DestFiles())
        session.add(
            Task(
                host=result.host,
                instance_uuid=uuid,
                kind=PREPARE,
                state="pending",
                payload=_prepare_payload(session, uuid, result.host),
            )
        )
        events.finish_event(
            session, uuid, ACTION, EVENT_SCHEDULE, ok=True, final=False, host=result.host
        )
        events.begin_event(session, uuid, ACTION, EVENT_PREPARE, result.host)

    def stay(session: Session, why: str) -> None:
        # As Nova: the server runs on where it was; the action says why.
        if swap(session, seen, task_state=None):
            events.finish_event(session, uuid, ACTION, EVENT_SCHEDULE, ok=False, details=why)

    claim_destination(engine, job, migration_id, requests, vcpus=vcpus, memory_mb=memory_mb,
                      then=start_prepare, no_host=stay, waiting_status="queued")  # fmt: skip


def run_live_job(engine: Engine, job: jobs.Job) -> None:
    """The worker's entry point for a ``live_migrate`` job."""
    run_live(engine, job)
    with Session(engine) as session:
        migration = latest_migration(session, job.subject or "")
        dest = migration.dest_compute if migration is not None else None
    tell_scheduler(engine, dest)


def _prepare_payload(session: Session, uuid: str, dest: str) -> dict[str, Any]:
    """The server as a build on ``dest``, for what it needs there before it
    comes: its image, its root disk's size, its normal ports' bridges (the
    SR-IOV ports and devices are the source's until the guest has moved)."""
    instance = session.get(Instance, uuid)
    assert instance is not None
    normal = [p for p in server_ports(session, uuid) if p.pci_request_id is None]
    return build_payload(session, instance, dest, normal, [])


def _plug_tasks(session: Session, seen: Seen, host: str) -> tuple[InterfaceTask, ...]:
    """The direct ports as bound now, each with its VF on ``host``."""
    mine = _by_request(claims.instance_devices_in(session.connection(), seen.uuid, host))
    out = []
    for port in server_ports(session, seen.uuid):
        if port.pci_request_id is not None and port.vnic_type in UNPLUGGED:
            (device,) = mine[port.pci_request_id]
            out.append(
                InterfaceTask(
                    InstanceRef(seen.uuid, seen.name), task_port(port), task_device(device)
                )
            )
    return tuple(out)


def live_result(
    session: Session,
    task: Task,
    ok: bool,
    message: str,
    details: dict[str, Any],
    qbh: frozenset[str],
) -> list[str]:
    """The effect of a live migration task's report; the hosts freed."""
    uuid = task.instance_uuid
    assert uuid is not None
    seen = load(session, uuid)
    migration = latest_migration(session, uuid)
    if (
        seen is None
        or migration is None
        or seen.task_state is not TaskState.MIGRATING
        or task.kind not in (PREPARE, SOURCE, DEST)
        or task.host != (migration.dest_compute if task.kind == PREPARE else seen.host)
        or (task.kind == PREPARE) != (migration.status == "preparing")
    ):
        return []  # rollback and cleanup change nothing; late reports neither
    why = message or f"the {task.kind} step failed on host {task.host}"
    dest = migration.dest_compute
    assert dest is not None
    if task.kind in (PREPARE, SOURCE):
        if not ok:
            if not swap(session, seen, task_state=None):
                return []
            give_back_dest(session, uuid, migration)
            migration.status = "error"
            _clean_up(session, seen, dest)  # what live_prepare made there
            event = EVENT_PREPARE if task.kind == PREPARE else EVENT_SOURCE
            events.finish_event(session, uuid, ACTION, event, ok=False, details=why)
            return [dest]
        if task.kind == PREPARE:
            return _send_source(session, seen, migration, details)
        return _send_dest(session, seen, migration, details, qbh)
    if ok:
        return _completed(session, seen, migration)
    return _roll_back(session, seen, migration, task, why)


def _send_source(
    session: Session, seen: Seen, migration: Migration, details: dict[str, Any]
) -> list[str]:
    source, dest = migration.source_compute, migration.dest_compute
    assert dest is not None
    if not swap(session, seen, task_state=TaskState.MIGRATING):
        return []
    try:
        files = DestFiles.from_dict(details.get("dest_files"))
        payload = _source_task(session, seen, source, dest, files).to_dict()
    except (InvalidTask, Unfit) as exc:
        # A destination that answers nonsense (or changed meanwhile) gets nothing.
        why = f"the destination {dest} cannot take the guest: {exc}"
        swap(session, seen, task_state=None)
        give_back_dest(session, seen.uuid, migration)
        migration.status = "error"
        _clean_up(session, seen, dest)
        events.finish_event(session, seen.uuid, ACTION, EVENT_PREPARE, ok=False, details=why)
        return [dest]
    migration.status = "running"
    session.add(
        Task(host=source, instance_uuid=seen.uuid, kind=SOURCE, state="pending", payload=payload)
    )
    events.finish_event(session, seen.uuid, ACTION, EVENT_PREPARE, ok=True, final=False)
    events.begin_event(session, seen.uuid, ACTION, EVENT_SOURCE, source)
    return []


def _clean_up(session: Session, seen: Seen, host: str) -> None:
    """Have ``host`` remove the server's domain and disk (``live_cleanup``)."""
    session.add(
        Task(
            host=host,
            instance_uuid=seen.uuid,
            kind=CLEANUP,
            state="pending",
            payload=DeleteTask(InstanceRef(seen.uuid, seen.name)).to_dict(),
        )
    )


def _send_dest(
    session: Session, seen: Seen, migration: Migration, details: dict[str, Any], qbh: frozenset[str]
) -> list[str]:
    dest = migration.dest_compute
    assert dest is not None
    if not swap(session, seen, host=dest):
        return []
    migration.port_bindings = {p.id: port_binding(p) for p in server_ports(session, seen.uuid)}
    migration.status = "post-migrating"
    bind_ports(
        session,
        seen.uuid,
        dest,
        claims.instance_devices_in(session.connection(), seen.uuid, dest),
        qbh,
    )
    xml = details.get("domain_xml")
    payload = LiveDestTask(
        InstanceRef(seen.uuid, seen.name),
        xml if isinstance(xml, str) else None,
        _plug_tasks(session, seen, dest),
    ).to_dict()
    session.add(
        Task(host=dest, instance_uuid=seen.uuid, kind=DEST, state="pending", payload=payload)
    )
    events.finish_event(session, seen.uuid, ACTION, EVENT_SOURCE, ok=True, final=False)
    events.begin_event(session, seen.uuid, ACTION, EVENT_DEST, dest)
    return []


def _completed(session: Session, seen: Seen, migration: Migration) -> list[str]:
    assert seen.host is not None
    if not swap(session, seen, task_state=None, fault=None):
        return []
    conn = session.connection()
    claims.allocate(conn, seen.host, seen.uuid)
    for port in server_ports(session, seen.uuid):
        port.status = "ACTIVE"
    source = migration.source_compute
    vcpus, memory_mb = flavor_size(migration.old_flavor)
    claims.free(conn, source, seen.uuid, vcpus=vcpus, memory_mb=memory_mb)
    migration.status = "completed"
    _clean_up(session, seen, source)
    events.finish_event(session, seen.uuid, ACTION, EVENT_DEST, ok=True, host=seen.host)
    return [source]


def _roll_back(
    session: Session, seen: Seen, migration: Migration, task: Task, why: str
) -> list[str]:
    source = migration.source_compute
    # A live_dest without XML means the driver had moved the guest already; a
    # task the reconciler stands in for (no payload) is rolled back.
    if (task.payload or {}).get("domain_xml", "") is None:
        # The driver moved the guest itself: it runs there, without a port.
        if swap(session, seen, vm_state=VmState.ERROR, task_state=None, fault=server_fault(why)):
            vcpus, memory_mb = flavor_size(migration.old_flavor)
            claims.free(session.connection(), source, seen.uuid, vcpus=vcpus, memory_mb=memory_mb)
            migration.status = "error"
            events.finish_event(session, seen.uuid, ACTION, EVENT_DEST, ok=False, details=why)
            return [source]
        return []
    if not swap(session, seen, task_state=None, host=source):
        return []
    give_back_dest(session, seen.uuid, migration)
    migration.status = "error"
    assert migration.dest_compute is not None
    _clean_up(session, seen, migration.dest_compute)  # whatever of it is left there
    plug = _plug_tasks(session, seen, source)
    session.add(
        Task(
            host=source,
            instance_uuid=seen.uuid,
            kind=ROLLBACK,
            state="pending",
            payload=LiveDestTask(InstanceRef(seen.uuid, seen.name), None, plug).to_dict(),
        )
    )
    events.finish_event(session, seen.uuid, ACTION, EVENT_DEST, ok=False, details=why)
    return [task.host]
