"""pcifleet's own API (``/pcifleet/v1``): host inventory reports, the agents'
task feed and results, hosts and capacity for operators.

Errors here are placement-style ``{"errors": [{"status", "code", "title",
"detail"}]}`` with codes that never change (``pcifleet.concurrent_update``...).
Agents authenticate with ``Authorization: Bearer <host credential>`` and may act
for their own host only; admins (``X-Auth-Token``) may do everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from pcifleet import scheduler
from pcifleet.api.agents import Caller, CallerDep, set_agent_credential
from pcifleet.api.deps import SessionDep, SettingsDep, utcnow
from pcifleet.api.errors import BadRequest, Conflict, NotFound
from pcifleet.api.server_shape import server_shape
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.hosts import host_state, registration_of
from pcifleet.compute.move_disks import sweep_copies
from pcifleet.compute.move_steps import MOVE_KINDS
from pcifleet.compute.moves import moving_here
from pcifleet.compute.release import tell_scheduler
from pcifleet.compute.results import apply_result
from pcifleet.compute.schemas import Strict
from pcifleet.compute.states import VmState
from pcifleet.pci import (
    InvalidPciAddress,
    InvalidPciDevice,
    PciDevice,
)
from pcifleet.store.errors import HostNotFound, InvalidInventory, StaleGeneration
from pcifleet.store.inventory import heartbeat, sync_inventory
from pcifleet.store.models import Host, Instance, Task
from pcifleet.store.models import tasks_table as T
from pcifleet.store.task_bell import BELL

router = APIRouter(prefix="/pcifleet/v1", tags=["pcifleet"])
HostName = Annotated[str, Field(min_length=1, max_length=255)]
MAX_DEVICES = 16384
# How often a waiting feed looks at draining, its deadline and its client.
POLL_INTERVAL = 0.2
# How often a waiting feed reads the table for tasks no bell of this process rang.
RECHECK_SECONDS = 1.0
HEARTBEAT_SECONDS = 5.0
MAX_RESULTS = 256


# --- inventory ----------------------------------------------------------------


class ReportedDevice(Strict):
    device: dict[str, Any]
    tags: dict[str, str | None] | None = None


class InventoryReport(Strict):
    """A host's whole assignable inventory, with the generation the agent last saw."""

    generation: Annotated[int, Field(ge=0)] | None = None
    vcpus: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    memory_mb: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    devices: Annotated[list[ReportedDevice], Field(max_length=MAX_DEVICES)]
    # NumaTopology.to_json(); checked by the store, which names the bad field.
    numa_topology: Annotated[list[dict[str, Any]], Field(max_length=1024)] | None = None


def host_view(host: Host, down_after: float) -> dict[str, Any]:
    return {
        "name": host.name,
        "state": host.state,
        "status": host_state(host.last_report_at, down_after),
        "generation": host.generation,
        "last_report_at": host.last_report_at.isoformat() if host.last_report_at else None,
        "vcpus": host.vcpus,
        "vcpus_used": host.vcpus_used,
        "memory_mb": host.memory_mb,
        "memory_mb_used": host.memory_mb_used,
        "pci_stats": host.pci_stats,
        "numa_topology": host.numa_topology,
    }


@router.get("")
def root() -> dict[str, Any]:
    return {
        "version": "1.0",
        "links": [{"rel": "describedby", "href": "/pcifleet/v1/openapi.json"}],
    }


@router.get("/hosts")
def list_hosts(session: SessionDep, caller: CallerDep, settings: SettingsDep) -> dict[str, Any]:
    caller.require_admin()
    hosts = session.scalars(select(Host).order_by(Host.name))
    return {"hosts": [host_view(h, settings.host_down_after_seconds) for h in hosts]}


@router.get("/hosts/{host}")
def show_host(
    host: str, session: SessionDep, caller: CallerDep, settings: SettingsDep
) -> dict[str, Any]:
    caller.require_host(host)
    row = session.scalar(select(Host).where(Host.name == host))
    if row is None:
        raise NotFound(f"host {host[:64]!r} is not known", kind="pcifleet.host_not_found")
    return {"host": host_view(row, settings.host_down_after_seconds)}


