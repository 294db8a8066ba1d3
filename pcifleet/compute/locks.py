"""Locking a server (Nova's ``lock`` and ``unlock`` actions).

A locked server refuses what would change it (the power actions, rebuild,
moves, interface changes, delete) from anyone but an admin: 409 "Instance
<uuid> is locked". ``refuse_if_locked`` is that check, made by the API before
it asks for the change, as Nova's API makes it; the compute layer's own work
(the power sync, the reconciler) is never refused.

Who locked it decides who may unlock it, as Nova has it: a caller of the
server's own project locks as its ``owner`` (an admin of that project too),
anyone else (an admin of another project) as ``admin``. The owner may lift
only an owner's lock; an admin's lock only an admin may lift (403 otherwise).
Locking a server its owner has locked already changes nothing. Both are
recorded as instance actions (``lock``, ``unlock``), with no host work.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.compute.states import VmState
from pcifleet.store.models import Instance

OWNER = "owner"
ADMIN = "admin"
# Nova's limit on locked_reason (microversion 2.73)
REASON_MAX = 255


class Lockable(Protocol):
    """A server as the lock check reads it: a row of ``instances`` or a view's row."""

    @property
    def uuid(self) -> str: ...
    @property
    def locked(self) -> bool | None: ...


def refuse_if_locked(inst: Lockable, ctx: Context) -> None:
    """409 when ``inst`` is locked and the caller is not an admin."""
    if inst.locked and not ctx.is_admin:
        raise Conflict(f"Instance {inst.uuid} is locked")


def _live(session: Session, uuid: str) -> Instance:
    inst = session.get(Instance, uuid)
    if inst is None or inst.vm_state == VmState.DELETED.value:
        raise NotFound(f"Instance {uuid} could not be found.")
    return inst


def _record(session: Session, ctx: Context, uuid: str, action: str, request_id: str) -> None:
    events.start_action(
        session,
        uuid,
        action,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=f"api_{action}",
    )
    events.finish_event(session, uuid, action, f"api_{action}", ok=True)


def lock(session: Session, ctx: Context, uuid: str, *, reason: str | None, request_id: str) -> None:
    """Lock the server (see the module docstring); ``reason`` is kept to show."""
    inst = _live(session, uuid)
    is_owner = inst.project_id == ctx.project_id
    if inst.locked and is_owner:
        return  # Nova: the owner locking again is a no-op (an admin re-locks as admin)
    if reason is not None and not 0 < len(reason) <= REASON_MAX:
        raise BadRequest(
            f"Invalid input for field 'lock.locked_reason': must be 1 to {REASON_MAX} characters"
        )
    inst.locked = True
    inst.locked_by = OWNER if is_owner else ADMIN
    if reason is not None:  # as Nova: a lock without one keeps the reason it had
        inst.locked_reason = reason
    _record(session, ctx, uuid, "lock", request_id)
    session.flush()


def may_unlock(inst: Instance, ctx: Context) -> bool:
    """Whether ``ctx`` may lift the server's lock (Nova's unlock_override: an
    admin may lift any; the owner only its own)."""
    if ctx.is_admin:
        return True
    expected = OWNER if inst.project_id == ctx.project_id else ADMIN
    return inst.locked_by in (None, expected)


def unlock(session: Session, ctx: Context, uuid: str, *, request_id: str) -> None:
    """Unlock the server; 403 for an owner lifting an admin's lock."""
    inst = _live(session, uuid)
    if not may_unlock(inst, ctx):
        raise Forbidden(
            "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override "
            "to be performed."
        )
    inst.locked = False
    inst.locked_by = None
    inst.locked_reason = None
    _record(session, ctx, uuid, "unlock", request_id)
    session.flush()
