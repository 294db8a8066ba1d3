"""Layer 5: the scheduler — candidate index, filters, weighers, claim with retry.

``Scheduler(engine).select_and_claim(instance_uuid, requests, vcpus=, memory_mb=)``
picks a host and claims there; ``.capacity(requests, ...)`` says how many more
such servers fit; ``.release(host, instance_uuid, ...)`` frees a server's devices.
"""

from pcifleet.scheduler.config import SchedulerConfig
from pcifleet.scheduler.errors import NoValidHost
from pcifleet.scheduler.scheduler import Capacity, Placement, Scheduler

__all__ = ["Capacity", "NoValidHost", "Placement", "Scheduler", "SchedulerConfig"]