@router.post("/hosts/{host}/inventory")
def report_inventory(
    host: str, body: InventoryReport, request: Request, caller: CallerDep
) -> dict[str, Any]:
    caller.require_host(host)
    devices = []
    for i, item in enumerate(body.devices):
        try:
            devices.append((PciDevice.from_dict(item.device), item.tags))
        except (InvalidPciDevice, InvalidPciAddress, TypeError) as exc:
            raise BadRequest(
                f"devices[{i}].device: {exc}", kind="pcifleet.invalid_inventory"
            ) from None
    engine: Engine = request.app.state.engine
    try:
        result = sync_inventory(
            engine,
            host,
            devices,
            body.generation,
            vcpus=body.vcpus,
            memory_mb=body.memory_mb,
            numa_topology=body.numa_topology,
        )
        # The report wrote the host's last report time: that is its heartbeat,
        # and the feed call that follows need not write another.
        HEARTBEATS.written(engine, host)
    except StaleGeneration as exc:
        raise Conflict(str(exc), kind=exc.code) from None
    except InvalidInventory as exc:
        raise BadRequest(str(exc), kind=exc.code) from None
    if result.generation != body.generation:
        # The report changed the host (or made it): the next boot must see its
        # pools now, not after the scheduler's next periodic look.
        tell_scheduler(engine, host)
    return {
        "host": host,
        "generation": result.generation,
        "added": result.added,
        "removed": result.removed,
        "flagged": result.flagged,
        "returned": result.returned,
        "updated": result.updated,
        "pci_stats": result.pci_stats,
    }


@router.post("/hosts/{host}/credential", status_code=201)
def new_credential(host: HostName, request: Request, caller: CallerDep) -> dict[str, Any]:
    """Create or rotate the host's agent credential (admins); shown only here."""
    caller.require_admin()
    secret = set_agent_credential(request.app.state.engine, host)
    return {"host": host, "credential": secret}


@router.post("/hosts/{host}/heartbeat", status_code=204)
def report_heartbeat(host: str, request: Request, caller: CallerDep) -> Response:
    caller.require_host(host)
    try:
        heartbeat(request.app.state.engine, host)
    except HostNotFound as exc:
        raise NotFound(str(exc), kind=exc.code) from None
    return Response(status_code=204)


# --- tasks --------------------------------------------------------------------


def task_view(task: Any) -> dict[str, Any]:
    return {
        "id": task.id,
        "host": task.host,
        "kind": task.kind,
        "state": task.state,
        "instance_uuid": task.instance_uuid,
        "payload": task.payload,
        "result": task.result,
    }


def take_tasks(
    engine: Engine, host: str, include_running: bool, lease_seconds: float
) -> list[dict[str, Any]]:
    """Pending tasks of ``host`` in id order, now running and leased for
    ``lease_seconds`` (each handed out once; ``include_running`` hands out again
    what a restarted agent had been given).

    One read and one guarded write for all of them: a task another poller of
    the same host took meanwhile no longer matches the write's state guard."""
    states = ("pending", "running") if include_running else ("pending",)
    with engine.begin() as conn:
        ids = (
            conn.execute(select(T.c.id).where(T.c.host == host, T.c.state.in_(states)))
            .scalars()
            .all()
        )
        if not ids:
            return []
        now = utcnow()
        rows = conn.execute(
            update(T)
            .where(T.c.id.in_(ids), T.c.host == host, T.c.state.in_(states))
            .values(
                state="running",
                attempts=T.c.attempts + 1,
                leased_until=now + timedelta(seconds=lease_seconds),
                updated_at=now,
            )
            .returning(*T.c)
        ).all()
    return [task_view(row) for row in sorted(rows, key=lambda r: r.id)]


class Heartbeats:
    """Writes a host's heartbeat at most every ``every`` seconds from this
    process: an agent's feed calls and result reports say it is alive, but
    rewriting the host row on each of them costs a write per call."""

    def __init__(self) -> None:
        # by engine too: one process may serve several stores (tests do)
        self._last: dict[tuple[int, str], float] = {}

    def beat(self, engine: Engine, host: str, every: float) -> None:
        now, key = time.monotonic(), (id(engine), host)
        if now - self._last.get(key, -every) < every:
            return
        with contextlib.suppress(HostNotFound):
            heartbeat(engine, host)
            self._last[key] = now

    def written(self, engine: Engine, host: str) -> None:
        """The host's row was just written with the time (an inventory report)."""
        self._last[(id(engine), host)] = time.monotonic()


HEARTBEATS = Heartbeats()


def heartbeat_every(settings: ApiSettings) -> float:
    """How often a busy agent's host row is refreshed: well within the time
    after which the host would be shown down."""
    return min(HEARTBEAT_SECONDS, settings.host_down_after_seconds / 6)


