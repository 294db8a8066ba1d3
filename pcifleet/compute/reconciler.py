"""The reconciler: finish or fail whatever a crash, a dead agent or a lost race
left behind. Run at start and periodically; every step is a guarded change in
its own small transaction, so several controllers may run it at once.

- a job leased by a process of this host that no longer runs is given back;
- a server in ``scheduling`` whose reservation has no job gets one again;
- an agent task whose lease ran out is handed out again, or failed (with its
  effect on the server) after ``task_attempts`` hand-outs;
- a server still building ``build_timeout`` after it was made goes to ERROR;
- a server being deleted on a host that is down is deleted locally;
- an action whose host task is gone ends, so the server takes actions again;
- an interface attach whose host task is gone (or never was) is undone, a
  detach whose task is gone ends with the port still attached;
- a rebuild in place whose host task is gone ends in ERROR;
- a move waiting on a host that is down, or whose task is gone, ends
  (``move_repair``): nothing stays in ``resize_*``;
- a cold move's disk copy whose move is over (or whose upload died) goes
  (``move_disks``);
- devices claimed by no live server are freed; ports bound to servers that no
  longer exist are unbound.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, not_, or_, select, update
from sqlalchemy.orm import Session

from pcifleet.compute import events, jobs
from pcifleet.compute.binding import unbind_port
from pcifleet.compute.boot import SCHEDULE
from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.delete import finish_delete
from pcifleet.compute.hosts import host_is_up
from pcifleet.compute.interfaces import ATTACH, DETACH, abandon_attach, end_lost_detach
from pcifleet.compute.move_disks import sweep_copies
from pcifleet.compute.move_repair import MOVING, end_lost_move
from pcifleet.compute.placement import fail_build
from pcifleet.compute.rebuild import end_lost_rebuild
from pcifleet.compute.release import cancel_tasks, tell_scheduler
from pcifleet.compute.results import apply_result
from pcifleet.compute.states import ACTIONS, TaskState, VmState
from pcifleet.compute.transitions import load, swap
from pcifleet.store import claims
from pcifleet.store.cloud import Port
from pcifleet.store.devices import IN_USE
from pcifleet.store.models import Host, Instance, PciDeviceRow, Task, utcnow

log = logging.getLogger(__name__)

# A reservation younger than this may still be inside its creating transaction.
ORPHAN_GRACE = timedelta(seconds=30)
_ACTION_TASK_STATES = {a.task_state.value for a in ACTIONS.values()}
_BY_TASK_STATE = {a.task_state.value: a for a in ACTIONS.values()}


@dataclass
class Report:
    """What one pass changed, by kind."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] = self.counts.get(what, 0) + n

    @property
    def changed(self) -> bool:
        return bool(self.counts)

    def __str__(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())) or "nothing to do"


def reconcile(
    engine: Engine, config: ComputeConfig, *, running_since: datetime | None = None
) -> Report:
    """One pass of every step. ``running_since``: when this controller started;
    builds get their full ``build_timeout`` from then, so the time a crashed
    controller spent down is not counted against the servers it left building."""
    report = Report()
    for step in (
        _jobs_of_dead_processes,
        _requeue_orphan_reservations,
        _expired_tasks,
        functools.partial(_build_timeouts, running_since=running_since),
        _deletes_on_down_hosts,
        _lost_actions,
        _lost_interface_changes,
        _lost_rebuilds,
        _lost_moves,
        _move_disk_copies,
        _leaked_claims,
        _stale_bindings,
    ):
        try:
            step(engine, config, report)
        except Exception:
            log.exception("reconciler step %s failed", getattr(step, "__name__", step))
    return report


def _jobs_of_dead_processes(engine: Engine, config: ComputeConfig, report: Report) -> None:
    report.add(
        "jobs of dead processes released",
        jobs.release_dead_owners(engine, jobs.owner_host(), jobs.process_alive),
    )


def _requeue_orphan_reservations(engine: Engine, config: ComputeConfig, report: Report) -> None:
    cutoff = utcnow() - ORPHAN_GRACE
    with Session(engine) as session, session.begin():
        rows = session.execute(
            select(Instance.uuid, Instance.reservation_id).where(
                Instance.vm_state == VmState.BUILDING.value,
                Instance.task_state == TaskState.SCHEDULING.value,
                Instance.created_at < cutoff,
            )
        ).all()
        if not rows:
            return
        queued = jobs.pending_subjects(session, SCHEDULE)
        for uuid, reservation in rows:
            if reservation is None:  # made before reservations existed
                reservation = uuid
                session.execute(
                    update(Instance).where(Instance.uuid == uuid).values(reservation_id=uuid)
                )
            if reservation not in queued:
                jobs.enqueue(session, SCHEDULE, reservation, {"min_count": 1})
                queued.add(reservation)
                report.add("reservations rescheduled")


