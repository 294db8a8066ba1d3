"""The compute layer's settings: timeouts, leases and worker counts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ComputeConfig:
    # A server still building this long after it was created goes to ERROR
    # (Nova's instance_build_timeout); 0 turns the timeout off.
    build_timeout: float = 600.0
    # How long an agent may hold a task before it is handed out again.
    task_lease: float = 300.0
    # Hand-outs of one task before it fails for good.
    task_attempts: int = 3
    # How long a worker holds a controller job before another may take it.
    job_lease: float = 30.0
    # A host whose agent has not reported for this long is down.
    host_down_after: float = 60.0
    # Threads taking controller jobs in each API process.
    job_workers: int = 2
    # Seconds between reconciler passes (0: never, tests run it by hand).
    reconcile_interval: float = 15.0
    # Physical networks whose SR-IOV ports bind as 802.1qbh.
    qbh_physical_networks: frozenset[str] = frozenset()
    # The controller's data directory, where cold moves' disks wait between
    # their hosts (None: the reconciler has no copies to clear).
    data_dir: Path | None = None
