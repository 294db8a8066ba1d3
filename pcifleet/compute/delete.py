"""Deleting a server, as Nova does: through its host's agent when a domain may
exist there and the host is up; otherwise at once ("local delete").

``request_delete`` is one transaction: the server moves to ``deleting``
(compare-and-swap, so it wins or loses cleanly against a boot step, an agent
report or another delete), host work not yet taken is cancelled, and either
a ``delete`` task goes to the agent or everything is given back now. A server
whose domain may run on a host that is down is deleted locally too; when that
host's agent comes back it destroys the domains the controller no longer
knows. ``force`` (``forceDelete``) deletes locally even on a live host, and
still asks the agent to destroy the domain.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.errors import Conflict, NotFound
from pcifleet.compute.hosts import host_is_up
from pcifleet.compute.moves import close_moves
from pcifleet.compute.release import cancel_tasks, free_devices, unbind_ports
from pcifleet.compute.states import TaskState, VmState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.store.models import Task, utcnow
from pcifleet.virt.tasks import DeleteTask, InstanceRef

DELETE = "delete"
# Lost compare-and-swaps before a delete gives up (each loss is another writer's
# progress on the server, so a handful is plenty).
DELETE_TRIES = 20
EVENT_TERMINATE = "compute_terminate_instance"


def request_delete(
    session: Session,
    uuid: str,
    *,
    request_id: str,
    user_id: str | None,
    project_id: str | None,
    host_down_after: float,
    force: bool = False,
) -> str | None:
    """Delete the server (see the module docstring), in the caller's transaction.

    Returns the host whose devices were freed now (tell the scheduler after
    commit), or None. Deleting a server already being deleted changes nothing
    unless ``force``.
    """
    seen = load(session, uuid)
    if seen is None or seen.vm_state is VmState.DELETED:
        raise NotFound(f"Instance {uuid} could not be found.")
    for _ in range(DELETE_TRIES):
        if seen.task_state is TaskState.DELETING and not force:
            return None
        if swap(session, seen, task_state=TaskState.DELETING):
            break
        # Someone moved the server on between our read and our write (a boot
        # step, an agent's report): each loss is their progress, so read again
        # and retry. Giving up here would answer 204 and leave it running.
        found = load(session, uuid)
        if found is None or found.vm_state is VmState.DELETED:
            return None  # deleted meanwhile by someone else: what was asked
        seen = found
    else:
        raise Conflict(f"Instance {uuid} kept changing while it was being deleted; retry.")
    events.start_action(
        session,
        uuid,
        DELETE,
        request_id=request_id,
        user_id=user_id,
        project_id=project_id,
        event=EVENT_TERMINATE,
        host=seen.host,
    )
    cancel_tasks(session, uuid)
    moving = load(session, uuid)
    assert moving is not None
    if not seen.host or not _domain_may_exist(session, uuid):
        return finish_delete(session, moving)
    up = host_is_up(session, seen.host, host_down_after)
    if up:
        session.add(
            Task(
                host=seen.host,
                instance_uuid=uuid,
                kind="delete",
                state="pending",
                payload=DeleteTask(InstanceRef(uuid, seen.name)).to_dict(),
            )
        )
    if force or not up:
        return finish_delete(session, moving)
    return None


def _domain_may_exist(session: Session, uuid: str) -> bool:
    """A build task an agent took (or finished) may have left a domain."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Task.instance_uuid == uuid,
                    Task.kind == "build",
                    Task.state.in_(("running", "done")),
                )
            )
        )
    )


def finish_delete(session: Session, seen: Seen) -> str | None:
    """The server is gone: devices freed, ports unbound (the ones it made deleted),
    DELETED. Returns the host freed; None when it had moved on."""
    if not swap(
        session,
        seen,
        vm_state=VmState.DELETED,
        task_state=None,
        deleted_at=utcnow(),
    ):
        return None
    free_devices(session, seen)
    # a server deleted mid-move holds devices at the move's other end too
    close_moves(session, seen)
    unbind_ports(session, seen.uuid, detach=True)
    events.finish_event(session, seen.uuid, DELETE, EVENT_TERMINATE, ok=True, host=seen.host)
    return seen.host
