"""Scheduler settings, with the defaults Nova operators know."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("pack", "spread")


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    # pack: fill hosts that are already in use (keeps whole hosts, PFs, NUMA nodes
    # free for large requests); spread: most free first (spreads load and blast radius).
    mode: str = "pack"
    # A host that has not reported for this long is down (Nova's service_down_time).
    host_down_after: float = 60.0
    # How often the index rescans host generations to see other controllers' work.
    refresh_interval: float = 5.0
    # Before answering "no valid host", re-read the hosts (other writers may
    # have freed or added some), unless a re-read this recent found nothing
    # new: one costs a scan of every host row, ~20 ms of CPU at 10,000 hosts,
    # which a burst of impossible requests must not pay one by one. 0: always.
    recheck_interval: float = 1.0
    # Claims tried before giving up. Within a process claims take turns (the
    # scheduler's lock), so only another controller process makes one lose, and
    # each loss is that process's progress: with `uvicorn --workers N` sharing
    # one host's VFs, a burst of boots loses many races in a row (5 left
    # servers in ERROR with 2 workers and 24 boots at once).
    max_attempts: int = 64
    # Candidates that pass the filters and are weighed against each other.
    weigh_window: int = 3
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("host_down_after", "refresh_interval", "recheck_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")
        for name in ("max_attempts", "weigh_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        for name in ("cpu_allocation_ratio", "ram_allocation_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