@router.get("/hosts/{host}/tasks")
async def task_feed(
    host: str,
    request: Request,
    caller: CallerDep,
    settings: SettingsDep,
    wait: Annotated[float, Query(ge=0, le=300)] = 0,
    include_running: bool = False,
) -> dict[str, Any]:
    """Long-poll: answers as soon as there are tasks, or after ``wait`` seconds.

    While it waits it reads the tasks table only when this process rings the
    host's bell (a task for it committed) or every ``RECHECK_SECONDS`` (tasks
    another process added)."""
    caller.require_host(host)
    engine: Engine = request.app.state.engine
    deadline = time.monotonic() + min(wait, settings.task_poll_max_seconds)
    if not caller.admin:
        await run_in_threadpool(HEARTBEATS.beat, engine, host, heartbeat_every(settings))
    loop = asyncio.get_running_loop()
    rung = asyncio.Event()

    def ring() -> None:  # called from the thread that committed the task
        loop.call_soon_threadsafe(rung.set)

    stop_listening = BELL.listen(host, ring)
    try:
        while True:
            rung.clear()
            tasks = await run_in_threadpool(
                take_tasks, engine, host, include_running, settings.task_lease_seconds
            )
            if tasks:
                return {"tasks": tasks}
            recheck = min(deadline, time.monotonic() + RECHECK_SECONDS)
            while not rung.is_set():
                # draining: `pcifleet up` is stopping its agents, which should not wait
                now = time.monotonic()
                if request.app.state.draining.is_set() or now >= deadline:
                    return {"tasks": []}
                if now >= recheck:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(rung.wait(), min(POLL_INTERVAL, recheck - now))
                if not rung.is_set() and await request.is_disconnected():
                    return {"tasks": []}
    finally:
        stop_listening()


class TaskResult(Strict):
    state: Literal["done", "failed"]
    message: Annotated[str, Field(max_length=4096)] = ""
    details: Annotated[dict[str, Any], Field(max_length=64)] = Field(default_factory=dict)


class ResultOf(TaskResult):
    task_id: Annotated[int, Field(ge=1, le=2**62)]


