"""The scheduler's in-memory index of every host's pools.

Pools are grouped by *signature*: what a request can ask for (vendor_id,
product_id, dev_type and the spec tags such as physical_network) — everything
but the NUMA node and the parent PF. For each signature the index keeps the
hosts that have free devices of it, bucketed by how many, so a request walks
only hosts that can serve it, least free first (pack) or most free first
(spread), and the cost of a request does not grow with the hosts that cannot.

The same index answers "no host fits" without judging every host: hosts are
also grouped by *shape* (their pools with counts, and their NUMA cells), which
decides every PCI and NUMA verdict, so a verdict is worked out once per shape;
free vCPUs and RAM are bucketed like devices, so the hosts short of them are a
set operation away; and the physical networks the fleet knows are counted.

The index is refreshed from the store by generation: one cheap scan of host
headers, then only hosts whose generation moved are reloaded. After its own
claims the scheduler updates the index directly from the claim result.
"""

from __future__ import annotations

import bisect
import heapq
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pcifleet.pci import (
    DevType,
    InvalidNumaTopology,
    InvalidPciRequest,
    NumaTopology,
    PciPools,
    PciRequest,
    Pool,
)
from pcifleet.store.snapshot import HostSnapshot

log = logging.getLogger(__name__)

Sig = tuple[str, str, str, tuple[tuple[str, str | None], ...]]
# Everything a PCI or NUMA verdict on a host depends on: its pools, in order,
# with their counts, and its NUMA cells.
Shape = tuple[tuple[object, ...], NumaTopology]
# Spec keys a signature cannot judge: they vary between pools of one signature.
UNINDEXED_KEYS = frozenset({"numa_node", "parent_addr"})


def sig_of(pool: Pool) -> Sig:
    return (
        pool.vendor_id,
        pool.product_id,
        pool.dev_type.value,
        tuple(sorted((k, v) for k, v in pool.tags.items())),
    )


def sig_matches(sig: Sig, spec: dict[str, str | None]) -> bool:
    """Could a pool of this signature match ``spec``? (``Pool.matches``, less NUMA/parent.)"""
    vendor_id, product_id, dev_type, tags = sig
    # A stand-in pool of the signature; the model's own comparison judges it.
    pool = Pool(vendor_id, product_id, DevType(dev_type), None, "", dict(tags))
    return pool.matches({k: v for k, v in spec.items() if k not in UNINDEXED_KEYS})


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(slots=True)
class HostEntry:
    """One host as the scheduler sees it, at one generation."""

    id: int
    name: str
    generation: int
    enabled: bool
    last_report: float | None
    vcpus: int
    vcpus_used: int
    memory_mb: int
    memory_mb_used: int
    pools: PciPools
    # Reported within the down interval, as of the last refresh (heartbeats do
    # not bump generations, so the refresh asks the database who is late).
    up: bool = True
    sig_free: dict[Sig, int] = field(default_factory=dict)
    pci_free: int = 0
    numa_nodes: tuple[int, ...] = ()
    # The cells the agent reported; empty when it did not (numa_nodes then
    # comes from the devices' NUMA nodes alone).
    topology: NumaTopology = field(default_factory=NumaTopology)
    shape: Shape = ((), NumaTopology())
    # Physical networks tagged on any of its pools, free or not (lower case).
    physnets: frozenset[str] = frozenset()

    @classmethod
    def from_snapshot(cls, snap: HostSnapshot) -> HostEntry:
        """The entry of a host row; a row whose pools cannot be read is kept but
        disabled (logged), so one bad row cannot stop the whole fleet's scheduling."""
        broken = False
        try:
            pools = PciPools.from_json(snap.pci_stats)
        except (InvalidPciRequest, TypeError, ValueError) as exc:
            log.error("host %s: unreadable pci_stats, not scheduling on it: %s", snap.name, exc)
            pools, broken = PciPools(), True
        entry = cls(
            id=snap.id,
            name=snap.name,
            generation=snap.generation,
            enabled=snap.state == "enabled",
            last_report=_epoch(snap.last_report_at),
            vcpus=snap.vcpus,
            vcpus_used=snap.vcpus_used,
            memory_mb=snap.memory_mb,
            memory_mb_used=snap.memory_mb_used,
            pools=pools,
        )
        try:
            entry.topology = NumaTopology.from_json(snap.numa_topology)
        except InvalidNumaTopology as exc:
            log.error("host %s: unreadable numa_topology, ignoring it: %s", snap.name, exc)
        if broken:
            entry.enabled = False
        entry.recount()
        return entry

    def recount(self) -> None:
        """Derive the per-signature free counts from the pools."""
        sig_free: dict[Sig, int] = {}
        nodes: set[int] = set()
        shape: list[tuple[object, ...]] = []
        physnets: set[str] = set()
        for pool in self.pools.pools:
            key = sig_of(pool)
            if pool.count:
                sig_free[key] = sig_free.get(key, 0) + pool.count
            if pool.numa_node is not None:
                nodes.add(pool.numa_node)
            shape.append((key, pool.numa_node, pool.parent_addr, pool.count, pool.total))
            if pool.tags.get("physical_network"):
                physnets.add(str(pool.tags["physical_network"]).lower())
        self.sig_free = sig_free
        self.pci_free = sum(sig_free.values())
        self.numa_nodes = tuple(sorted(nodes | {c.id for c in self.topology.cells}))
        self.shape = (tuple(shape), self.topology)
        self.physnets = frozenset(physnets)


