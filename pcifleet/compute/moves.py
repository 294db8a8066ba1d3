"""Cold migrate and resize, as Nova does them: asked for here, carried out by the
``move`` job and the hosts' agents (``move_steps``), then confirmed or reverted.

A move is a row in ``migrations`` and a run of compare-and-swaps on the server:

- asked (``request_move``): task_state ``resize_prep``, a ``move`` job, the
  migration ``pre-migrating``;
- destination claimed (the new flavor's aliases and a VF per SR-IOV port, same
  request ids): ``resize_migrating``, the source stops its domain;
- source stopped: ``resize_finish``; the ports are bound on the destination
  (their source binding kept in the migration), the server's host is the
  destination, which builds the domain;
- built: vm_state ``resized`` (VERIFY_RESIZE), devices held on both hosts;
- confirmed (``confirm``): ``active``, the source's devices freed and its
  domain destroyed;
- reverted (``revert``): ``resize_reverting`` while the destination destroys
  its domain and frees its devices, the ports are bound on the source again
  and the source starts its domain; then ``active``.

Any failure gives back what the destination took and leaves the server on its
source; a delete at any point frees both hosts (``close_moves``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.move_claim import open_move
from pcifleet.compute.preconditions import ready_for
from pcifleet.compute.states import PowerState, TaskState, VmState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.pci import Alias, InvalidAlias, InvalidPciRequest, PciRequest, requests_from_flavor
from pcifleet.store import claims
from pcifleet.store.cloud import Flavor, ServerDetails
from pcifleet.store.models import Instance, InstancePciRequest, Migration, Task
from pcifleet.virt.tasks import DeleteTask, InstanceRef

MOVE = "move"
MIGRATE = "migrate"
RESIZE = "resize"
CONFIRM = "confirmResize"
REVERT = "revertResize"
EVENT_PREP = "compute_prep_resize"
EVENT_RESIZE = "compute_resize_instance"
EVENT_FINISH = "compute_finish_resize"
EVENT_CONFIRM = "compute_confirm_resize"
EVENT_REVERT = "compute_revert_resize"
EVENT_FINISH_REVERT = "compute_finish_revert_resize"
# Nova's check_instance_state for migrate and resize. A stopped server keeps
# power_state SHUTDOWN through its move: the destination only defines its
# domain, and confirm and revert leave it stopped (``stays_stopped``).
MOVABLE = frozenset({VmState.ACTIVE, VmState.STOPPED})
# Migration statuses after which the server holds devices on one host only.
# (completed: a live migration's end)
CLOSED = frozenset({"confirmed", "reverted", "error", "failed", "done", "completed"})


def request_to_dict(r: PciRequest) -> dict[str, Any]:
    return {
        "count": r.count,
        "specs": [dict(s) for s in r.specs],
        "request_id": r.request_id,
        "alias_name": r.alias_name,
        "numa_policy": r.numa_policy.value,
        "source": r.source,
        "distinct_pf": r.distinct_pf,
    }


def request_from_dict(d: Mapping[str, Any]) -> PciRequest:
    return PciRequest(
        count=int(d["count"]),
        specs=[dict(s) for s in d["specs"]],
        request_id=str(d["request_id"]),
        alias_name=d.get("alias_name"),
        numa_policy=d.get("numa_policy") or "legacy",  # type: ignore[arg-type]
        source=d.get("source") or "flavor",
        distinct_pf=bool(d.get("distinct_pf", False)),
    )


def alias_requests(session: Session, uuid: str) -> list[PciRequest]:
    rows = session.scalars(
        select(InstancePciRequest)
        .where(InstancePciRequest.instance_uuid == uuid, InstancePciRequest.source != "port")
        .order_by(InstancePciRequest.id)
    )
    return [
        PciRequest(
            count=r.count,
            specs=[dict(s) for s in r.specs],
            request_id=r.request_id,
            alias_name=r.alias_name,
            numa_policy=r.numa_policy,  # type: ignore[arg-type]
            source=r.source,
        )
        for r in rows
    ]


def open_migration(session: Session, uuid: str) -> Migration | None:
    """The server's move that is not over yet, if any."""
    return session.scalar(
        select(Migration)
        .where(Migration.instance_uuid == uuid, Migration.status.not_in(CLOSED))
        .order_by(Migration.id.desc())
        .limit(1)
    )


