"""Instance actions: what ``server event list`` / ``server event show`` show.

One record per user action (create, stop, reboot, delete...) with the request
id that asked for it, and its events: the steps (scheduling, the host's work)
with their outcome. Written in the same transactions as the state changes they
describe, so the history never disagrees with the server.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, String, literal, select, update
from sqlalchemy.orm import Session

from pcifleet.store.models import InstanceAction, InstanceActionEvent, UtcDateTime, utcnow
from pcifleet.store.models import instance_action_events_table as E
from pcifleet.store.models import instance_actions_table as A

SUCCESS = "Success"
ERROR = "Error"


def _conn(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def start_action(
    bind: Session | Connection,
    instance_uuid: str,
    action: str,
    *,
    request_id: str,
    user_id: str | None,
    project_id: str | None,
    event: str | None = None,
    host: str | None = None,
) -> int:
    """Record that ``action`` started (and its first event, when named); its id."""
    now = utcnow()
    conn = _conn(bind)
    action_id = conn.execute(
        A.insert()
        .values(
            instance_uuid=instance_uuid,
            request_id=request_id[:64],
            action=action,
            user_id=user_id,
            project_id=project_id,
            start_time=now,
            updated_at=now,
        )
        .returning(A.c.id)
    ).scalar_one()
    if event:
        conn.execute(E.insert().values(action_id=action_id, event=event, host=host, start_time=now))
    return int(action_id)


def _latest_query(instance_uuid: str, action: str) -> Any:
    """The id of the server's latest ``action``, as a scalar subquery: each
    step below is then one statement instead of a read and a write."""
    return (
        select(A.c.id)
        .where(A.c.instance_uuid == instance_uuid, A.c.action == action)
        .order_by(A.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def begin_event(
    bind: Session | Connection, instance_uuid: str, action: str, event: str, host: str | None
) -> None:
    """A new step of the server's latest ``action`` starts (nothing without one)."""
    latest = select(
        _latest_query(instance_uuid, action).label("action_id"),
        literal(event).label("event"),
        literal(host, String).label("host"),
        literal(utcnow(), UtcDateTime()).label("start_time"),
    ).where(_latest_query(instance_uuid, action).is_not(None))
    _conn(bind).execute(
        E.insert().from_select(["action_id", "event", "host", "start_time"], latest)
    )


def finish_event(
    bind: Session | Connection,
    instance_uuid: str,
    action: str,
    event: str,
    *,
    ok: bool,
    details: str | None = None,
    host: str | None = None,
    final: bool = True,
) -> None:
    """End the step ``event`` of the latest ``action`` (adding it if it was never
    begun); ``final`` also ends the action. A failed step marks the action Error."""
    conn = _conn(bind)
    now = utcnow()
    values = {
        "finish_time": now,
        "result": SUCCESS if ok else ERROR,
        "details": details[:1024] if details else None,
    }
    action_values: dict[str, object] = {"updated_at": now}
    if final:
        action_values["finish_time"] = now
    if not ok:
        action_values["message"] = ERROR
    # The action's row is written first and answers its id: no action, no step.
    action_id = conn.execute(
        update(A)
        .where(A.c.id == _latest_query(instance_uuid, action))
        .values(**action_values)
        .returning(A.c.id)
    ).scalar()
    if action_id is None:
        return
    open_event = (
        select(E.c.id)
        .where(E.c.action_id == action_id, E.c.event == event, E.c.finish_time.is_(None))
        .order_by(E.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    ended = conn.execute(update(E).where(E.c.id == open_event).values(**values)).rowcount
    if ended != 1:
        conn.execute(
            E.insert().values(action_id=action_id, event=event, host=host, start_time=now, **values)
        )


def actions_of(session: Session, instance_uuid: str) -> list[InstanceAction]:
    """The server's actions, newest first (as Nova lists them)."""
    return list(
        session.scalars(
            select(InstanceAction)
            .where(InstanceAction.instance_uuid == instance_uuid)
            .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())
        )
    )


def events_of(session: Session, action_id: int) -> list[InstanceActionEvent]:
    return list(
        session.scalars(
            select(InstanceActionEvent)
            .where(InstanceActionEvent.action_id == action_id)
            .order_by(InstanceActionEvent.id)
        )
    )
