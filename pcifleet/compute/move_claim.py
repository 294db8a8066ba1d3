"""What every move (cold migration and resize, evacuation, live migration) does
the same way: record it, then claim its destination.

``open_move`` writes the migration, starts the server's action and queues the
job that will choose the destination, in the caller's transaction (the one
whose compare and swap put the server in the move's task_state).

``claim_destination`` is that job's core: the scheduler's atomic claim on any
host but the source (``--host`` narrows it) for the move's requests, and, in
the claim's own transaction, the caller's first step of the move and the job's
end. So a claim is never committed without its next step queued, nor a step
without its claim. When the server moved on meanwhile (deleted...) the step
raises ``MoveGone`` and nothing is claimed; when no host fits (or the one
claimed cannot take the server, ``Unfit``) the migration ends in error and
``no_host`` puts the server back as the kind of move wants it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from pcifleet import scheduler
from pcifleet.compute import events, jobs
from pcifleet.compute.context import Context, new_id
from pcifleet.compute.transitions import Seen
from pcifleet.pci import PciRequest, PciRequestsUnsatisfiable
from pcifleet.store import claims
from pcifleet.store.models import Migration


class MoveGone(Exception):
    """The server left the move's task_state before the claim committed."""


class Unfit(Exception):
    """The destination claimed cannot take the server as it is."""


def open_move(
    session: Session,
    ctx: Context,
    seen: Seen,
    *,
    migration_type: str,
    status: str,
    requested_host: str | None,
    old_flavor: dict[str, Any],
    new_flavor: dict[str, Any],
    new_requests: list[dict[str, Any]],
    action: str,
    event: str,
    job_kind: str,
    request_id: str,
) -> int:
    """Record the move of ``seen`` and queue its job; the job's id."""
    migration = Migration(
        uuid=new_id(),
        instance_uuid=seen.uuid,
        migration_type=migration_type,
        status=status,
        source_compute=seen.host,
        requested_host=requested_host,
        old_flavor=old_flavor,
        new_flavor=new_flavor,
        new_requests=new_requests,
        port_bindings={},
        user_id=ctx.user_id,
        project_id=ctx.project_id,
    )
    session.add(migration)
    session.flush()
    events.start_action(
        session,
        seen.uuid,
        action,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=event,
    )
    return jobs.enqueue(session, job_kind, seen.uuid, {"migration": migration.id})


def claim_destination(
    engine: Engine,
    job: jobs.Job,
    migration_id: int,
    requests: list[PciRequest],
    *,
    vcpus: int,
    memory_mb: int,
    numa_nodes: int | None = None,
    then: Callable[[Session, claims.ClaimResult], None],
    no_host: Callable[[Session, str], None],
    waiting_status: str,
) -> None:
    """Claim the move's destination and run ``then`` in the claim's
    transaction (see the module's doc); ``waiting_status`` is the migration's
    status while the job chooses."""
    uuid = job.subject or ""
    with Session(engine) as session:
        migration = session.get(Migration, migration_id)
        assert migration is not None
        source, wanted = migration.source_compute, migration.requested_host

    def step(conn: Connection, result: claims.ClaimResult) -> None:
        session = Session(bind=conn)
        then(session, result)
        session.flush()
        if not jobs.finish(conn, job):
            raise jobs.LeaseLost(f"job {job.id} was taken over; its claim is rolled back")

    try:
        scheduler.select_and_claim(
            engine,
            uuid,
            requests,
            vcpus=vcpus,
            memory_mb=memory_mb,
            numa_nodes=numa_nodes,
            then=step,
            ignore_hosts=(source,),
            only_host=wanted,
        )
    except MoveGone:
        with Session(engine) as session, session.begin():
            found = session.get(Migration, migration_id)
            if found is not None and found.status == waiting_status:
                found.status = "error"
            jobs.finish(session, job)
    except (PciRequestsUnsatisfiable, Unfit) as exc:  # the scheduler's NoValidHost is one
        why = f"No valid host was found. {exc}".strip()
        with Session(engine) as session, session.begin():
            found = session.get(Migration, migration_id)
            if found is not None:
                found.status = "error"
            no_host(session, why)
            jobs.finish(session, job)
