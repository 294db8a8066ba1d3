"""Rebuild (Nova's ``rebuild`` action): the server gets a fresh disk from an
image, possibly a new one, on the host it is on, with the ports and PCI
devices it holds.

1. ``request_rebuild``: from ACTIVE, SHUTOFF or ERROR (Nova's states) with no
   task in flight, on a host whose agent reports. One transaction moves the
   server to task_state ``rebuilding`` (status REBUILD) by compare and swap,
   records the new image, name and details the request gave, starts the
   ``rebuild`` instance action and queues a ``rebuild_in_place`` task for the
   host: the build task of a boot, carrying the claimed devices and the bound
   ports as they are, with ``start`` False for a stopped server (which stays
   stopped, as in Nova).
2. The agent destroys the domain, replaces the server's overlay with a fresh
   one on the image and defines (and starts) the domain again.
3. ``rebuild_result``: done, the server is ACTIVE again (SHUTOFF when it was
   stopped); failed, it is in ERROR with the agent's reason as its fault, and
   may be rebuilt again. Nothing is claimed or freed: the devices never move.

The task is a row written with the state change, so a crash leaves either
both or neither. A task whose lease runs out is handed out again (rebuilding
twice gives the same server) and, past its attempts, fails as above; a
rebuild whose task is gone altogether is failed by the reconciler
(``end_lost_rebuild``). An evacuation also passes through ``rebuilding``
(``pcifleet.compute.evacuate``): that one has an open ``evacuation``
migration, which ``evacuating`` tells apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute import events, keypairs
from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.faults import server_fault
from pcifleet.compute.lookup import visible_image
from pcifleet.compute.move_steps import latest_migration
from pcifleet.compute.moves import CLOSED
from pcifleet.compute.placement import build_payload
from pcifleet.compute.preconditions import ready_for
from pcifleet.compute.release import server_ports
from pcifleet.compute.states import PowerState, TaskState, VmState
from pcifleet.compute.transitions import KEEP, load, swap
from pcifleet.store import claims
from pcifleet.store.cloud import Image, ServerDetails
from pcifleet.store.models import Instance, Task, utcnow

ACTION = "rebuild"
EVENT = "compute_rebuild_instance"
# the host's task: rebuild the domain where it is (an evacuation's is "rebuild")
TASK = "rebuild_in_place"
# Nova's check_instance_state for rebuild
REBUILDABLE = frozenset({VmState.ACTIVE, VmState.STOPPED, VmState.ERROR})
# What a rebuild may change in server_details besides the instance's name.
DETAIL_FIELDS = frozenset({"metadata_", "description", "user_data", "access_ip_v4", "access_ip_v6"})


def check_image(image: Image, flavor: Mapping[str, Any]) -> None:
    """Nova's checks of a rebuild's image against the server's flavor: 400s."""
    if image.status != "active":
        raise BadRequest(f"Image {image.id} is not active.")
    ram, disk = flavor.get("ram"), flavor.get("disk")
    if isinstance(ram, int) and ram < image.min_ram:
        raise BadRequest("Flavor's memory is too small for requested image.")
    if isinstance(disk, int) and disk and disk < image.min_disk:
        raise BadRequest("Flavor's disk is too small for requested image.")


