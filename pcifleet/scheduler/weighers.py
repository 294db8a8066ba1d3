"""Weighers: which of the hosts that pass the filters is best. Lower keys win.

- A server without PCI requests prefers hosts without free PCI devices, so
  PCI-capable hosts stay available for PCI work.
- With PCI requests, best fit: the placement that breaks the fewest whole PFs
  (or whole devices) and whole NUMA nodes, so large requests still fit later.
- Then pack (the fewest free devices left: fill used hosts first) or spread
  (the most left).
"""

from __future__ import annotations

from pcifleet.scheduler.config import SchedulerConfig
from pcifleet.scheduler.filters import free_vcpus
from pcifleet.scheduler.index import HostEntry, whole_units
from pcifleet.store.claims import ClaimPlan

Key = tuple[int, ...]


def pci_key(entry: HostEntry, plan: ClaimPlan, config: SchedulerConfig) -> Key:
    pfs_before, nodes_before = whole_units(entry.pools)
    pfs_after, nodes_after = whole_units(plan.pools_after)
    lost_pfs, lost_nodes = pfs_before - pfs_after, nodes_before - nodes_after
    left = sum(p.count for p in plan.pools_after.pools)
    if config.mode == "spread":
        return (-left, lost_pfs, lost_nodes)
    return (lost_pfs, lost_nodes, left)


def plain_key(entry: HostEntry, vcpus: int, config: SchedulerConfig) -> Key:
    cpus_left = free_vcpus(entry, config) - vcpus
    return (entry.pci_free, -cpus_left if config.mode == "spread" else cpus_left)