@router.post("/tasks/{task_id}/result")
def task_result(
    task_id: Annotated[int, Path(ge=1, le=2**62)],
    body: TaskResult,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Record a task's outcome and its effect on the server in one transaction.

    A report for a task that has ended already (a retry after a lost answer, or
    a task cancelled because its server went away) answers 200 with what was
    recorded and changes nothing, so agents can always retry.
    """
    task = session.get(Task, task_id, with_for_update=True)
    if task is None:
        raise NotFound(f"task {task_id} is not known", kind="pcifleet.task_not_found")
    caller.require_host(task.host)
    freed = _record(session, task, body, settings)
    session.commit()
    _after_results(request, caller, settings, task.host, {freed}, [task])
    return {"task": task_view(task)}


class TaskResults(Strict):
    results: Annotated[list[ResultOf], Field(min_length=1, max_length=MAX_RESULTS)]


@router.post("/hosts/{host}/results")
def task_results(
    host: str,
    body: TaskResults,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Record the outcomes of several of ``host``'s tasks in one transaction.

    Each is recorded as ``POST /tasks/{id}/result`` records one (a task that
    has ended already keeps what was recorded); the answer lists every task as
    recorded, in the order given. An unknown task, or one of another host,
    refuses the whole report, naming it, and changes nothing."""
    caller.require_host(host)
    ids = [r.task_id for r in body.results]
    found = {
        t.id: t for t in session.scalars(select(Task).where(Task.id.in_(ids)).with_for_update())
    }
    for i, r in enumerate(body.results):
        task = found.get(r.task_id)
        if task is None:
            raise NotFound(
                f"results[{i}].task_id: task {r.task_id} is not known",
                kind="pcifleet.task_not_found",
            )
        if task.host != host:
            raise BadRequest(f"results[{i}].task_id: task {r.task_id} is not a task of {host}")
    freed = {_record(session, found[r.task_id], r, settings) for r in body.results}
    session.commit()
    _after_results(request, caller, settings, host, freed, list(found.values()))
    return {"tasks": [task_view(found[i]) for i in ids]}


def _record(session: Session, task: Task, body: TaskResult, settings: ApiSettings) -> str | None:
    """The result and its effect, unless the task has ended already; the host
    whose devices the effect freed, if any."""
    if task.state in ("done", "failed", "cancelled"):
        return None
    task.state = body.state
    task.result = {"message": body.message, "details": body.details}
    task.leased_until = None
    return apply_result(
        session,
        task,
        body.state == "done",
        body.message,
        body.details,
        qbh_physical_networks=settings.qbh_physical_networks,
    )


def _after_results(
    request: Request,
    caller: Caller,
    settings: ApiSettings,
    host: str,
    freed: set[str | None],
    tasks: list[Task],
) -> None:
    engine: Engine = request.app.state.engine
    for each in freed:
        tell_scheduler(engine, each)
    # A move that ended lets go of the disk it carried (the reconciler would, later).
    for uuid in {t.instance_uuid for t in tasks if t.kind in MOVE_KINDS and t.instance_uuid}:
        sweep_copies(engine, settings.data_dir, uuid)
    if not caller.admin:
        # An agent busy reporting a run of results is alive: do not let a long
        # batch of builds make its host look down.
        HEARTBEATS.beat(engine, host, heartbeat_every(settings))


@router.get("/hosts/{host}/instances")
def expected_instances(host: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    """The servers the controller expects on ``host``: its agent destroys any
    domain pcifleet made that is not among them (deleted while the host was down)."""
    caller.require_host(host)
    now = utcnow()
    row = session.scalar(select(Host).where(Host.name == host))
    if row is None:
        raise NotFound(f"host {host[:64]!r} is not known", kind="pcifleet.host_not_found")
    uuids = set(
        session.scalars(
            select(Instance.uuid).where(
                Instance.host == host, Instance.vm_state != VmState.DELETED.value
            )
        ).all()
    )
    # a moving server has a domain at both ends until its move is over
    uuids |= moving_here(session, host)
    # Which registration of the host this list belongs to: an agent that finds
    # it changed (a controller pointed at another database) must not act on it.
    registration = registration_of(row)
    # as_of: the time the list was read, which a power-state report sends back
    # so servers changed since are not judged by a stale look at the host.
    return {
        "host": host,
        "registration": registration,
        "as_of": now.isoformat(),
        "instances": sorted(uuids),
    }


# --- capacity -----------------------------------------------------------------


@router.get("/capacity/servers")
def server_capacity(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    flavor: Annotated[str | None, Query(max_length=255)] = None,
    sriov_ports: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006 - FastAPI's idiom
    ports: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006
) -> dict[str, Any]:
    """How many more servers of one shape fit now: a flavor (its vCPUs, RAM and
    ``pci_passthrough:alias``) plus SR-IOV ports given as ``physnet:vnic_type``
    (``?flavor=m1.gpu&sriov_ports=physnet1:direct&sriov_ports=physnet2:direct``)
    or as existing ports by name or id (``&ports=vf-port``)."""
    caller.require_admin()
    shape = server_shape(
        session,
        flavor=flavor,
        ports=ports,
        sriov_ports=sriov_ports,
        aliases=settings.aliases,
        alias_source=settings.alias_source,
    )
    if shape.empty:
        raise BadRequest("give a flavor or sriov_ports to count servers of that shape")
    try:
        result = scheduler.capacity(
            request.app.state.engine, shape.requests, vcpus=shape.vcpus, memory_mb=shape.memory_mb
        )
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return {
        "servers": result.total,
        "per_host": result.per_host,
        "hosts_considered": result.hosts_considered,
        "hosts_total": result.hosts_total,
    }


@router.get("/capacity")
def capacity(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    physical_network: Annotated[str | None, Query(max_length=64)] = None,
    vendor_id: Annotated[str | None, Query(max_length=8)] = None,
    product_id: Annotated[str | None, Query(max_length=8)] = None,
    dev_type: Annotated[Literal["type-PCI", "type-PF", "type-VF"] | None, Query()] = None,
    include_down: bool = False,
) -> dict[str, Any]:
    """Free and total devices per host and pool, for the pools that match."""
    caller.require_admin()
    wanted = {"vendor_id": vendor_id, "product_id": product_id, "dev_type": dev_type}
    hosts_out = []
    free_total = total_total = 0
    for host in session.scalars(select(Host).order_by(Host.name)):
        status = host_state(host.last_report_at, settings.host_down_after_seconds)
        if status == "down" and not include_down:
            continue
        pools = []
        for pool in host.pci_stats:
            if any(
                v is not None and str(pool.get(k, "")).lower() != v.lower()
                for k, v in wanted.items()
            ):
                continue
            tags = pool.get("tags") or {}
            if physical_network is not None and tags.get("physical_network") != physical_network:
                continue
            pools.append(pool)
            free_total += int(pool.get("count", 0))
            total_total += int(pool.get("total", pool.get("count", 0)))
        hosts_out.append({"host": host.name, "state": host.state, "status": status, "pools": pools})
    return {"hosts": hosts_out, "free": free_total, "total": total_total}