class Buckets:
    """Host ids grouped by a count, with the counts kept sorted for ordered walks."""

    __slots__ = ("by_level", "levels")

    def __init__(self) -> None:
        self.by_level: dict[int, set[int]] = {}
        self.levels: list[int] = []

    def add(self, host_id: int, level: int) -> None:
        hosts = self.by_level.get(level)
        if hosts is None:
            hosts = self.by_level[level] = set()
            bisect.insort(self.levels, level)
        hosts.add(host_id)

    def remove(self, host_id: int, level: int) -> None:
        hosts = self.by_level.get(level)
        if hosts is None:
            return
        hosts.discard(host_id)
        if not hosts:
            del self.by_level[level]
            del self.levels[bisect.bisect_left(self.levels, level)]

    def below(self, level: int) -> set[int] | None:
        """The hosts with a count under ``level``; None stands for all of them
        (saves building the set when every host is short)."""
        if not self.levels or level <= self.levels[0]:
            return set()
        if level > self.levels[-1]:
            return None
        end = bisect.bisect_left(self.levels, level)
        return set().union(*(self.by_level[lv] for lv in self.levels[:end]))

    def population(self, minimum: int) -> int:
        """How many hosts have a count of at least ``minimum``."""
        start = bisect.bisect_left(self.levels, minimum)
        return sum(len(self.by_level[lv]) for lv in self.levels[start:])

    def walk(self, minimum: int, ascending: bool) -> Iterator[tuple[int, int]]:
        """(level, host id) for every host with at least ``minimum``, in level order.

        The caller must not change the buckets while it walks.
        """
        start = bisect.bisect_left(self.levels, minimum)
        levels = self.levels[start:]
        for level in levels if ascending else reversed(levels):
            for host_id in self.by_level[level]:
                yield level, host_id


