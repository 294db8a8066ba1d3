"""One shared scheduler per engine, behind plain functions.

The API calls ``select_and_claim(engine, instance_uuid, requests, vcpus=,
memory_mb=)`` without managing a ``Scheduler`` object; the scheduler (and its
index) for that engine is made on first use and kept while the engine lives.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Collection, Sequence

from sqlalchemy import Engine

from pcifleet.pci import PciRequest
from pcifleet.scheduler.config import SchedulerConfig
from pcifleet.scheduler.scheduler import Capacity, Scheduler
from pcifleet.store.claims import ClaimHook, ClaimResult, FreeResult

_schedulers: weakref.WeakKeyDictionary[Engine, Scheduler] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def scheduler_for(engine: Engine, config: SchedulerConfig | None = None) -> Scheduler:
    """The engine's shared scheduler; ``config`` replaces it with new settings."""
    with _lock:
        sched = _schedulers.get(engine)
        if sched is None or (config is not None and sched.config != config):
            if sched is not None:
                sched.close()
            sched = _schedulers[engine] = Scheduler(engine, config)
        return sched


def select_and_claim(
    engine: Engine,
    instance_uuid: str,
    requests: Sequence[PciRequest],
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    numa_cells: Sequence[int] | None = None,
    numa_nodes: int | None = None,
    then: ClaimHook | None = None,
    ignore_hosts: Collection[str] = (),
    only_host: str | None = None,
) -> ClaimResult:
    """Pick a host and claim there (see ``Scheduler.select_and_claim``); raises NoValidHost."""
    placement = scheduler_for(engine).select_and_claim(
        instance_uuid,
        requests,
        vcpus=vcpus,
        memory_mb=memory_mb,
        numa_cells=numa_cells,
        numa_nodes=numa_nodes,
        then=then,
        ignore_hosts=ignore_hosts,
        only_host=only_host,
    )
    return placement.claim


def release(
    engine: Engine, host: str, instance_uuid: str, *, vcpus: int = 0, memory_mb: int = 0
) -> FreeResult:
    """Free a server's devices and resources and update the shared index."""
    return scheduler_for(engine).release(host, instance_uuid, vcpus=vcpus, memory_mb=memory_mb)


def host_changed(engine: Engine, host: str) -> None:
    """Tell the shared index that ``host`` changed in a transaction of the caller's."""
    scheduler_for(engine).host_changed(host)


def capacity(
    engine: Engine,
    requests: Sequence[PciRequest],
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    numa_cells: Sequence[int] | None = None,
    numa_nodes: int | None = None,
) -> Capacity:
    """How many more such servers fit now, fleet-wide and per host."""
    return scheduler_for(engine).capacity(
        requests, vcpus=vcpus, memory_mb=memory_mb, numa_cells=numa_cells, numa_nodes=numa_nodes
    )