def request_rebuild(
    session: Session,
    ctx: Context,
    uuid: str,
    image_id: str,
    *,
    name: str | None = None,
    details: Mapping[str, Any] | None = None,
    key_name: str | None = KEEP,
    request_id: str,
    host_down_after: float,
) -> int:
    """Start rebuilding the server (see the module docstring); the task's id.

    ``image_id`` must name an image the caller may use (Nova's 400 otherwise);
    ``details`` are the ``ServerDetails`` columns the request sets (a key left
    out stays as it is); ``key_name`` names the caller's keypair the server
    gets from now on (None: no keypair; left out: the one it has)."""
    changes = dict(details or {})
    unknown = set(changes) - DETAIL_FIELDS
    if unknown:
        raise ValueError(f"a rebuild cannot set {sorted(unknown)}")
    try:
        image = visible_image(session, ctx, image_id)
    except NotFound:
        raise BadRequest("Cannot find image for rebuild") from None
    if key_name is not KEEP:
        pair = keypairs.for_boot(session, ctx.user_id, key_name) if key_name else None
        changes["key_name"] = pair.name if pair else None
        changes["key_data"] = pair.public_key if pair else None
    seen = ready_for(session, uuid, ACTION, REBUILDABLE, host_down_after=host_down_after)
    row = session.get(ServerDetails, uuid)
    check_image(image, dict(row.flavor or {}) if row is not None else {})
    if not swap(
        session,
        seen,
        task_state=TaskState.REBUILDING,
        image_id=image.id,
        name=KEEP if name is None else name,
    ):
        raise Conflict(f"Cannot '{ACTION}' instance {uuid}: its state changed meanwhile")
    if row is not None:
        for column, value in changes.items():
            setattr(row, column, value)
    events.start_action(
        session,
        uuid,
        ACTION,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=EVENT,
        host=seen.host,
    )
    instance = session.get(Instance, uuid)
    assert instance is not None and seen.host is not None
    session.refresh(instance)  # the swap wrote past the ORM
    devices = claims.instance_devices_in(session.connection(), uuid, seen.host)
    task = Task(
        host=seen.host,
        instance_uuid=uuid,
        kind=TASK,
        state="pending",
        payload=build_payload(
            session,
            instance,
            seen.host,
            server_ports(session, uuid),
            devices,
            start=seen.vm_state is not VmState.STOPPED,
        ),
    )
    session.add(task)
    session.flush()
    return task.id


def rebuild_result(
    session: Session, task: Task, ok: bool, message: str, details: Mapping[str, Any]
) -> None:
    """The effect of the host's ``rebuild_in_place`` report on its server."""
    uuid = task.instance_uuid
    seen = load(session, uuid) if uuid else None
    if seen is None or seen.task_state is not TaskState.REBUILDING or seen.host != task.host:
        return  # deleted meanwhile, reset by an admin, or a late second report
    if ok:
        stopped = seen.vm_state is VmState.STOPPED
        if not swap(
            session,
            seen,
            vm_state=VmState.STOPPED if stopped else VmState.ACTIVE,
            task_state=None,
            power_state=PowerState.SHUTDOWN if stopped else PowerState.RUNNING,
            fault=None,
        ):
            return
        row = session.get(ServerDetails, seen.uuid)
        if row is not None:
            row.launched_at = utcnow()
    else:
        why = message or f"the rebuild failed on host {task.host}"
        reported = details.get("power_state")
        power = PowerState.from_name(reported) if isinstance(reported, str) else None
        if not swap(
            session,
            seen,
            vm_state=VmState.ERROR,
            task_state=None,
            power_state=power,
            fault=server_fault(why),
        ):
            return
    events.finish_event(
        session,
        seen.uuid,
        ACTION,
        EVENT,
        ok=ok,
        details=None if ok else (message or "rebuild failed on the host"),
        host=task.host,
    )


def evacuating(session: Session, uuid: str) -> bool:
    """Whether the server's ``rebuilding`` is an evacuation's (it has an open
    evacuation migration), not an in-place rebuild."""
    migration = latest_migration(session, uuid)
    return (
        migration is not None
        and migration.migration_type == "evacuation"
        and migration.status not in CLOSED
    )


def end_lost_rebuild(session: Session, uuid: str) -> bool:
    """Fail an in-place rebuild whose host task is gone (cancelled, or never
    written back after a crash): ERROR, as a failed report would leave it."""
    seen = load(session, uuid)
    if seen is None or seen.task_state is not TaskState.REBUILDING or evacuating(session, uuid):
        return False
    live = session.scalar(
        select(Task.id).where(
            Task.instance_uuid == uuid, Task.kind == TASK, Task.state.in_(("pending", "running"))
        )
    )
    if live is not None:
        return False
    lost = Task(host=seen.host or "", instance_uuid=uuid, kind=TASK, state="failed", payload={})
    rebuild_result(session, lost, False, "the host's task for this rebuild was lost", {})
    return True
