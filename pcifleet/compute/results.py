"""What an agent's report of a finished task means for its server.

``apply_result`` runs in the transaction that records the task's result, so
the task cannot end without its effect (nor the effect happen twice: the route
answers a repeated report from the recorded result). Every effect is a
compare-and-swap from the state the task was started for: a build that
finishes after its server was deleted changes nothing, a deleted server never
comes back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.actions import event_name
from pcifleet.compute.boot import CREATE, EVENT_BUILD
from pcifleet.compute.delete import DELETE, EVENT_TERMINATE, finish_delete
from pcifleet.compute.evacuate import REBUILD, rebuild_result
from pcifleet.compute.faults import server_fault
from pcifleet.compute.interfaces import ATTACH, DETACH, attach_done, detach_done
from pcifleet.compute.live import LIVE_KINDS, live_result
from pcifleet.compute.move_steps import MOVE_KINDS, move_result
from pcifleet.compute.placement import fail_build
from pcifleet.compute.rebuild import TASK as REBUILD_IN_PLACE
from pcifleet.compute.rebuild import rebuild_result as rebuilt_in_place
from pcifleet.compute.states import ACTIONS, PowerState, TaskState, VmState
from pcifleet.compute.transitions import load, swap
from pcifleet.store import claims
from pcifleet.store.cloud import Port, ServerDetails
from pcifleet.store.models import Task, utcnow
from pcifleet.virt.tasks import InvalidTask, PowerAction, PowerTask

_BY_AGENT_ACTION = {a.agent: a for a in ACTIONS.values()}


def apply_result(
    session: Session,
    task: Task,
    ok: bool,
    message: str,
    details: dict[str, Any],
    *,
    qbh_physical_networks: frozenset[str] = frozenset(),
) -> str | None:
    """The task's effect on its server; the host whose devices were freed, if any.

    ``qbh_physical_networks`` is the setting a move needs to bind ports on its
    destination."""
    uuid = task.instance_uuid
    if uuid is None:
        return None
    if task.kind == "build":
        if ok:
            complete_build(session, uuid, task.host)
            return None
        return fail_build(session, uuid, message or "Build of the server failed on its host")
    if task.kind == "delete":
        return _delete_done(session, uuid, ok, message)
    if task.kind in MOVE_KINDS:
        freed = move_result(session, task, ok, message, qbh_physical_networks)
        return freed[0] if freed else None
    if task.kind in LIVE_KINDS:
        freed = live_result(session, task, ok, message, details, qbh_physical_networks)
        return freed[0] if freed else None
    if task.kind == REBUILD:
        freed = rebuild_result(session, task, ok, message)
        return freed[0] if freed else None
    if task.kind == REBUILD_IN_PLACE:
        rebuilt_in_place(session, task, ok, message, details)
        return None
    if task.kind == ATTACH:
        return attach_done(session, task, ok, message)
    if task.kind == DETACH:
        return detach_done(session, task, ok, message)
    if task.kind == "power":
        try:
            agent_action = PowerTask.from_dict(task.payload).action
        except InvalidTask:
            return None  # not a power task this controller wrote: nothing to finish
        _action_done(session, uuid, agent_action, ok, message, details)
    return None  # console: the recorded result is all there is


def complete_build(session: Session, uuid: str, host: str) -> bool:
    """The agent built the domain: devices allocated, ports and server ACTIVE."""
    seen = load(session, uuid)
    if (
        seen is None
        or seen.vm_state is not VmState.BUILDING
        or seen.task_state is not TaskState.SPAWNING
        or seen.host != host
    ):
        return False
    if not swap(
        session,
        seen,
        vm_state=VmState.ACTIVE,
        task_state=None,
        power_state=PowerState.RUNNING,
        fault=None,
    ):
        return False
    claims.allocate(session.connection(), host, uuid)
    # plain UPDATEs: a build result needs none of these rows read back
    now = utcnow()
    session.execute(
        update(Port)
        .where(Port.device_id == uuid)
        .values(status="ACTIVE", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(ServerDetails)
        .where(ServerDetails.instance_uuid == uuid)
        .values(launched_at=now)
        .execution_options(synchronize_session=False)
    )
    events.finish_event(session, uuid, CREATE, EVENT_BUILD, ok=True, host=host)
    return True


def _delete_done(session: Session, uuid: str, ok: bool, message: str) -> str | None:
    seen = load(session, uuid)
    if seen is None or seen.task_state is not TaskState.DELETING:
        return None  # deleted locally already, or never asked
    if ok:
        return finish_delete(session, seen)
    why = message or "Delete of the server failed on its host"
    # The domain may still run there: the claim stays until a delete succeeds.
    if swap(session, seen, vm_state=VmState.ERROR, task_state=None, fault=server_fault(why)):
        events.finish_event(
            session, uuid, DELETE, EVENT_TERMINATE, ok=False, details=why, host=seen.host
        )
    return None


def _action_done(
    session: Session,
    uuid: str,
    agent_action: PowerAction,
    ok: bool,
    message: str,
    details: dict[str, Any],
) -> None:
    action = _BY_AGENT_ACTION.get(agent_action)
    seen = load(session, uuid)
    if action is None or seen is None or seen.task_state is not action.task_state:
        return
    reported = details.get("power_state")
    power = PowerState.from_name(reported) if isinstance(reported, str) else None
    if ok:
        swap(
            session,
            seen,
            vm_state=action.done,
            task_state=None,
            power_state=power if power is not None else action.power,
        )
    else:
        swap(session, seen, task_state=None, power_state=power)
    events.finish_event(
        session,
        uuid,
        action.name,
        event_name(action),
        ok=ok,
        details=None if ok else (message or f"{action.name} failed on the host"),
        host=seen.host,
    )