def _expired_tasks(engine: Engine, config: ComputeConfig, report: Report) -> None:
    now = utcnow()
    with Session(engine) as session:
        expired = session.scalars(
            select(Task.id).where(Task.state == "running", Task.leased_until < now)
        ).all()
    for task_id in expired:
        hosts: set[str | None] = set()
        with Session(engine) as session, session.begin():
            task = session.get(Task, task_id, with_for_update=True)
            if task is None or task.state != "running" or task.leased_until is None:
                continue
            if task.leased_until >= now:
                continue
            if task.attempts < config.task_attempts:
                task.state = "pending"
                task.leased_until = None
                report.add("tasks handed out again")
                continue
            why = (
                f"the agent of host {task.host} did not finish the {task.kind} task "
                f"after {task.attempts} attempt(s)"
            )
            task.state = "failed"
            task.result = {"message": why, "details": {}}
            hosts.add(
                apply_result(
                    session,
                    task,
                    False,
                    why,
                    {},
                    qbh_physical_networks=config.qbh_physical_networks,
                )
            )
            report.add("tasks failed (lease)")
        for host in hosts:
            tell_scheduler(engine, host)


def _build_timeouts(
    engine: Engine, config: ComputeConfig, report: Report, *, running_since: datetime | None
) -> None:
    if config.build_timeout <= 0:
        return
    cutoff = utcnow() - timedelta(seconds=config.build_timeout)
    if running_since is not None and running_since > cutoff:
        return  # this controller has not been up for a whole build timeout yet
    with Session(engine) as session:
        stuck = session.scalars(
            select(Instance.uuid).where(
                Instance.vm_state == VmState.BUILDING.value, Instance.created_at < cutoff
            )
        ).all()
    for uuid in stuck:
        with Session(engine) as session, session.begin():
            seen = load(session, uuid)
            if seen is None or seen.vm_state is not VmState.BUILDING:
                continue
            where = f" on host {seen.host}" if seen.host else ""
            message = (
                f"Build of the server timed out after {config.build_timeout:.0f} s{where} "
                f"(task_state {seen.task_state.value if seen.task_state else 'none'})"
            )
            host = fail_build(session, uuid, message, expect=seen)
            # A build an agent still holds is void: its late report changes nothing.
            session.execute(
                update(Task)
                .where(Task.instance_uuid == uuid, Task.state == "running")
                .values(state="cancelled", updated_at=utcnow())
            )
        tell_scheduler(engine, host)
        report.add("builds timed out")


def _deletes_on_down_hosts(engine: Engine, config: ComputeConfig, report: Report) -> None:
    with Session(engine) as session:
        deleting = session.execute(
            select(Instance.uuid, Instance.host).where(
                Instance.task_state == TaskState.DELETING.value
            )
        ).all()
    for uuid, host in deleting:
        with Session(engine) as session, session.begin():
            if host and host_is_up(session, host, config.host_down_after):
                continue
            seen = load(session, uuid)
            if seen is None or seen.task_state is not TaskState.DELETING:
                continue
            cancel_tasks(session, uuid)
            freed = finish_delete(session, seen)
        tell_scheduler(engine, freed)
        report.add("local deletes (host down)")


def _lost_actions(engine: Engine, config: ComputeConfig, report: Report) -> None:
    cutoff = utcnow() - timedelta(seconds=config.task_lease)
    with Session(engine) as session:
        busy = session.scalars(
            select(Instance.uuid).where(
                Instance.task_state.in_(_ACTION_TASK_STATES), Instance.updated_at < cutoff
            )
        ).all()
    for uuid in busy:
        with Session(engine) as session, session.begin():
            live = session.scalar(
                select(Task.id).where(
                    Task.instance_uuid == uuid,
                    Task.kind == "power",
                    Task.state.in_(("pending", "running")),
                )
            )
            seen = load(session, uuid)
            if live is not None or seen is None or seen.task_state is None:
                continue
            action = _BY_TASK_STATE.get(seen.task_state.value)
            if action is None or not swap(session, seen, task_state=None):
                continue
            events.finish_event(
                session,
                uuid,
                action.name,
                f"compute_{action.name}_instance",
                ok=False,
                details="the host's task for this action was lost",
            )
        report.add("lost actions ended")