def _movable(session: Session, uuid: str, verb: str, down_after: float) -> Seen:
    return ready_for(session, uuid, verb, MOVABLE, host_down_after=down_after)


def request_move(
    session: Session,
    ctx: Context,
    uuid: str,
    *,
    request_id: str,
    host_down_after: float,
    new_flavor: Flavor | None = None,
    flavor_snapshot: dict[str, Any] | None = None,
    extra_specs: Mapping[str, str] | None = None,
    aliases: Mapping[str, list[Alias]] | None = None,
    host: str | None = None,
) -> int:
    """A cold migration (``new_flavor`` None) or a resize; the ``move`` job's id.

    One transaction: the server moves to ``resize_prep`` (compare and swap),
    the migration is recorded, and the job that claims a destination queued.
    """
    verb = MIGRATE if new_flavor is None else RESIZE
    seen = _movable(session, uuid, verb, host_down_after)
    instance = session.get(Instance, uuid)
    assert instance is not None and seen.host is not None
    if host is not None and host == seen.host:
        raise BadRequest(f"The target host {host} is the server's own host.")
    details = session.get(ServerDetails, uuid)
    old = dict(details.flavor or {}) if details is not None else {}
    if new_flavor is None:
        new = old
        new_requests = alias_requests(session, uuid)
    else:
        if new_flavor.id == instance.flavor_id:
            raise BadRequest("When resizing, instances must change flavor!")
        new = dict(flavor_snapshot or {})
        check_root_disk(old, new)
        try:
            new_requests = requests_from_flavor(extra_specs or {}, aliases or {})
        except (InvalidAlias, InvalidPciRequest) as exc:
            raise BadRequest(f"The flavor's extra specs are invalid: {exc}") from None
    if not swap(session, seen, task_state=TaskState.RESIZE_PREP):
        raise Conflict(f"Cannot '{verb}' instance {uuid}: its state changed meanwhile")
    return open_move(
        session,
        ctx,
        seen,
        migration_type="migration" if new_flavor is None else "resize",
        status="pre-migrating",
        requested_host=host,
        old_flavor=old,
        new_flavor=new,
        new_requests=[request_to_dict(r) for r in new_requests],
        action=verb,
        event=EVENT_PREP,
        job_kind=MOVE,
        request_id=request_id,
    )


