"""The controller's durable work queue: a job is a row, written in the same
transaction as the state change that asks for it, taken by a worker with a
lease, and deleted in the transaction that finishes its work.

A worker that dies mid-job leaves a row whose lease runs out; any worker then
takes it again (``attempts`` goes up). On PostgreSQL takers skip rows another
transaction has locked (``FOR UPDATE SKIP LOCKED``) so several API processes
share the queue without waiting on each other; on SQLite the guarded UPDATE
alone decides, as there is a single writer. ``attempts`` doubles as a fencing
token: a worker whose lease was taken over cannot finish the job.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from pcifleet.store.models import jobs_table as J
from pcifleet.store.models import utcnow

DEFAULT_LEASE_SECONDS = 30.0


class LeaseLost(Exception):
    """Another worker took the job over; this one's transaction must roll back."""


def owner_host() -> str:
    """This machine, as lease owners name it."""
    return socket.gethostname()[:32].replace(":", "_")


def owner_name() -> str:
    """Who holds a lease: host, process and thread, for an operator to read."""
    return f"{owner_host()}:{os.getpid()}:{threading.get_ident() % 100000}"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    subject: str | None
    payload: dict[str, Any]
    attempts: int
    owner: str


def _conn(bind: Session | Connection) -> Connection:
    return bind.connection() if isinstance(bind, Session) else bind


def enqueue(
    bind: Session | Connection,
    kind: str,
    subject: str | None,
    payload: dict[str, Any] | None = None,
    *,
    delay: float = 0.0,
) -> int:
    """Add a job in the caller's transaction; returns its id."""
    now = utcnow()
    result = _conn(bind).execute(
        insert(J)
        .values(
            kind=kind,
            subject=subject,
            payload=payload or {},
            state="pending",
            attempts=0,
            not_before=now + timedelta(seconds=delay),
            created_at=now,
            updated_at=now,
        )
        .returning(J.c.id)
    )
    return int(result.scalar_one())


def _takeable(now: Any) -> Any:
    return or_(
        and_(J.c.state == "pending", J.c.not_before <= now),
        and_(J.c.state == "running", J.c.leased_until < now),
    )


def take(
    engine: Engine,
    owner: str,
    *,
    limit: int = 4,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    job_id: int | None = None,
) -> list[Job]:
    """Lease up to ``limit`` due jobs (or just ``job_id``) to ``owner``."""
    now = utcnow()
    query = select(J.c.id).where(_takeable(now)).order_by(J.c.id).limit(limit)
    if job_id is not None:
        query = query.where(J.c.id == job_id)
    if engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    taken: list[Job] = []
    with engine.begin() as conn:
        for jid in conn.execute(query).scalars().all():
            row = conn.execute(
                update(J)
                .where(J.c.id == jid, _takeable(now))
                .values(
                    state="running",
                    lease_owner=owner,
                    leased_until=now + timedelta(seconds=lease_seconds),
                    attempts=J.c.attempts + 1,
                    updated_at=now,
                )
                .returning(J.c.id, J.c.kind, J.c.subject, J.c.payload, J.c.attempts)
            ).first()
            if row is not None:
                taken.append(
                    Job(row.id, row.kind, row.subject, dict(row.payload), row.attempts, owner)
                )
    return taken


def finish(bind: Session | Connection, job: Job) -> bool:
    """Delete the job in the caller's transaction, if its lease is still ours.

    False means another worker took it over: the caller must roll back."""
    done = _conn(bind).execute(
        delete(J).where(
            J.c.id == job.id, J.c.lease_owner == job.owner, J.c.attempts == job.attempts
        )
    )
    return bool(done.rowcount == 1)


def retry_later(engine: Engine, job: Job, error: str, delay: float) -> None:
    """Give the job back to the queue, due in ``delay`` seconds, saying why."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(J)
            .where(J.c.id == job.id, J.c.lease_owner == job.owner, J.c.attempts == job.attempts)
            .values(
                state="pending",
                lease_owner=None,
                leased_until=None,
                not_before=now + timedelta(seconds=delay),
                last_error=error[:1024],
                updated_at=now,
            )
        )


def pending_subjects(bind: Session | Connection, kind: str) -> set[str]:
    """Subjects that have a job of ``kind`` queued or running."""
    rows = _conn(bind).execute(select(J.c.subject).where(J.c.kind == kind))
    return {r for (r,) in rows if r}


def pending_ids(bind: Session | Connection, subject: str) -> list[int]:
    """Ids of the jobs about ``subject`` that no worker holds yet."""
    rows = _conn(bind).execute(
        select(J.c.id).where(J.c.subject == subject, J.c.state == "pending").order_by(J.c.id)
    )
    return [int(r) for (r,) in rows]


def release_dead_owners(engine: Engine, hostname: str, alive: Callable[[int], bool]) -> int:
    """Give back at once the jobs held by processes of this machine that are gone
    (a controller killed and restarted), instead of waiting out their leases.

    Owners are ``host:pid:thread`` (``owner_name``);
    ``alive(pid)`` says whether a process still runs. Returns how many jobs.
    """
    with engine.begin() as conn:
        owners = conn.execute(
            select(J.c.lease_owner).where(J.c.state == "running").distinct()
        ).scalars()
        dead = []
        for owner in owners:
            host, _, rest = (owner or "").partition(":")
            pid = rest.partition(":")[0]
            if host == hostname and pid.isdigit() and not alive(int(pid)):
                dead.append(owner)
        if not dead:
            return 0
        done = conn.execute(
            update(J)
            .where(J.c.state == "running", J.c.lease_owner.in_(dead))
            .values(state="pending", lease_owner=None, leased_until=None, updated_at=utcnow())
        )
        return int(done.rowcount)
