"""Host filters: up, enough vCPU and RAM, and all PCI requests at once.

Each filter answers None (passes) or the reason it fails, so a failed schedule
can say how many hosts failed which filter. The PCI filter is the claim plan
itself: planning on a copy of the host's pools either succeeds — and that plan
is what gets weighed and claimed — or says which request did not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

from pcifleet.pci import PciRequest, PciRequestsUnsatisfiable
from pcifleet.scheduler.config import SchedulerConfig
from pcifleet.scheduler.index import HostEntry
from pcifleet.store.claims import ClaimPlan, copy_pools, plan_claim

HOST_DOWN = "host up: no report within the down interval"
HOST_DISABLED = "host up: disabled"
NOT_ENOUGH_VCPUS = "vCPU: not enough free vCPUs"
NOT_ENOUGH_RAM = "RAM: not enough free memory"


def host_up(entry: HostEntry) -> str | None:
    """Enabled, and reported within ``host_down_after`` as of the last refresh."""
    if not entry.enabled:
        return HOST_DISABLED
    if not entry.up:
        return HOST_DOWN
    return None


def free_vcpus(entry: HostEntry, config: SchedulerConfig) -> int:
    return int(entry.vcpus * config.cpu_allocation_ratio) - entry.vcpus_used


def free_memory_mb(entry: HostEntry, config: SchedulerConfig) -> int:
    return int(entry.memory_mb * config.ram_allocation_ratio) - entry.memory_mb_used


def resources(entry: HostEntry, vcpus: int, memory_mb: int, config: SchedulerConfig) -> str | None:
    if vcpus and free_vcpus(entry, config) < vcpus:
        return NOT_ENOUGH_VCPUS
    if memory_mb and free_memory_mb(entry, config) < memory_mb:
        return NOT_ENOUGH_RAM
    return None


def cell_options(
    entry: HostEntry,
    numa_cells: Sequence[int] | None,
    numa_nodes: int | None,
    vcpus: int = 0,
    memory_mb: int = 0,
) -> list[list[int] | None]:
    """The host NUMA node sets the instance may be placed on, in order of preference.

    Explicit ``numa_cells`` win; an instance with ``numa_nodes`` NUMA nodes may
    take any such subset of the host's nodes whose cells (when the host
    reported them) each hold its share of vCPUs and memory; otherwise NUMA
    does not constrain.
    """
    if numa_cells is not None:
        return [sorted(set(numa_cells))]
    if numa_nodes and entry.numa_nodes:
        cpus_each, mem_each = vcpus // numa_nodes, memory_mb // numa_nodes
        fits = {
            c.id
            for c in entry.topology.cells
            if len(c.cpus) >= cpus_each and c.memory_mb >= mem_each
        }
        nodes = [n for n in entry.numa_nodes if not entry.topology.cells or n in fits]
        return [list(c) for c in combinations(nodes, numa_nodes)]
    return [None]


def socket_cells(entry: HostEntry, cells: Sequence[int] | None) -> frozenset[int] | None:
    """The cells sharing a socket with ``cells`` (the ``socket`` policy's reach)."""
    if cells is None or not entry.topology.cells:
        return None
    return entry.topology.socket_mates(cells)


def fit_pci(
    entry: HostEntry,
    requests: Sequence[PciRequest],
    options: Sequence[list[int] | None],
    vcpus: int,
    memory_mb: int,
) -> ClaimPlan | None:
    """A claim plan meeting every request at once on this host, or None."""
    for cells in options:
        try:
            return plan_claim(
                entry,
                requests,
                cells,
                vcpus=vcpus,
                memory_mb=memory_mb,
                pools=copy_pools(entry.pools),
                socket_cells=socket_cells(entry, cells),
            )
        except PciRequestsUnsatisfiable:
            continue
    return None


def pci_failure(
    entry: HostEntry, requests: Sequence[PciRequest], options: Sequence[list[int] | None]
) -> str:
    """Why the PCI filter failed on this host (the first option's reason)."""
    if not options:
        return "NUMA: the host has too few NUMA nodes with room for the instance's cells"
    why = entry.pools.explain_failure(requests, options[0], socket_cells(entry, options[0]))
    # Drop the per-host numbers so hosts failing the same way count together.
    return "PCI: " + (why or "no fit").split(";")[0]