def check_root_disk(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """A resize never shrinks the server's disk, which the move carries over
    (Nova: the API refuses a zero-disk flavor, its libvirt driver a smaller one)."""
    old_gb, new_gb = int(old.get("disk") or 0), int(new.get("disk") or 0)
    if new_gb == 0 and old_gb > 0:
        raise BadRequest("Resize to zero disk flavor is not allowed.")
    if new_gb < old_gb:
        raise BadRequest(
            f"Unable to resize disk down: the new flavor's root disk is {new_gb} GB, "
            f"the server's {old_gb} GB."
        )


def _resized(session: Session, uuid: str, verb: str) -> tuple[Seen, Migration]:
    seen = load(session, uuid)
    if seen is None or seen.vm_state is VmState.DELETED:
        raise NotFound(f"Instance {uuid} could not be found.")
    if seen.task_state is not None:
        raise Conflict(
            f"Cannot '{verb}' instance {uuid} while it is in task_state {seen.task_state.value}"
        )
    if seen.vm_state is not VmState.RESIZED:
        raise Conflict(
            f"Cannot '{verb}' instance {uuid} while it is in vm_state {seen.vm_state.value}"
        )
    migration = open_migration(session, uuid)
    if migration is None or migration.status != "finished":
        raise BadRequest(f"Instance {uuid} has no migration waiting to be confirmed or reverted.")
    return seen, migration


def stays_stopped(seen: Seen) -> bool:
    """Whether a moving server was stopped when its move began: its power_state
    says so until the move is over, since nothing starts it meanwhile."""
    return seen.power_state is PowerState.SHUTDOWN


def flavor_size(flavor: Mapping[str, Any]) -> tuple[int, int]:
    """(vcpus, memory_mb) of a flavor snapshot."""
    return int(flavor.get("vcpus") or 0), int(flavor.get("ram") or 0)


def confirm(
    session: Session,
    ctx: Context,
    uuid: str,
    *,
    request_id: str,
) -> str:
    """Keep the server where it moved: the source's devices freed and its domain
    destroyed. Returns the source host (tell the scheduler after commit)."""
    seen, migration = _resized(session, uuid, CONFIRM)
    done = VmState.STOPPED if stays_stopped(seen) else VmState.ACTIVE
    if not swap(session, seen, vm_state=done, task_state=None):
        raise Conflict(f"Cannot '{CONFIRM}' instance {uuid}: its state changed meanwhile")
    source = migration.source_compute
    vcpus, memory_mb = flavor_size(migration.old_flavor)
    claims.free(session.connection(), source, uuid, vcpus=vcpus, memory_mb=memory_mb)
    if migration.migration_type == "resize":
        adopt_requests(session, uuid, migration)
    migration.status = "confirmed"
    session.add(
        Task(
            host=source,
            instance_uuid=uuid,
            kind="confirm_source",
            state="pending",
            payload=DeleteTask(InstanceRef(uuid, seen.name)).to_dict(),
        )
    )
    events.start_action(
        session,
        uuid,
        CONFIRM,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
    )
    events.finish_event(session, uuid, CONFIRM, EVENT_CONFIRM, ok=True, host=source)
    session.flush()
    return source


def adopt_requests(session: Session, uuid: str, migration: Migration) -> None:
    """The server's flavor requests become the new flavor's (a confirmed resize)."""
    for row in session.scalars(
        select(InstancePciRequest).where(
            InstancePciRequest.instance_uuid == uuid, InstancePciRequest.source != "port"
        )
    ):
        session.delete(row)
    session.flush()
    for data in migration.new_requests:
        r = request_from_dict(data)
        session.add(
            InstancePciRequest(
                instance_uuid=uuid,
                request_id=r.request_id,
                count=r.count,
                specs=r.specs,
                alias_name=r.alias_name,
                numa_policy=r.numa_policy.value,
                source=r.source,
                distinct_pf=r.distinct_pf,
            )
        )


def revert(session: Session, ctx: Context, uuid: str, *, request_id: str) -> int:
    """Go back to the source: the destination destroys its domain first
    (``move_steps`` carries on from its report). The task's id."""
    seen, migration = _resized(session, uuid, REVERT)
    if not swap(session, seen, task_state=TaskState.RESIZE_REVERTING):
        raise Conflict(f"Cannot '{REVERT}' instance {uuid}: its state changed meanwhile")
    migration.status = "reverting"
    assert seen.host is not None
    task = Task(
        host=seen.host,
        instance_uuid=uuid,
        kind="revert_dest",
        state="pending",
        payload=DeleteTask(InstanceRef(uuid, seen.name)).to_dict(),
    )
    session.add(task)
    events.start_action(
        session,
        uuid,
        REVERT,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=EVENT_REVERT,
        host=seen.host,
    )
    session.flush()
    return task.id


def close_moves(session: Session, seen: Seen) -> list[str]:
    """The server is going away: free what an unfinished move holds on the host
    that is not ``seen.host`` (the other end), and close the migration. Returns
    the hosts freed."""
    freed: list[str] = []
    migration = open_migration(session, seen.uuid)
    if migration is None:
        return freed
    for host, flavor in (
        (migration.source_compute, migration.old_flavor),
        (migration.dest_compute, migration.new_flavor),
    ):
        if host and host != seen.host:
            vcpus, memory_mb = flavor_size(flavor)
            claims.free(session.connection(), host, seen.uuid, vcpus=vcpus, memory_mb=memory_mb)
            freed.append(host)
    migration.status = "error"
    session.flush()
    return freed


def moving_here(session: Session, host: str) -> set[str]:
    """Servers whose unfinished move has ``host`` at one end: their domain there
    must survive an orphan sweep until the move is confirmed or reverted."""
    rows = session.execute(
        select(Migration.instance_uuid, Migration.source_compute, Migration.dest_compute).where(
            Migration.status.not_in(CLOSED)
        )
    ).all()
    return {uuid for uuid, source, dest in rows if host in (source, dest)}