class FleetIndex:
    """Every host's entry plus the signature buckets; not thread-safe by itself.

    ``cpu_ratio`` and ``ram_ratio`` are the scheduler's allocation ratios: the
    free vCPU and RAM buckets count what the ``resources`` filter counts.
    """

    def __init__(self, cpu_ratio: float = 1.0, ram_ratio: float = 1.0) -> None:
        self.cpu_ratio, self.ram_ratio = cpu_ratio, ram_ratio
        self.hosts: dict[int, HostEntry] = {}
        self.by_name: dict[str, int] = {}
        self.sig_buckets: dict[Sig, Buckets] = {}
        # Hosts by total free PCI devices: servers without PCI requests take the lowest.
        self.pci_buckets = Buckets()
        self.eligible: set[int] = set()
        # Known hosts that are disabled or down (not walked).
        self.ineligible: set[int] = set()
        # Eligible hosts by shape, and by free vCPUs and free RAM.
        self.shapes: dict[Shape, set[int]] = {}
        self.cpu_buckets = Buckets()
        self.ram_buckets = Buckets()
        # The free vCPU and RAM a host was bucketed at (its entry moves on first).
        self._resources: dict[int, tuple[int, int]] = {}
        self.physnets: Counter[str] = Counter()
        self._spec_sigs: dict[tuple[tuple[str, str | None], ...], list[Sig]] = {}

    def free_vcpus(self, entry: HostEntry) -> int:
        return int(entry.vcpus * self.cpu_ratio) - entry.vcpus_used

    def free_memory_mb(self, entry: HostEntry) -> int:
        return int(entry.memory_mb * self.ram_ratio) - entry.memory_mb_used

    # -- membership -------------------------------------------------------------

    def _index(self, entry: HostEntry) -> None:
        self.eligible.add(entry.id)
        self.ineligible.discard(entry.id)
        for key, free in entry.sig_free.items():
            buckets = self.sig_buckets.get(key)
            if buckets is None:
                buckets = self.sig_buckets[key] = Buckets()
                self._spec_sigs.clear()  # a new signature may match cached specs
            buckets.add(entry.id, free)
        self.pci_buckets.add(entry.id, entry.pci_free)
        self.shapes.setdefault(entry.shape, set()).add(entry.id)
        cpus, mem = self.free_vcpus(entry), self.free_memory_mb(entry)
        self._resources[entry.id] = (cpus, mem)
        self.cpu_buckets.add(entry.id, cpus)
        self.ram_buckets.add(entry.id, mem)

    def _unindex(self, entry: HostEntry) -> None:
        if entry.id not in self.eligible:
            return
        self.eligible.discard(entry.id)
        self.ineligible.add(entry.id)
        for key, free in entry.sig_free.items():
            self.sig_buckets[key].remove(entry.id, free)
        self.pci_buckets.remove(entry.id, entry.pci_free)
        same = self.shapes[entry.shape]
        same.discard(entry.id)
        if not same:
            del self.shapes[entry.shape]
        cpus, mem = self._resources.pop(entry.id)
        self.cpu_buckets.remove(entry.id, cpus)
        self.ram_buckets.remove(entry.id, mem)

    def put(self, entry: HostEntry) -> None:
        """Add or replace a host; it is walked only while enabled and up."""
        old = self.hosts.get(entry.id)
        if old is not None:
            self._unindex(old)
            self.physnets.subtract(old.physnets)
            if old.name != entry.name:
                self.by_name.pop(old.name, None)
        self.hosts[entry.id] = entry
        self.by_name[entry.name] = entry.id
        self.physnets.update(entry.physnets)
        self.ineligible.add(entry.id)
        if entry.enabled and entry.up:
            self._index(entry)

    def drop(self, host_id: int) -> None:
        entry = self.hosts.pop(host_id, None)
        if entry is not None:
            self._unindex(entry)
            self.ineligible.discard(host_id)
            self.physnets.subtract(entry.physnets)
            self.by_name.pop(entry.name, None)

    def set_up(self, entry: HostEntry, up: bool) -> None:
        """The host started or stopped reporting: walk it or not."""
        entry.up = up
        if up and entry.enabled and entry.id not in self.eligible:
            self._index(entry)
        elif not up:
            self._unindex(entry)

    def replace_pools(self, entry: HostEntry, pools: PciPools) -> None:
        """The host's pools changed (a claim): move it between buckets."""
        indexed = entry.id in self.eligible
        if indexed:
            self._unindex(entry)
        self.physnets.subtract(entry.physnets)
        entry.pools = pools
        entry.recount()
        self.physnets.update(entry.physnets)
        if indexed:
            self._index(entry)

    # -- queries ----------------------------------------------------------------

    def sigs_for(self, request: PciRequest) -> list[Sig]:
        """Signatures any of the request's specs could match (cached per spec)."""
        out: list[Sig] = []
        for spec in request.specs:
            key = tuple(sorted(spec.items(), key=lambda kv: kv[0]))
            sigs = self._spec_sigs.get(key)
            if sigs is None:
                sigs = [s for s in self.sig_buckets if sig_matches(s, spec)]
                self._spec_sigs[key] = sigs
            out.extend(s for s in sigs if s not in out)
        return out

    def population(self, request: PciRequest) -> int:
        """Upper bound of the hosts that might serve ``request`` on its own."""
        sigs = self.sigs_for(request)
        minimum = request.count if len(sigs) == 1 else 1
        return sum(self.sig_buckets[s].population(minimum) for s in sigs)

    def walk(self, request: PciRequest, ascending: bool) -> Iterator[HostEntry]:
        """Hosts with free devices for ``request``, by how many (each host once)."""
        sigs = self.sigs_for(request)
        if len(sigs) == 1:
            for _, host_id in self.sig_buckets[sigs[0]].walk(request.count, ascending):
                yield self.hosts[host_id]
            return
        # Several signatures (an alias naming several device models): merge their
        # bucket walks by level, lazily, and keep hosts whose sum over them is enough.
        walks = [self.sig_buckets[s].walk(1, ascending) for s in sigs]
        seen: set[int] = set()
        for _, host_id in heapq.merge(*walks, key=lambda t: t[0], reverse=not ascending):
            if host_id in seen:
                continue
            seen.add(host_id)
            entry = self.hosts[host_id]
            if sum(entry.sig_free.get(s, 0) for s in sigs) >= request.count:
                yield entry

    def walk_without_pci(self) -> Iterator[HostEntry]:
        """All eligible hosts, those with the fewest free PCI devices first."""
        for _, host_id in self.pci_buckets.walk(0, True):
            yield self.hosts[host_id]


def whole_units(pools: PciPools) -> tuple[int, int]:
    """(whole PFs or devices, whole NUMA nodes) entirely free in ``pools``.

    A PF counts as whole when its own pool and its VFs' pool are untouched; a
    NUMA node when every pool on it is.
    """
    parents: dict[str, bool] = {}
    nodes: dict[int, bool] = {}
    for p in pools.pools:
        whole = p.count == p.total
        key = p.parent_addr if p.dev_type is not DevType.PCI else f"pci:{p.parent_addr}"
        parents[key] = parents.get(key, True) and whole
        if p.numa_node is not None:
            nodes[p.numa_node] = nodes.get(p.numa_node, True) and whole
    return sum(parents.values()), sum(nodes.values())


def describe(request: PciRequest) -> str:
    """A request in the words of an error message."""
    if request.alias_name:
        return f"alias {request.alias_name!r} x{request.count}"
    spec: dict[str, Any] = request.specs[0]
    what = spec.get("dev_type") or "device"
    if spec.get("trusted") == "true":
        what = f"trusted {what}"
    physnet = spec.get("physical_network")
    where = f" on {physnet}" if physnet else ""
    who = request.label or f"{request.source} request {request.request_id}"
    return f"{who} ({what}{where} x{request.count})"
