"""Pools: a host's free devices grouped as the scheduler sees them.

A pool is keyed by vendor_id, product_id, dev_type, numa_node, the spec's tags,
and ``parent_addr``: the PF's address for a VF, the device's own address for a
PF or plain PCI device. So each PF's VFs form one pool and the PF/VF dependency
can be kept at pool level: taking a VF from parent P blocks the PF pool P, and
taking the PF P blocks the VF pool P.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pcifleet.pci.alias import NumaPolicy
from pcifleet.pci.device import DevType, PciDevice, normalize_id
from pcifleet.pci.errors import InvalidPciRequest, PciRequestsUnsatisfiable
from pcifleet.pci.request import PciRequest, Spec
from pcifleet.pci.status import DeviceStatus

_KIND = {DevType.VF: "vf", DevType.PF: "pf", DevType.PCI: "pci"}
Tags = Mapping[str, str | None]


def _norm(value: str | None) -> str | None:
    return None if value is None else value.lower()


def pool_id_for(
    vendor_id: str,
    product_id: str,
    dev_type: DevType,
    numa_node: int | None,
    parent_addr: str,
    tags: Tags,
) -> str:
    """A stable, readable identifier of a pool within its host."""
    digest = hashlib.sha1(
        json.dumps([numa_node, sorted(tags.items())], separators=(",", ":")).encode()
    ).hexdigest()[:6]
    return f"{parent_addr}/{_KIND[dev_type]}/{vendor_id}:{product_id}/{digest}"


def pool_id_of(device: PciDevice, tags: Tags) -> str:
    """The pool a classified device belongs to."""
    parent = device.parent_addr if device.dev_type is DevType.VF else device.address
    return pool_id_for(
        device.vendor_id, device.product_id, device.dev_type, device.numa_node, str(parent), tags
    )


@dataclass(slots=True)
class Pool:
    vendor_id: str
    product_id: str
    dev_type: DevType
    numa_node: int | None
    parent_addr: str
    tags: dict[str, str | None] = field(default_factory=dict)
    count: int = 0
    total: int = 0

    @property
    def pool_id(self) -> str:
        return pool_id_for(
            self.vendor_id,
            self.product_id,
            self.dev_type,
            self.numa_node,
            self.parent_addr,
            self.tags,
        )

    def value(self, key: str) -> str | None:
        """The pool's value for a request spec key, lower-cased for comparison."""
        if key == "vendor_id":
            return self.vendor_id
        if key == "product_id":
            return self.product_id
        if key == "dev_type":
            return self.dev_type.value.lower()
        if key == "numa_node":
            return None if self.numa_node is None else str(self.numa_node)
        if key == "parent_addr":
            return self.parent_addr
        return _norm(self.tags.get(key))

    def matches(self, spec: Spec) -> bool:
        """Every key the spec names equals the pool's value (case-insensitive)."""
        return all(self.value(k) == _norm(v) for k, v in spec.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool_id": self.pool_id,
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "dev_type": self.dev_type.value,
            "numa_node": self.numa_node,
            "parent_addr": self.parent_addr,
            "tags": dict(self.tags),
            "count": self.count,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Pool:
        """Read a pool as ``to_dict`` writes it (``pool_id`` is recomputed, not read)."""
        if not isinstance(d, Mapping):
            raise InvalidPciRequest(f"a pool must be a mapping, got {type(d).__name__}")
        missing = [
            k for k in ("vendor_id", "product_id", "dev_type", "parent_addr", "count") if k not in d
        ]
        if missing:
            raise InvalidPciRequest(f"pool is missing field(s) {', '.join(missing)}")
        count, total, numa, tags = (
            d["count"],
            d.get("total", d["count"]),
            d.get("numa_node"),
            d.get("tags") or {},
        )
        if not all(_is_count(n) for n in (count, total)) or count > total:
            raise InvalidPciRequest(f"pool counts are wrong: count={count!r} total={total!r}")
        if numa is not None and not _is_count(numa):
            raise InvalidPciRequest(f"pool numa_node must be an integer or null, got {numa!r}")
        if not isinstance(tags, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in tags.items()
        ):
            raise InvalidPciRequest("pool tags must map strings to strings")
        if d["dev_type"] not in tuple(DevType):
            raise InvalidPciRequest(f"pool dev_type ({d['dev_type']!r}) is not known")
        return cls(
            vendor_id=normalize_id(d["vendor_id"], "vendor_id", InvalidPciRequest),
            product_id=normalize_id(d["product_id"], "product_id", InvalidPciRequest),
            dev_type=DevType(d["dev_type"]),
            numa_node=numa,
            parent_addr=str(d["parent_addr"]),
            tags=dict(tags),
            count=count,
            total=total,
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True)
class PoolTake:
    """``count`` devices of ``pool`` handed to the request ``request_id``."""

    request_id: str
    pool: Pool
    count: int


class PoolDevice(Protocol):
    """What pooling reads of a device: a ``PciDevice``, or a stored row's view
    of one (the store pools rows it wrote itself without parsing them again)."""

    @property
    def vendor_id(self) -> str: ...
    @property
    def product_id(self) -> str: ...
    @property
    def dev_type(self) -> DevType: ...
    @property
    def numa_node(self) -> int | None: ...
    @property
    def address(self) -> object: ...
    @property
    def parent_addr(self) -> object: ...


class _Entry(Protocol):
    @property
    def device(self) -> PoolDevice: ...
    @property
    def tags(self) -> Tags | None: ...


def _numa_ok(
    pool: Pool, policy: NumaPolicy, cells: frozenset[int] | None, socket: frozenset[int] | None
) -> bool:
    if cells is None or policy is NumaPolicy.PREFERRED:
        return True
    if policy is NumaPolicy.LEGACY:
        return pool.numa_node is None or pool.numa_node in cells
    if policy is NumaPolicy.SOCKET and socket is not None:
        # the caller passes the cells sharing a socket with the instance's cells
        return pool.numa_node is not None and pool.numa_node in socket
    return pool.numa_node is not None and pool.numa_node in cells


def _describe(request: PciRequest) -> str:
    if request.alias_name:
        return f"alias {request.alias_name!r} x{request.count}"
    spec = request.specs[0]
    trusted = "trusted " if spec.get("trusted") == "true" else ""
    physnet = spec.get("physical_network")
    who = request.label or f"port request {request.request_id}"
    return f"{who} ({trusted}{spec.get('dev_type')} on {physnet})"


class PciPools:
    """The pools of one host, with the all-at-once request logic."""

    __slots__ = ("_peers", "_socket", "pools")

    def __init__(self, pools: Iterable[Pool] = ()) -> None:
        self.pools: list[Pool] = list(pools)
        # The cells the ``socket`` policy may use, set by ``apply`` and friends.
        self._socket: frozenset[int] | None = None
        # parent_addr -> indexes of pools on that PF (its VFs' pool and the PF's own pool)
        self._peers: dict[str, list[int]] = {}
        for i, pool in enumerate(self.pools):
            if pool.dev_type is not DevType.PCI:
                self._peers.setdefault(pool.parent_addr, []).append(i)

    def copy(self) -> PciPools:
        return PciPools(copy.deepcopy(self.pools))

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.pools]

    @classmethod
    def from_json(cls, data: Any) -> PciPools:
        if not isinstance(data, list):
            raise InvalidPciRequest(f"pools must be a JSON list, got {type(data).__name__}")
        return cls(Pool.from_dict(d) for d in data)

    def free_count(self, spec: Spec) -> int:
        return sum(p.count for p in self.pools if p.matches(spec))

    def _candidates(self, request: PciRequest, cells: frozenset[int] | None) -> list[int]:
        found = [
            i
            for i, p in enumerate(self.pools)
            if _numa_ok(p, request.numa_policy, cells, self._socket)
            and any(p.matches(s) for s in request.specs)
        ]

        def order(i: int) -> tuple[int, int, int]:
            p = self.pools[i]
            outside = int(cells is not None and (p.numa_node is None or p.numa_node not in cells))
            # Best fit: draw from already broken PFs first so whole PFs stay free.
            whole = int(p.count == p.total)
            return (outside, whole, p.count)

        return sorted(found, key=order)

    def _plan(
        self, requests: Sequence[PciRequest], cells: frozenset[int] | None
    ) -> tuple[list[tuple[str, int, int]], list[int], PciRequest | None, int]:
        """Takes as (request_id, pool index, count) and the counts they leave, or the
        first request that fails and how many devices it got."""
        counts = [p.count for p in self.pools]
        takes: list[tuple[str, int, int]] = []
        candidates = {r.request_id: self._candidates(r, cells) for r in requests}

        def order(r: PciRequest) -> tuple[int, int]:
            # PF requests first: they need a whole PF, which a VF taken earlier
            # would block. Requests bound to distinct PFs go most constrained
            # first (fewest PFs to choose from), so a flexible one does not take
            # the only PF a narrow one could use.
            pf = 0 if any(s.get("dev_type") == DevType.PF for s in r.specs) else 1
            spread = (
                len({self.pools[i].parent_addr for i in candidates[r.request_id]})
                if r.distinct_pf
                else 0
            )
            return (pf, spread)

        # PFs the requests marked distinct_pf have taken devices from.
        used_pfs: set[str] = set()
        for request in sorted(requests, key=order):
            need = request.count
            for i in candidates[request.request_id]:
                if counts[i] <= 0:
                    continue
                pool = self.pools[i]
                if request.distinct_pf:
                    if pool.parent_addr in used_pfs:
                        continue
                    used_pfs.add(pool.parent_addr)
                    n = 1
                else:
                    n = min(counts[i], need)
                counts[i] -= n
                need -= n
                takes.append((request.request_id, i, n))
                for j in self._peers.get(pool.parent_addr, ()):
                    if self.pools[j].dev_type is not pool.dev_type:
                        counts[j] = 0
                if need == 0:
                    break
            if need:
                return takes, counts, request, request.count - need
        return takes, counts, None, 0

    def _set_socket(self, socket_cells: Iterable[int] | None) -> None:
        self._socket = None if socket_cells is None else frozenset(socket_cells)

    def supports(
        self,
        requests: Sequence[PciRequest],
        numa_cells: Iterable[int] | None = None,
        socket_cells: Iterable[int] | None = None,
    ) -> bool:
        cells = None if numa_cells is None else frozenset(numa_cells)
        self._set_socket(socket_cells)
        return self._plan(requests, cells)[2] is None

    def apply(
        self,
        requests: Sequence[PciRequest],
        numa_cells: Iterable[int] | None = None,
        socket_cells: Iterable[int] | None = None,
    ) -> list[PoolTake]:
        """Consume the requests from the pools, all or nothing.

        ``socket_cells``: the host cells sharing a socket with ``numa_cells``,
        which requests of the ``socket`` policy may use (without them, socket
        acts as required).
        """
        cells = None if numa_cells is None else frozenset(numa_cells)
        self._set_socket(socket_cells)
        plan, counts, failed, got = self._plan(requests, cells)
        if failed is not None:
            raise PciRequestsUnsatisfiable(self._why(failed, got, cells))
        for pool, count in zip(self.pools, counts, strict=True):
            pool.count = count
        return [PoolTake(rid, self.pools[i], n) for rid, i, n in plan]

    def _why(self, request: PciRequest, got: int, cells: frozenset[int] | None) -> str:
        matching = sum(self.pools[i].count for i in self._candidates(request, cells))
        where = (
            ""
            if cells is None
            else f" within NUMA policy {request.numa_policy} (cells {sorted(cells)})"
        )
        if request.distinct_pf:
            where += " on a PF no other distinct_pf port of the server uses"
        return (
            f"{_describe(request)} needs {request.count} device(s){where}; "
            f"{matching} free matching device(s) here, {got} left after the other requests"
        )

    def explain_failure(
        self,
        requests: Sequence[PciRequest],
        numa_cells: Iterable[int] | None = None,
        socket_cells: Iterable[int] | None = None,
    ) -> str | None:
        """None when the requests fit, else which request fails and why."""
        cells = None if numa_cells is None else frozenset(numa_cells)
        self._set_socket(socket_cells)
        _, _, failed, got = self._plan(requests, cells)
        return None if failed is None else self._why(failed, got, cells)


def build_pools(entries: Iterable[_Entry]) -> PciPools:
    """Pools from classified devices or device records (unmatched ones are left out).

    An entry with a ``status`` counts as free only when available; removed devices
    are not counted at all.
    """
    by_key: dict[tuple[Any, ...], Pool] = {}
    for entry in entries:
        tags = entry.tags
        if tags is None:
            continue
        status = getattr(entry, "status", DeviceStatus.AVAILABLE)
        if status is DeviceStatus.REMOVED:
            continue
        dev = entry.device
        parent = str(dev.parent_addr if dev.dev_type is DevType.VF else dev.address)
        key = (
            dev.vendor_id,
            dev.product_id,
            dev.dev_type,
            dev.numa_node,
            parent,
            tuple(sorted(tags.items())),
        )
        pool = by_key.get(key)
        if pool is None:
            pool = by_key[key] = Pool(
                dev.vendor_id, dev.product_id, dev.dev_type, dev.numa_node, parent, dict(tags)
            )
        pool.total += 1
        if status is DeviceStatus.AVAILABLE:
            pool.count += 1
    return PciPools(
        sorted(by_key.values(), key=lambda p: (p.parent_addr, p.dev_type.value, p.pool_id))
    )
