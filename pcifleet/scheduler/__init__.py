"""Layer 5: the scheduler — candidate index, filters, weighers, claim with retry.

Plain functions over a shared per-engine scheduler (what the API calls):
``select_and_claim(engine, instance_uuid, requests, vcpus=, memory_mb=) -> ClaimResult``,
``capacity(engine, requests, ...) -> Capacity``,
``explain(scheduler_for(engine), requests, ...) -> list[HostVerdict]`` (a dry run),
``release(engine, host, instance_uuid, ...)``.
Or hold a ``Scheduler(engine, SchedulerConfig(...))`` yourself.
"""

from pcifleet.scheduler.config import SchedulerConfig
from pcifleet.scheduler.errors import NoValidHost
from pcifleet.scheduler.explain import Failure, HostVerdict, explain
from pcifleet.scheduler.scheduler import Capacity, Placement, Scheduler
from pcifleet.scheduler.shared import (
    capacity,
    host_changed,
    release,
    scheduler_for,
    select_and_claim,
)

__all__ = [
    "Capacity",
    "Failure",
    "HostVerdict",
    "NoValidHost",
    "Placement",
    "Scheduler",
    "SchedulerConfig",
    "capacity",
    "explain",
    "host_changed",
    "release",
    "scheduler_for",
    "select_and_claim",
]
