"""Server actions (start, stop, reboot, pause, suspend...), rename and the console.

An action is one transaction: the server's state is checked against the
action's table entry (``pcifleet.compute.states.ACTIONS``) and moved to the
action's task state by compare-and-swap, a ``power`` task goes to the host's
agent, and the action is recorded for ``server event list``. The agent's
report ends it (``pcifleet.compute.results``). A state that forbids the action
is a 409 naming the state; an action pcifleet lacks is a 400 naming it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.hosts import host_is_up
from pcifleet.compute.states import ACTIONS, UNSUPPORTED_ACTIONS, Action, VmState
from pcifleet.compute.transitions import load, swap
from pcifleet.store.cloud import Image
from pcifleet.store.models import Instance, Task
from pcifleet.virt.tasks import ConsoleTask, InstanceRef, PowerTask

CONSOLE_MAX_LINES = 100_000
# The power actions that wait for the guest to shut down by itself.
CLEAN_SHUTDOWNS = ("stop", "reboot_soft")
MAX_SHUTDOWN_TIMEOUT = 3600


def action_for(key: str) -> Action:
    """The action a request body names; 400 for one pcifleet does not do."""
    found = ACTIONS.get(key)
    if found is not None:
        return found
    name = key.split(":", 1)[0]
    if name in UNSUPPORTED_ACTIONS:
        raise BadRequest(f"The server action '{name[:64]}' is not supported by pcifleet.")
    raise BadRequest(f"There is no such server action: '{name[:64]}'.")


def event_name(action: Action) -> str:
    """Nova's event name for the host's part of an action."""
    return f"compute_{action.name}_instance"


def request_action(
    session: Session,
    uuid: str,
    action: Action,
    *,
    request_id: str,
    user_id: str | None,
    project_id: str | None,
    host_down_after: float,
    force: bool = False,
) -> int:
    """Start ``action`` on the server (see the module docstring); the task id.

    ``force`` skips the vm_state check (not the task_state one), as Nova's
    forced stop does: the power sync stops a guest that runs although its
    server is SHUTOFF.
    """
    seen = load(session, uuid)
    if seen is None or seen.vm_state is VmState.DELETED:
        raise NotFound(f"Instance {uuid} could not be found.")
    if seen.task_state is not None:
        raise Conflict(
            f"Cannot '{action.name}' instance {uuid} while it is in task_state "
            f"{seen.task_state.value}"
        )
    if seen.vm_state not in action.allowed and not force:
        raise Conflict(
            f"Cannot '{action.name}' instance {uuid} while it is in vm_state {seen.vm_state.value}"
        )
    if not seen.host:
        raise Conflict(f"Cannot '{action.name}' instance {uuid}: it is not on any host")
    if not host_is_up(session, seen.host, host_down_after):
        raise Conflict(
            f"Cannot '{action.name}' instance {uuid}: its host {seen.host} is down "
            "(its agent stopped reporting)"
        )
    if not swap(session, seen, task_state=action.task_state):
        raise Conflict(f"Cannot '{action.name}' instance {uuid}: its state changed meanwhile")
    events.start_action(
        session,
        uuid,
        action.name,
        request_id=request_id,
        user_id=user_id,
        project_id=project_id,
        event=event_name(action),
        host=seen.host,
    )
    task = Task(
        host=seen.host,
        instance_uuid=uuid,
        kind="power",
        state="pending",
        payload=PowerTask(
            InstanceRef(uuid, seen.name),
            action.agent,
            shutdown_timeout(session, uuid) if action.agent in CLEAN_SHUTDOWNS else None,
        ).to_dict(),
    )
    session.add(task)
    session.flush()
    return task.id


def shutdown_timeout(session: Session, uuid: str) -> float | None:
    """How long a clean stop waits for the guest before powering it off: the
    server's image property ``os_shutdown_timeout`` (seconds) as in Nova, else
    None (the agent's default, a minute)."""
    image_id = session.scalar(select(Instance.image_id).where(Instance.uuid == uuid))
    if not image_id:
        return None
    props = session.scalar(select(Image.properties).where(Image.id == image_id)) or {}
    value = props.get("os_shutdown_timeout") if isinstance(props, dict) else None
    try:
        seconds = int(str(value))
    except ValueError:
        return None  # absent or not a number: Glance stores any text
    return float(seconds) if 0 <= seconds <= MAX_SHUTDOWN_TIMEOUT else None


# The states an admin may force a server into (Nova's os-resetState).
RESETTABLE = {"active": VmState.ACTIVE, "error": VmState.ERROR}


def reset_state(session: Session, uuid: str, state: str) -> None:
    """An admin's repair: set the recorded vm_state and clear the task state, with
    no host work (the host is not asked; a task still out loses its compare-and-swap
    when it reports, as for any state that moved on)."""
    wanted = RESETTABLE.get(state)
    if wanted is None:
        raise BadRequest(
            "Invalid input for field 'os-resetState.state': must be 'active' or 'error'"
        )
    seen = load(session, uuid)
    if seen is None or seen.vm_state is VmState.DELETED:
        raise NotFound(f"Instance {uuid} could not be found.")
    if not swap(session, seen, vm_state=wanted, task_state=None):
        raise Conflict(f"Cannot reset the state of instance {uuid}: its state changed meanwhile")


def rename(session: Session, uuid: str, name: str) -> Instance:
    """``PUT /servers/{id}`` with a new name: no host work, any state but deleted."""
    instance = session.get(Instance, uuid)
    if instance is None or instance.vm_state == VmState.DELETED.value:
        raise NotFound(f"Instance {uuid} could not be found.")
    instance.name = name
    session.flush()
    return instance


def request_console(session: Session, uuid: str, length: int | None) -> int:
    """Ask the server's agent for the tail of its serial console; the task id."""
    seen = load(session, uuid)
    if seen is None or seen.vm_state is VmState.DELETED:
        raise NotFound(f"Instance {uuid} could not be found.")
    if not seen.host or seen.vm_state is VmState.BUILDING:
        raise Conflict(f"Instance {uuid} has no console yet: it is {seen.vm_state.value}")
    task = Task(
        host=seen.host,
        instance_uuid=uuid,
        kind="console",
        state="pending",
        payload=ConsoleTask(InstanceRef(uuid, seen.name), length).to_dict(),
    )
    session.add(task)
    session.flush()
    return task.id
