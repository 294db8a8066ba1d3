"""The checks every action on a server makes before it changes anything, with
Nova's answers: 404 for a server that is not there (or deleted), 409 naming
the task_state or vm_state that forbids the action, or the host that is down.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from pcifleet.compute.errors import Conflict, NotFound
from pcifleet.compute.hosts import host_is_up
from pcifleet.compute.states import VmState
from pcifleet.compute.transitions import Seen, load


def ready_for(
    session: Session,
    uuid: str,
    verb: str,
    allowed: frozenset[VmState],
    *,
    host_down_after: float | None = None,
) -> Seen:
    """The server as it is, when ``verb`` may act on it now: no task in flight,
    a vm_state in ``allowed``, and (given ``host_down_after``) on a host whose
    agent reports."""
    seen = load(session, uuid)
    if seen is None or seen.vm_state is VmState.DELETED:
        raise NotFound(f"Instance {uuid} could not be found.")
    if seen.task_state is not None:
        raise Conflict(
            f"Cannot '{verb}' instance {uuid} while it is in task_state {seen.task_state.value}"
        )
    if seen.vm_state not in allowed:
        raise Conflict(
            f"Cannot '{verb}' instance {uuid} while it is in vm_state {seen.vm_state.value}"
        )
    if host_down_after is None:
        return seen
    if not seen.host:
        raise Conflict(f"Cannot '{verb}' instance {uuid}: it is not on any host")
    if not host_is_up(session, seen.host, host_down_after):
        raise Conflict(
            f"Cannot '{verb}' instance {uuid}: its host {seen.host} is down "
            "(its agent stopped reporting)"
        )
    return seen
