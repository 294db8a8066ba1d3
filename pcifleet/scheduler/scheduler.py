"""The scheduler: index -> filters -> weighers -> claim, with bounded retries.

One ``Scheduler`` per controller process. It keeps a ``FleetIndex`` of every
host, walks only the hosts whose pools can serve a request (least free first
for pack, most free first for spread), filters them (host up, vCPU/RAM, all
PCI requests at once including NUMA policy), weighs the first few that pass
and claims on the best through the store. A claim that loses a race (another
controller changed the host) reloads that host and moves to the next
candidate. Several controllers may share one database: the store's
compare-and-swap is what makes their claims safe, not this process's lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from pcifleet.pci import PciPools, PciRequest, PciRequestsUnsatisfiable
from pcifleet.scheduler.by_shape import Unwalked, host_ids, judge_the_rest
from pcifleet.scheduler.config import SchedulerConfig
from pcifleet.scheduler.errors import NoValidHost
from pcifleet.scheduler.filters import (
    HOST_DISABLED,
    HOST_DOWN,
    cell_options,
    fit_pci,
    free_memory_mb,
    free_vcpus,
    host_up,
    pci_failure,
    resources,
    socket_cells,
)
from pcifleet.scheduler.index import FleetIndex, HostEntry, Shape, describe
from pcifleet.scheduler.weighers import Key, pci_key, plain_key
from pcifleet.store.claims import (
    ClaimConflict,
    ClaimHook,
    ClaimPlan,
    ClaimResult,
    FreeResult,
    copy_pools,
    execute_claim,
    free,
    pool_id,
)
from pcifleet.store.snapshot import host_generations, hosts_not_up, load_hosts

LOST_RACE = "claim: lost a race to another writer"
# The capacity query stops counting a host at this many servers.
CAPACITY_LIMIT = 10_000
# Hosts a walk judges one by one, none passing, before it judges the rest by
# shape (see by_shape): a request that fits almost always finds its host
# among the first few, one that cannot should not pay per host.
WALK_BEFORE_SHAPES = 32


@dataclass(slots=True)
class Placement:
    """Where a server went and what it holds there."""

    host: str
    claim: ClaimResult
    attempts: int

    @property
    def numa_cells(self) -> list[int] | None:
        return self.claim.numa_cells


@dataclass(slots=True)
class Capacity:
    """How many more servers with the given requests fit now."""

    total: int
    per_host: dict[str, int] = field(default_factory=dict)
    hosts_considered: int = 0
    hosts_total: int = 0


@dataclass(slots=True)
class _Attempt:
    """The state of one scheduling decision, for its retries and its error."""

    requests: Sequence[PciRequest]
    vcpus: int
    memory_mb: int
    numa_cells: Sequence[int] | None
    numa_nodes: int | None
    # A move never lands on the server's own host; ``migrate --host`` names one.
    ignore_hosts: Collection[str] = ()
    only_host: str | None = None
    judged: set[int] = field(default_factory=set)
    tally: Counter[str] = field(default_factory=Counter)
    seen: set[int] = field(default_factory=set)
    # Hosts of the walk judged by shape instead of one by one (not in ``seen``).
    reached: int = 0
    # The PCI filter's reason for each host shape found not to fit: a verdict
    # that depends on the shape alone is worked out once (a plan that fails
    # costs tens of times what a lookup does).
    unfit_shapes: dict[Shape, str] = field(default_factory=dict)
    # Hosts an operator took out or that stopped reporting, named in the error
    # so "why no host" points at the host to look at.
    named: dict[str, list[str]] = field(default_factory=dict)


NOT_WANTED = "the move's constraints (its own host, or not the host asked for)"


def _not_wanted(entry: HostEntry, att: _Attempt) -> str | None:
    if entry.name in att.ignore_hosts or (att.only_host and entry.name != att.only_host):
        return NOT_WANTED
    return None


def _names(hosts: list[str] | None, most: int = 5) -> str:
    """`` (h1, h2)`` for an error message; the first few, sorted."""
    if not hosts:
        return ""
    shown = sorted(hosts)[:most]
    more = ", ..." if len(hosts) > most else ""
    return f" ({', '.join(shown)}{more})"


class Scheduler:
    """Picks hosts and claims PCI devices on them; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        config: SchedulerConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.config = config or SchedulerConfig()
        self.clock = clock
        self.index = FleetIndex(self.config.cpu_allocation_ratio, self.config.ram_allocation_ratio)
        self._lock = threading.RLock()
        self._last_refresh = float("-inf")
        self._not_up: set[int] = set()
        # When a re-read before saying no last found nothing new.
        self._fruitless_recheck = float("-inf")
        self.walk_before_shapes = WALK_BEFORE_SHAPES
        # One connection kept for claims (used under the lock only): a pool
        # checkout per claim costs as much as a statement.
        self._claim_conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._claim_conn is None or self._claim_conn.closed or self._claim_conn.invalidated:
            self._claim_conn = self.engine.connect()
        return self._claim_conn

    def close(self) -> None:
        """Give the claim connection back to the engine's pool."""
        with self._lock:
            if self._claim_conn is not None:
                self._claim_conn.close()
                self._claim_conn = None

    def _claim(
        self, plan: ClaimPlan, instance_uuid: str, then: ClaimHook | None = None
    ) -> ClaimResult:
        try:
            return execute_claim(self._connection(), plan, instance_uuid, then)
        except DBAPIError:
            # A broken connection (server restart...): drop it, the next claim reconnects.
            self.close()
            raise

    # -- keeping the index current ------------------------------------------------

    def _cutoff(self, now: float) -> datetime:
        return datetime.fromtimestamp(now - self.config.host_down_after, UTC)

    def refresh(self, force: bool = False) -> int:
        """Bring the index up to date with the store; returns how many hosts changed.

        One scan of (id, generation) finds the hosts to reload — only those
        whose generation moved — and one query lists the hosts that have not
        reported within ``host_down_after``. Skipped when the last refresh is
        younger than ``refresh_interval``, unless ``force``. Counts hosts
        reloaded, gone, or gone up or down.
        """
        with self._lock:
            now = self.clock()
            if not force and now - self._last_refresh < self.config.refresh_interval:
                return 0
            with self.engine.connect() as conn:
                generations = host_generations(conn)
                not_up = hosts_not_up(conn, self._cutoff(now))
                reload = [
                    host_id
                    for host_id, generation in generations.items()
                    if (e := self.index.hosts.get(host_id)) is None or e.generation != generation
                ]
                snapshots = load_hosts(conn, reload) if reload else []
            gone = [host_id for host_id in self.index.hosts if host_id not in generations]
            for host_id in gone:
                self.index.drop(host_id)
            for snap in snapshots:
                entry = HostEntry.from_snapshot(snap)
                entry.up = snap.id not in not_up
                self.index.put(entry)
            reloaded = {s.id for s in snapshots}
            flipped = 0
            for host_id in not_up ^ self._not_up:
                known = self.index.hosts.get(host_id)
                if known is not None and host_id not in reloaded:
                    self.index.set_up(known, host_id not in not_up)
                    flipped += 1
            self._not_up = not_up
            self._last_refresh = now
            return len(snapshots) + len(gone) + flipped

    def reload_hosts(self, ids: Sequence[int]) -> None:
        """Reload some hosts now (after a lost race, or our own free)."""
        cutoff = self._cutoff(self.clock())
        with self.engine.connect() as conn:
            snapshots = load_hosts(conn, ids)
        found = {s.id for s in snapshots}
        for host_id in ids:
            if host_id not in found:
                self.index.drop(host_id)
        for snap in snapshots:
            entry = HostEntry.from_snapshot(snap)
            entry.up = (
                not snap.forced_down
                and snap.last_report_at is not None
                and snap.last_report_at >= cutoff
            )
            self.index.put(entry)

    def _after_claim(self, entry: HostEntry, result: ClaimResult) -> None:
        entry.generation = result.generation
        entry.vcpus_used += result.vcpus
        entry.memory_mb_used += result.memory_mb
        self.index.replace_pools(entry, result.pools_after)

    # -- choosing -----------------------------------------------------------------

    def _driving(self, requests: Sequence[PciRequest]) -> PciRequest | None:
        """The request with the fewest hosts that might serve it: walk only those."""
        if not requests:
            return None
        return min(requests, key=self.index.population)

    def _walk(self, requests: Sequence[PciRequest]) -> Iterator[HostEntry]:
        driving = self._driving(requests)
        if driving is None:
            return self.index.walk_without_pci()
        return self.index.walk(driving, ascending=self.config.mode == "pack")

    def _judge(self, att: _Attempt, entry: HostEntry, reason: str) -> None:
        if entry.id not in att.judged:
            att.judged.add(entry.id)
            att.tally[reason] += 1
            if reason in (HOST_DISABLED, HOST_DOWN):
                att.named.setdefault(reason, []).append(entry.name)

    def _perfect(self, key: Key, att: _Attempt) -> bool:
        """Packing, a placement that breaks no whole PF or NUMA node cannot be beaten
        by the candidates after it (they have more free devices): stop weighing."""
        return self.config.mode == "pack" and bool(att.requests) and key[0] == 0 and key[1] == 0

    def _by_shape(self, att: _Attempt) -> bool:
        """Judge the hosts the walk has not reached by shape; True if that
        judged them all (none can pass), False if the walk must go on."""
        todo = Unwalked(
            att.requests,
            att.vcpus,
            att.memory_mb,
            att.numa_cells,
            att.numa_nodes,
            host_ids(self.index, att.ignore_hosts),
            None if att.only_host is None else host_ids(self.index, [att.only_host]),
        )
        driving = self._driving(att.requests)
        judged = judge_the_rest(
            self.index, driving, todo, att.judged, att.seen, NOT_WANTED, att.unfit_shapes
        )
        if judged is None:
            return False
        tally, reached = judged
        att.tally.update(tally)
        att.reached += reached
        return True

    def _window(self, att: _Attempt) -> list[tuple[Key, HostEntry, ClaimPlan]]:
        """The first few candidates that pass every filter, with their weights."""
        found: list[tuple[Key, HostEntry, ClaimPlan]] = []
        walk = self._walk(att.requests)
        walked, shapes_tried = 0, False
        try:
            for entry in walk:
                walked += 1
                if not found and not shapes_tried and walked > self.walk_before_shapes:
                    shapes_tried = True
                    if self._by_shape(att):
                        break
                att.seen.add(entry.id)
                reason = (
                    _not_wanted(entry, att)
                    or host_up(entry)
                    or resources(entry, att.vcpus, att.memory_mb, self.config)
                )
                if reason:
                    self._judge(att, entry, reason)
                    continue
                failed = att.unfit_shapes.get(entry.shape)
                if failed is not None:
                    self._judge(att, entry, failed)
                    continue
                options = cell_options(
                    entry, att.numa_cells, att.numa_nodes, att.vcpus, att.memory_mb
                )
                plan = fit_pci(entry, att.requests, options, att.vcpus, att.memory_mb)
                if plan is None:
                    failed = att.unfit_shapes[entry.shape] = pci_failure(
                        entry, att.requests, options
                    )
                    self._judge(att, entry, failed)
                    continue
                key = (
                    pci_key(entry, plan, self.config)
                    if att.requests
                    else plain_key(entry, att.vcpus, self.config)
                )
                found.append((key, entry, plan))
                if len(found) >= self.config.weigh_window or self._perfect(key, att):
                    break
        finally:
            close = getattr(walk, "close", None)
            if close is not None:
                close()
        found.sort(key=lambda t: t[0])
        return found

    def select_and_claim(
        self,
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
    ) -> Placement:
        """Choose a host for the server and claim its devices there.

        ``ignore_hosts`` are never chosen (a move's source); ``only_host``, when
        given, is the only one that may be (an operator's ``--host``).

        ``then`` runs inside the claim's transaction (see ``execute_claim``); an
        exception from it undoes the claim and comes out of this call as it is.

        ``requests``: all PCI requests of the server (flavor aliases and SR-IOV
        ports). ``numa_cells``: host NUMA nodes the server is pinned to, if
        known; ``numa_nodes``: how many NUMA nodes the server spans, to let the
        scheduler choose them (NUMA policies then apply per choice). Raises
        NoValidHost with the reasons when nothing fits.
        """

        def place() -> Placement:
            att = _Attempt(
                requests, vcpus, memory_mb, numa_cells, numa_nodes, ignore_hosts, only_host
            )
            return self._place(instance_uuid, att, then)

        with self._lock:
            self.refresh()
            try:
                return place()
            except NoValidHost:
                # Frees, new hosts and reports of other writers show up at the
                # next refresh; before saying no, look once more at fresh data
                # (unless a look that found nothing new was just taken).
                now = self.clock()
                if now - self._fruitless_recheck < self.config.recheck_interval:
                    raise
                if not self.refresh(force=True):
                    self._fruitless_recheck = now
                    raise
            return place()

    def _place(self, instance_uuid: str, att: _Attempt, then: ClaimHook | None = None) -> Placement:
        """Walk, weigh and claim (lock held), retrying lost races up to ``max_attempts``."""
        attempts = 0
        while attempts < self.config.max_attempts:
            window = self._window(att)
            if not window:
                break
            for _, entry, plan in window:
                attempts += 1
                try:
                    result = self._claim(plan, instance_uuid, then)
                except ClaimConflict:
                    att.tally[LOST_RACE] += 1
                    # Another writer moved this host on: reload it and walk
                    # again, so the choice is made on fresh views (the same
                    # host may still be best). Each lost race is someone
                    # else's progress, so this ends.
                    self.reload_hosts([entry.id])
                    att.judged.discard(entry.id)
                    break
                self._after_claim(entry, result)
                return Placement(host=entry.name, claim=result, attempts=attempts)
        raise self._no_valid_host(att, attempts)

    def _no_valid_host(self, att: _Attempt, attempts: int) -> NoValidHost:
        hosts = len(self.index.hosts)
        tally = Counter(att.tally)
        for host_id in self.index.ineligible:
            entry = self.index.hosts[host_id]
            if entry.id not in att.judged:
                reason = HOST_DISABLED if not entry.enabled else HOST_DOWN
                tally[reason] += 1
                att.named.setdefault(reason, []).append(entry.name)
        driving = self._driving(att.requests)
        eligible = self.index.eligible
        unseen = len(eligible) - len(att.seen & eligible) - att.reached
        if driving is not None and unseen > 0 and attempts < self.config.max_attempts:
            tally[self._unserved(driving)] += unseen
        wanted = ", ".join(describe(r) for r in att.requests) or "no PCI devices"
        # Most hosts first; reasons as many hosts failed, by name (not by the
        # order the walk happened to meet them in).
        parts = [
            f"{n} host(s) failed {reason}{_names(att.named.get(reason))}"
            for reason, n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        if attempts >= self.config.max_attempts:
            parts.append(f"gave up after {attempts} claim attempts")
        detail = "; ".join(parts) if parts else "no hosts are known"
        sizes = [f"vcpus={att.vcpus}"] if att.vcpus else []
        sizes += [f"memory_mb={att.memory_mb}"] if att.memory_mb else []
        size = f" ({', '.join(sizes)})" if sizes else ""
        message = f"no valid host for {wanted}{size} among {hosts} host(s): {detail}"
        return NoValidHost(message, hosts, tally)

    def _unserved(self, request: PciRequest) -> str:
        """Why no host even came up for ``request``: a physical network no host
        has at all is a wrong network, not a full fleet, and says so."""
        physnet = request.specs[0].get("physical_network") if request.source == "port" else None
        if physnet and self.index.physnets[physnet.lower()] <= 0:
            return f"PCI: no host has physical network {physnet}"
        return f"PCI: {describe(request)}: no free matching device"

    # -- giving back ----------------------------------------------------------------

    def release(
        self, host: str, instance_uuid: str, *, vcpus: int = 0, memory_mb: int = 0
    ) -> FreeResult:
        """Free the server's devices and resources on ``host`` and update the index."""
        with self._lock:
            result = free(self.engine, host, instance_uuid, vcpus=vcpus, memory_mb=memory_mb)
            host_id = self.index.by_name.get(host)
            if host_id is not None:
                self.reload_hosts([host_id])
            return result

    def host_changed(self, host: str) -> None:
        """Someone changed ``host`` in their own transaction (freed devices, or an
        operator enabled, disabled or forced it down): reload it now so the next
        decision sees it (the periodic refresh would too, only later; the
        generation the change bumped guards claims meanwhile)."""
        with self._lock:
            # News from this process: the next "no" looks at the store again
            # even within recheck_interval (a new host is not in the index yet).
            self._fruitless_recheck = float("-inf")
            host_id = self.index.by_name.get(host)
            if host_id is not None:
                self.reload_hosts([host_id])

    # -- capacity -------------------------------------------------------------------

    def _fits(
        self,
        entry: HostEntry,
        requests: Sequence[PciRequest],
        vcpus: int,
        memory_mb: int,
        numa_cells: Sequence[int] | None,
        numa_nodes: int | None,
    ) -> int:
        pools: PciPools = copy_pools(entry.pools)
        cpus, mem = free_vcpus(entry, self.config), free_memory_mb(entry, self.config)
        options = cell_options(entry, numa_cells, numa_nodes, vcpus, memory_mb)
        n = 0
        while n < CAPACITY_LIMIT:
            if (vcpus and cpus < vcpus) or (memory_mb and mem < memory_mb):
                break
            if requests:
                for cells in options:
                    try:
                        pools.apply(requests, cells, socket_cells(entry, cells))
                        break
                    except PciRequestsUnsatisfiable:
                        continue
                else:
                    break
            n += 1
            cpus -= vcpus
            mem -= memory_mb
        return n

    def capacity(
        self,
        requests: Sequence[PciRequest],
        *,
        vcpus: int = 0,
        memory_mb: int = 0,
        numa_cells: Sequence[int] | None = None,
        numa_nodes: int | None = None,
    ) -> Capacity:
        """How many more servers like this fit in the fleet now, and on which hosts.

        Answered from the index (no database writes): each host that might serve
        the requests is filled in memory until the next server no longer fits.
        Hosts in the same state are computed once.
        """
        if not requests and not vcpus and not memory_mb:
            raise ValueError("capacity: give PCI requests, vcpus or memory_mb to count")
        with self._lock:
            self.refresh()
            walk = self._walk(requests)
            entries = [e for e in walk if host_up(e) is None]
            memo: dict[tuple[object, ...], int] = {}
            out = Capacity(
                total=0, hosts_considered=len(entries), hosts_total=len(self.index.hosts)
            )
            for entry in entries:
                key = (
                    tuple((pool_id(p), p.count, p.total) for p in entry.pools.pools),
                    free_vcpus(entry, self.config),
                    free_memory_mb(entry, self.config),
                )
                n = memo.get(key)
                if n is None:
                    n = memo[key] = self._fits(
                        entry, requests, vcpus, memory_mb, numa_cells, numa_nodes
                    )
                if n:
                    out.per_host[entry.name] = n
                    out.total += n
            return out
