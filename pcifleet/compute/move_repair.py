"""Moves a host left behind, ended by the reconciler so no server stays in
``resize_*`` for good.

A move waits on one host at a time (``move_steps``): the source stopping,
the destination building, the destination tearing down for a revert, the
source starting again. When that host is down (its agent stopped reporting,
or an operator forced it down) the task would wait forever, since only that
host's agent takes it: the step is failed here, and its failure is the same
one an agent's report would give (``move_steps.move_result``): the
destination's claim freed, ports bound where the server is, the server active
on its source or in ERROR there with a fault.

A revert whose destination is down is carried out without it, as a delete on
a down host is: the destination's claim is freed and the source restarted;
the destination's agent destroys the domain when it is back, since its
instance list no longer names the server.

A live migration whose source or destination goes down ends as that end's
failure would: back on the source with the destination freed (the source
plugs its direct ports again when it returns, if the destination failed).
An evacuation whose new host goes down before it built the domain ends the
same way, in ERROR on its old host (still down, so it can be evacuated again).

A move whose task is gone altogether (cancelled, or lost in a crash between
steps) is ended the same way once it has been still for a task lease.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute import events, jobs, live
from pcifleet.compute.evacuate import EVACUATE, EVENT_SCHEDULE, REBUILD, rebuild_result
from pcifleet.compute.hosts import host_is_up
from pcifleet.compute.move_steps import MOVE_KINDS, latest_migration, move_result, verb_of
from pcifleet.compute.moves import CLOSED, EVENT_PREP, MOVE
from pcifleet.compute.states import TaskState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.store.models import Migration, Task, utcnow

MOVING = (
    TaskState.RESIZE_PREP,
    TaskState.RESIZE_MIGRATING,
    TaskState.RESIZE_FINISH,
    TaskState.RESIZE_REVERTING,
    TaskState.REBUILDING,
    TaskState.REBUILD_SPAWNING,
    TaskState.MIGRATING,
)
# task_state while a job chooses the destination -> (the job's kind, its action, event)
_CHOOSING = {
    TaskState.RESIZE_PREP: (MOVE, None, EVENT_PREP),
    TaskState.REBUILDING: (EVACUATE, EVACUATE, EVENT_SCHEDULE),
}
# a live migration stays in one task_state; it is choosing while ``queued``
_LIVE_CHOOSING = (live.JOB, live.ACTION, live.EVENT_SCHEDULE)


def _waiting_for(seen: Seen, migration: Migration) -> tuple[str, str | None]:
    """The task kind the server's task_state waits for, and on which host."""
    if seen.task_state is TaskState.RESIZE_MIGRATING:
        return "move_source", migration.source_compute
    if seen.task_state is TaskState.RESIZE_FINISH:
        return "move_dest", migration.dest_compute
    if seen.task_state is TaskState.REBUILD_SPAWNING:
        return REBUILD, migration.dest_compute
    if seen.task_state is TaskState.MIGRATING:
        if migration.status == "preparing":
            return live.PREPARE, migration.dest_compute
        if seen.host == migration.source_compute:
            return live.SOURCE, migration.source_compute
        return live.DEST, migration.dest_compute
    # reverting: the server's host is the destination until its domain is gone
    if seen.host == migration.source_compute:
        return "revert_source", migration.source_compute
    return "revert_dest", migration.dest_compute


def _end_unclaimed(session: Session, seen: Seen, migration: Migration, why: str) -> bool:
    """A move still choosing its destination whose job is gone: nothing was
    claimed, so the server only goes back to no task."""
    if not swap(session, seen, task_state=None):
        return False
    migration.status = "error"
    assert seen.task_state is not None
    _, action, event = _CHOOSING.get(seen.task_state, _LIVE_CHOOSING)
    verb = action or verb_of(migration)
    events.finish_event(session, seen.uuid, verb, event, ok=False, details=why)
    return True


def end_lost_move(
    session: Session,
    uuid: str,
    *,
    down_after: float,
    still_since: datetime,
    qbh: frozenset[str] = frozenset(),
) -> list[str] | None:
    """End the server's move if the host it waits for is down, or its task is
    gone and it has not changed since ``still_since``. None: nothing to end;
    otherwise the hosts whose devices were freed."""
    seen = load(session, uuid)
    if seen is None or seen.task_state not in MOVING:
        return None
    migration = latest_migration(session, uuid)
    if migration is None:
        return None
    if seen.task_state is TaskState.REBUILDING and (
        migration.migration_type != "evacuation" or migration.status in CLOSED
    ):
        return None  # a rebuild in place (pcifleet.compute.rebuild), not a move
    stale = seen.updated_at < still_since
    choosing = _CHOOSING.get(seen.task_state) if seen.task_state else None
    if seen.task_state is TaskState.MIGRATING and migration.status == "queued":
        choosing = _LIVE_CHOOSING
    if choosing is not None:
        if uuid in jobs.pending_subjects(session, choosing[0]) or not stale:
            return None
        why = "the job choosing the destination was lost"
        return [] if _end_unclaimed(session, seen, migration, why) else None
    kind, host = _waiting_for(seen, migration)
    task = session.scalar(
        select(Task)
        .where(
            Task.instance_uuid == uuid,
            Task.kind == kind,
            Task.state.in_(("pending", "running")),
        )
        .order_by(Task.id.desc())
        .limit(1)
        .with_for_update()
    )
    if task is not None:
        if host_is_up(session, task.host, down_after):
            return None  # its agent takes it; an expired lease is handled as any task's
        why = f"host {task.host} is down (its agent stopped reporting) during the {kind} step"
        task.state = "failed"
        task.result = {"message": why, "details": {}}
        task.updated_at = utcnow()
    elif stale:
        why = f"the {kind} task of host {host} was lost"
        # Not added to the session: it only tells move_result which step failed.
        task = Task(host=host or "", instance_uuid=uuid, kind=kind, state="failed", payload={})
    else:
        return None
    if kind == REBUILD:
        return rebuild_result(session, task, False, why)
    if kind in (live.PREPARE, live.SOURCE, live.DEST):
        return live.live_result(session, task, False, why, {}, qbh)
    assert task.kind in MOVE_KINDS
    # A revert goes on without a destination that is down (see the module's doc).
    ok = kind == "revert_dest"
    return move_result(session, task, ok, why, qbh)
