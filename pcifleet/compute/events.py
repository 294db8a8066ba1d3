"""Instance actions: what ``server event list`` / ``server event show`` show.

One record per user action (create, stop, reboot, delete...) with the request
id that asked for it, and its events: the steps (scheduling, the host's work)
with their outcome. Written in the same transactions as the state changes they
describe, so the history never disagrees with the server.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from pcifleet.store.models import InstanceAction, InstanceActionEvent, utcnow
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


def _latest(conn: Connection, instance_uuid: str, action: str) -> int | None:
    found = conn.execute(
        select(A.c.id)
        .where(A.c.instance_uuid == instance_uuid, A.c.action == action)
        .order_by(A.c.id.desc())
        .limit(1)
    ).scalar()
    return int(found) if found is not None else None


def begin_event(
    bind: Session | Connection, instance_uuid: str, action: str, event: str, host: str | None
) -> None:
    """A new step of the server's latest ``action`` starts."""
    conn = _conn(bind)
    action_id = _latest(conn, instance_uuid, action)
    if action_id is not None:
        conn.execute(
            E.insert().values(action_id=action_id, event=event, host=host, start_time=utcnow())
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
    action_id = _latest(conn, instance_uuid, action)
    if action_id is None:
        return
    now = utcnow()
    open_event = conn.execute(
        select(E.c.id)
        .where(E.c.action_id == action_id, E.c.event == event, E.c.finish_time.is_(None))
        .order_by(E.c.id.desc())
        .limit(1)
    ).scalar()
    values = {
        "finish_time": now,
        "result": SUCCESS if ok else ERROR,
        "details": details[:1024] if details else None,
    }
    if open_event is None:
        conn.execute(
            E.insert().values(action_id=action_id, event=event, host=host, start_time=now, **values)
        )
    else:
        conn.execute(update(E).where(E.c.id == open_event).values(**values))
    action_values: dict[str, object] = {"updated_at": now}
    if final:
        action_values["finish_time"] = now
    if not ok:
        action_values["message"] = ERROR
    conn.execute(update(A).where(A.c.id == action_id).values(**action_values))


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