def _lost_interface_changes(engine: Engine, config: ComputeConfig, report: Report) -> None:
    cutoff = utcnow() - timedelta(seconds=config.task_lease)
    plugging = (TaskState.INTERFACE_ATTACHING.value, TaskState.INTERFACE_DETACHING.value)
    with Session(engine) as session:
        busy = session.scalars(
            select(Instance.uuid).where(
                Instance.task_state.in_(plugging), Instance.updated_at < cutoff
            )
        ).all()
    for uuid in busy:
        freed = None
        with Session(engine) as session, session.begin():
            live = session.scalar(
                select(Task.id).where(
                    Task.instance_uuid == uuid,
                    Task.kind.in_((ATTACH, DETACH)),
                    Task.state.in_(("pending", "running")),
                )
            )
            seen = load(session, uuid)
            if live is not None or seen is None:
                continue
            if seen.task_state is TaskState.INTERFACE_ATTACHING:
                freed = abandon_attach(session, uuid, "the host's task for this attach was lost")
                report.add("lost attaches undone")
            elif end_lost_detach(session, uuid):
                report.add("lost detaches ended")
        tell_scheduler(engine, freed)


def _lost_rebuilds(engine: Engine, config: ComputeConfig, report: Report) -> None:
    cutoff = utcnow() - timedelta(seconds=config.task_lease)
    with Session(engine) as session:
        busy = session.scalars(
            select(Instance.uuid).where(
                Instance.task_state == TaskState.REBUILDING.value, Instance.updated_at < cutoff
            )
        ).all()
    for uuid in busy:
        with Session(engine) as session, session.begin():
            if end_lost_rebuild(session, uuid):
                report.add("lost rebuilds failed")


def _lost_moves(engine: Engine, config: ComputeConfig, report: Report) -> None:
    still_since = utcnow() - timedelta(seconds=config.task_lease)
    with Session(engine) as session:
        moving = session.scalars(
            select(Instance.uuid).where(Instance.task_state.in_([s.value for s in MOVING]))
        ).all()
    for uuid in moving:
        with Session(engine) as session, session.begin():
            freed = end_lost_move(
                session,
                uuid,
                down_after=config.host_down_after,
                still_since=still_since,
                qbh=config.qbh_physical_networks,
            )
        if freed is None:
            continue
        for host in freed:
            tell_scheduler(engine, host)
        report.add("lost moves ended")


def _move_disk_copies(engine: Engine, config: ComputeConfig, report: Report) -> None:
    if config.data_dir is not None:
        report.add("move disks removed", sweep_copies(engine, config.data_dir))


def _leaked_claims(engine: Engine, config: ComputeConfig, report: Report) -> None:
    live = select(Instance.uuid).where(Instance.vm_state != VmState.DELETED.value)
    with Session(engine) as session:
        leaked = session.execute(
            select(PciDeviceRow.instance_uuid, Host.name)
            .distinct()
            .join(Host, Host.id == PciDeviceRow.host_id)
            .where(
                PciDeviceRow.status.in_(IN_USE),
                PciDeviceRow.instance_uuid.is_not(None),
                not_(PciDeviceRow.instance_uuid.in_(live)),
            )
        ).all()
    for uuid, host in leaked:
        if uuid is None:
            continue
        with Session(engine) as session, session.begin():
            row = session.get(Instance, uuid)
            if row is not None and row.vm_state != VmState.DELETED.value:
                continue  # it came alive meanwhile (a claim commits with its server)
            # A server that was never a row holds no vCPU/RAM of its own to give back.
            claims.free(session.connection(), host, uuid)
        tell_scheduler(engine, host)
        report.add("leaked claims freed")


def _stale_bindings(engine: Engine, config: ComputeConfig, report: Report) -> None:
    live = select(Instance.uuid).where(Instance.vm_state != VmState.DELETED.value)
    with Session(engine) as session, session.begin():
        stale = session.scalars(
            select(Port).where(
                Port.device_owner.startswith("compute:"),
                Port.device_id != "",
                not_(Port.device_id.in_(live)),
                or_(Port.device_id.in_(select(Instance.uuid)), and_(Port.created_by_server)),
            )
        ).all()
        for port in stale:
            if port.created_by_server:
                session.delete(port)
            else:
                unbind_port(port)
            report.add("stale port bindings cleared")
