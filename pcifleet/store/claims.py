"""Claims: hand devices to an instance, allocate them, free them — atomically.

Every write that changes a host's pools first writes the host row, in the
same transaction: a claim with ``UPDATE hosts ... WHERE id = :id AND
generation = :seen`` (compare-and-swap, after Placement), free with a plain
``generation = generation + 1``. That row write is the lock: on SQLite it
takes the database's write lock, on PostgreSQL the row lock, so two writers of
one host never interleave, and a claim planned from an outdated view of the
host loses its swap and is planned again. The device updates are guarded as
well (``WHERE status = 'available'``) and must touch exactly the planned
number of rows, so even a writer that skipped the protocol could not hand a
device out twice. Allocate changes no pool (claimed and allocated are both in
use): it is one guarded statement and leaves the generation alone.

The plan comes from the PCI model (``PciPools.apply``): it says how many devices
of which pool each request takes, with the PF/VF dependency; the database picks
that many available rows of each pool. The scheduler plans from its in-memory
index and calls ``execute_claim``; ``claim`` plans from a fresh read and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Engine,
    Update,
    bindparam,
    case,
    select,
    update,
)

from pcifleet.pci import DeviceStatus, DevType, PciPools, PciRequest, Pool
from pcifleet.store.devices import IN_USE, blocked_addresses, host_rows, pool_stats_json
from pcifleet.store.errors import ClaimConflict, HostNotFound, StoreError
from pcifleet.store.models import UUID_LEN, UtcDateTime, utcnow
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from pcifleet.store.snapshot import HostSnapshot, HostVersion, load_host

# A conflict means another writer committed on that host, so each retry follows
# progress elsewhere; ten is plenty outside a stampede on one host.
DEFAULT_RETRIES = 10
AVAILABLE = DeviceStatus.AVAILABLE.value
UNAVAILABLE = DeviceStatus.UNAVAILABLE.value

# Statements built once: the hot path only binds values (compiled-cache hits).
_HOST_CAS = (
    update(H)
    .where(H.c.id == bindparam("b_host"), H.c.generation == bindparam("b_seen"))
    .values(
        generation=bindparam("b_gen"),
        pci_stats=bindparam("b_stats", type_=JSON()),
        vcpus_used=H.c.vcpus_used + bindparam("b_vcpus"),
        memory_mb_used=H.c.memory_mb_used + bindparam("b_mem"),
        updated_at=bindparam("b_now", type_=UtcDateTime()),
    )
)
_CLAIMED_COLUMNS = (
    D.c.address,
    D.c.vendor_id,
    D.c.product_id,
    D.c.dev_type,
    D.c.parent_addr,
    D.c.numa_node,
    D.c.ifname,
    D.c.tags,
    D.c.extra,
    D.c.request_id,
)
_PICK = (
    select(D.c.id)
    .where(
        D.c.host_id == bindparam("b_host"),
        D.c.pool_id == bindparam("b_pool"),
        D.c.status == AVAILABLE,
    )
    .order_by(D.c.address)
    .limit(bindparam("b_count"))
)
_CLAIM_DEVICES = (
    update(D)
    .where(D.c.id.in_(_PICK), D.c.status == AVAILABLE)
    .values(
        status=DeviceStatus.CLAIMED.value,
        instance_uuid=bindparam("b_instance"),
        request_id=bindparam("b_request"),
        updated_at=bindparam("b_now", type_=UtcDateTime()),
    )
    .returning(*_CLAIMED_COLUMNS)
)


def _block(column: ColumnElement[Any]) -> Update:
    """Mark a host's available devices whose ``column`` is ``:b_addr`` unavailable."""
    return (
        update(D)
        .where(
            D.c.host_id == bindparam("b_host"),
            column == bindparam("b_addr"),
            D.c.status == AVAILABLE,
        )
        .values(status=UNAVAILABLE, updated_at=bindparam("b_now", type_=UtcDateTime()))
    )


# A PF taken blocks its VFs; a VF taken blocks its PF.
_BLOCK_PF = _block(D.c.address)
_BLOCK_VFS = _block(D.c.parent_addr)


@dataclass(frozen=True, slots=True)
class ClaimedDevice:
    """One device handed to a request: what port binding and domain XML need."""

    address: str
    request_id: str
    vendor_id: str
    product_id: str
    dev_type: str
    parent_addr: str | None
    numa_node: int | None
    ifname: str | None
    tags: dict[str, str | None]
    extra: dict[str, str]

    @property
    def pci_vendor_info(self) -> str:
        return f"{self.vendor_id}:{self.product_id}"

    @property
    def physical_network(self) -> str | None:
        return self.tags.get("physical_network")

    @classmethod
    def from_mapping(cls, m: Any) -> ClaimedDevice:
        return cls(
            address=m["address"],
            request_id=m["request_id"],
            vendor_id=m["vendor_id"],
            product_id=m["product_id"],
            dev_type=m["dev_type"],
            parent_addr=m["parent_addr"],
            numa_node=m["numa_node"],
            ifname=m["ifname"],
            tags=dict(m["tags"] or {}),
            extra=dict(m["extra"] or {}),
        )


@dataclass(frozen=True, slots=True)
class Take:
    request_id: str
    pool_id: str
    count: int


@dataclass(slots=True)
class ClaimPlan:
    """What a claim will write, worked out from one snapshot of the host."""

    host_id: int
    host: str
    seen_generation: int
    takes: list[Take]
    # (dev_type of the pool taken from, parent_addr) whose dependents must be blocked
    blocks: list[tuple[DevType, str]]
    pools_after: PciPools
    vcpus: int = 0
    memory_mb: int = 0
    numa_cells: list[int] | None = None


@dataclass(slots=True)
class ClaimResult:
    host: str
    host_id: int
    instance_uuid: str
    generation: int
    devices: list[ClaimedDevice]
    pools_after: PciPools
    vcpus: int = 0
    memory_mb: int = 0
    numa_cells: list[int] | None = None

    def devices_for(self, request_id: str) -> list[ClaimedDevice]:
        return [d for d in self.devices if d.request_id == request_id]


@dataclass(slots=True)
class FreeResult:
    host: str
    generation: int
    freed: list[str] = field(default_factory=list)
    # Devices that had vanished from the host while held: removed now that they are free.
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)


def copy_pools(pools: PciPools) -> PciPools:
    """A copy ``apply`` may change; much cheaper than a deep copy (tags are shared,
    never mutated)."""
    return PciPools(
        Pool(
            p.vendor_id,
            p.product_id,
            p.dev_type,
            p.numa_node,
            p.parent_addr,
            p.tags,
            p.count,
            p.total,
        )
        for p in pools.pools
    )


# Pool ids hash the pool's identity; hosts of one model share their pools' ids,
# so a small cache saves the hashing on every claim.
_POOL_IDS: dict[tuple[Any, ...], str] = {}
_POOL_ID_CACHE_MAX = 100_000


def pool_id(pool: Pool) -> str:
    """``pool.pool_id``, cached."""
    key = (
        pool.vendor_id,
        pool.product_id,
        pool.dev_type,
        pool.numa_node,
        pool.parent_addr,
        tuple(pool.tags.items()),
    )
    found = _POOL_IDS.get(key)
    if found is None:
        if len(_POOL_IDS) >= _POOL_ID_CACHE_MAX:
            _POOL_IDS.clear()
        found = _POOL_IDS[key] = pool.pool_id
    return found


def pools_json(pools: PciPools) -> list[dict[str, Any]]:
    """``pools.to_json()`` with cached pool ids (the same document)."""
    return [
        {
            "pool_id": pool_id(p),
            "vendor_id": p.vendor_id,
            "product_id": p.product_id,
            "dev_type": p.dev_type.value,
            "numa_node": p.numa_node,
            "parent_addr": p.parent_addr,
            "tags": dict(p.tags),
            "count": p.count,
            "total": p.total,
        }
        for p in pools.pools
    ]


def plan_claim(
    snapshot: HostSnapshot | HostVersion,
    requests: Sequence[PciRequest],
    numa_cells: Iterable[int] | None = None,
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    pools: PciPools | None = None,
    socket_cells: Iterable[int] | None = None,
) -> ClaimPlan:
    """Plan a claim on ``snapshot``; raises PciRequestsUnsatisfiable when it cannot fit.

    ``pools`` is the snapshot's pools already parsed (the scheduler keeps them);
    they are changed in place and become ``pools_after``. ``socket_cells``:
    the host cells sharing a socket with ``numa_cells`` (the ``socket`` policy).
    """
    if pools is None:
        if not isinstance(snapshot, HostSnapshot):
            raise TypeError("plan_claim: give the host's pools or a full HostSnapshot")
        pools = PciPools.from_json(snapshot.pci_stats)
    free_before: dict[tuple[str, DevType], int] = {}
    for p in pools.pools:
        key = (p.parent_addr, p.dev_type)
        free_before[key] = free_before.get(key, 0) + p.count
    cells = None if numa_cells is None else sorted(set(numa_cells))
    takes = pools.apply(requests, cells, socket_cells)
    blocks: list[tuple[DevType, str]] = []
    for t in takes:
        other = {DevType.VF: DevType.PF, DevType.PF: DevType.VF}.get(t.pool.dev_type)
        block = (t.pool.dev_type, t.pool.parent_addr)
        if other and free_before.get((t.pool.parent_addr, other), 0) > 0 and block not in blocks:
            blocks.append(block)
    return ClaimPlan(
        host_id=snapshot.id,
        host=snapshot.name,
        seen_generation=snapshot.generation,
        takes=[Take(t.request_id, pool_id(t.pool), t.count) for t in takes],
        blocks=blocks,
        pools_after=pools,
        vcpus=vcpus,
        memory_mb=memory_mb,
        numa_cells=cells,
    )


# Work done inside a claim's transaction once its devices are taken (the
# compute layer moves the server on and binds its ports there): raising rolls
# the whole claim back.
ClaimHook = Callable[[Connection, "ClaimResult"], None]


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A transaction of its own on an engine; on a connection, the caller's one
    (so a claim or a free can be one step of a larger state change)."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            yield conn
    elif bind.in_transaction():
        yield bind
    else:
        with bind.begin():
            yield bind


def execute_claim(
    bind: Engine | Connection,
    plan: ClaimPlan,
    instance_uuid: str,
    then: ClaimHook | None = None,
) -> ClaimResult:
    """Write ``plan`` in one transaction; ClaimConflict when the host moved on.

    ``bind`` is an engine, or an idle connection the caller keeps for its claims
    (the scheduler does: it saves a pool checkout per claim). ``then`` runs in
    the same transaction with the result; if it raises, nothing is claimed.
    """
    if not isinstance(instance_uuid, str) or not 0 < len(instance_uuid) <= UUID_LEN:
        raise ValueError(
            f"instance_uuid must be a string of 1 to 36 characters, got {instance_uuid!r}"
        )
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return execute_claim(conn, plan, instance_uuid, then)
    conn = bind
    now = utcnow()
    generation = plan.seen_generation + 1
    devices: list[ClaimedDevice] = []
    with conn.begin():
        swapped = conn.execute(
            _HOST_CAS,
            {
                "b_host": plan.host_id,
                "b_seen": plan.seen_generation,
                "b_gen": generation,
                "b_stats": pools_json(plan.pools_after),
                "b_vcpus": plan.vcpus,
                "b_mem": plan.memory_mb,
                "b_now": now,
            },
        ).rowcount
        if swapped != 1:
            raise ClaimConflict(
                f"host {plan.host!r} is no longer at generation {plan.seen_generation}"
            )
        for take in plan.takes:
            rows = conn.execute(
                _CLAIM_DEVICES,
                {
                    "b_host": plan.host_id,
                    "b_pool": take.pool_id,
                    "b_count": take.count,
                    "b_instance": instance_uuid,
                    "b_request": take.request_id,
                    "b_now": now,
                },
            ).all()
            if len(rows) != take.count:
                # The pools said yes but the rows say no: never hand out fewer.
                raise ClaimConflict(
                    f"host {plan.host!r} pool {take.pool_id}: {len(rows)} free device(s) "
                    f"where its pools promised {take.count}"
                )
            devices.extend(ClaimedDevice.from_mapping(r._mapping) for r in rows)
        for dev_type, parent in plan.blocks:
            stmt = _BLOCK_PF if dev_type is DevType.VF else _BLOCK_VFS
            conn.execute(stmt, {"b_host": plan.host_id, "b_addr": parent, "b_now": now})
        devices.sort(key=lambda d: (d.request_id, d.address))
        result = ClaimResult(
            host=plan.host,
            host_id=plan.host_id,
            instance_uuid=instance_uuid,
            generation=generation,
            devices=devices,
            pools_after=plan.pools_after,
            vcpus=plan.vcpus,
            memory_mb=plan.memory_mb,
            numa_cells=plan.numa_cells,
        )
        if then is not None:
            then(conn, result)
    return result


def claim(
    engine: Engine,
    host: str,
    instance_uuid: str,
    requests: Sequence[PciRequest],
    numa_cells: Iterable[int] | None = None,
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    retries: int = DEFAULT_RETRIES,
    then: ClaimHook | None = None,
) -> ClaimResult:
    """Claim devices on ``host`` meeting all ``requests`` for ``instance_uuid``.

    One transaction: the devices become ``claimed`` (with the request_id they
    serve), PF/VF dependents ``unavailable``, the host's pools and vCPU/RAM
    counters are updated and its generation bumped. Raises
    PciRequestsUnsatisfiable when the host cannot meet the requests,
    HostNotFound, or ClaimConflict after ``retries`` lost races. ``then`` runs
    inside the claim's transaction, as in ``execute_claim``.
    """
    cells = None if numa_cells is None else list(numa_cells)
    for _ in range(retries + 1):
        with engine.connect() as conn:
            snapshot = load_host(conn, host)
        plan = plan_claim(snapshot, requests, cells, vcpus=vcpus, memory_mb=memory_mb)
        try:
            return execute_claim(engine, plan, instance_uuid, then)
        except ClaimConflict:
            continue
    raise ClaimConflict(f"claim on host {host!r} lost {retries + 1} races in a row; try again")


def _bump(conn: Connection, host: str, vcpus: int = 0, memory_mb: int = 0) -> tuple[int, int]:
    """Take the host's write lock by bumping its generation; (host id, generation)."""
    row = conn.execute(
        update(H)
        .where(H.c.name == host)
        .values(
            generation=H.c.generation + 1,
            vcpus_used=case((H.c.vcpus_used > vcpus, H.c.vcpus_used - vcpus), else_=0),
            memory_mb_used=case(
                (H.c.memory_mb_used > memory_mb, H.c.memory_mb_used - memory_mb), else_=0
            ),
            updated_at=utcnow(),
        )
        .returning(H.c.id, H.c.generation)
    ).first()
    if row is None:
        raise HostNotFound(host)
    return int(row[0]), int(row[1])


def allocate(bind: Engine | Connection, host: str, instance_uuid: str) -> list[str]:
    """The instance's claimed devices on ``host`` become allocated (the VM has them).

    Returns their addresses. Pools and counters do not change (neither state is
    free), so the generation is left alone: schedulers' views stay valid. One
    guarded statement is atomic by itself against a concurrent free.
    """
    with _transaction(bind) as conn:
        host_id = conn.execute(select(H.c.id).where(H.c.name == host)).scalar()
        if host_id is None:
            raise HostNotFound(host)
        rows = conn.execute(
            update(D)
            .where(
                D.c.host_id == host_id,
                D.c.instance_uuid == instance_uuid,
                D.c.status == DeviceStatus.CLAIMED.value,
            )
            .values(status=DeviceStatus.ALLOCATED.value, updated_at=utcnow())
            .returning(D.c.address)
        ).all()
    return sorted(r[0] for r in rows)


def free(
    bind: Engine | Connection,
    host: str,
    instance_uuid: str,
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    request_id: str | None = None,
) -> FreeResult:
    """Release everything ``instance_uuid`` holds on ``host`` (claimed or allocated),
    or only the devices of one PCI request when ``request_id`` is given (an
    interface detached from a running server).

    Freed devices become available (or removed, if the host stopped reporting
    them); a PF blocked by its VFs, or VFs blocked by their PF, come back when
    nothing else holds them. ``vcpus``/``memory_mb`` are given back to the host.
    """
    now = utcnow()
    with _transaction(bind) as conn:
        host_id, generation = _bump(conn, host, vcpus, memory_mb)
        mine = [
            D.c.host_id == host_id,
            D.c.instance_uuid == instance_uuid,
            D.c.status.in_(IN_USE),
        ]
        if request_id is not None:
            mine.append(D.c.request_id == request_id)
        freed = conn.execute(
            update(D)
            .where(*mine)
            .values(
                status=case(
                    (D.c.vanished_at.is_(None), AVAILABLE), else_=DeviceStatus.REMOVED.value
                ),
                instance_uuid=None,
                request_id=None,
                updated_at=now,
            )
            .returning(D.c.address, D.c.status)
        ).all()
        result_removed = sorted(a for a, s in freed if s == DeviceStatus.REMOVED.value)
        rows = [dict(r) for r in host_rows(conn, host_id)]
        blocked = blocked_addresses(rows)
        restored = [r for r in rows if r["status"] == UNAVAILABLE and r["address"] not in blocked]
        if restored:
            conn.execute(
                update(D)
                .where(
                    D.c.host_id == host_id,
                    D.c.address.in_([r["address"] for r in restored]),
                    D.c.status == UNAVAILABLE,
                )
                .values(status=AVAILABLE, updated_at=now)
            )
            for r in restored:
                r["status"] = AVAILABLE
        conn.execute(update(H).where(H.c.id == host_id).values(pci_stats=pool_stats_json(rows)))
    return FreeResult(
        host=host,
        generation=generation,
        freed=sorted(a for a, _ in freed),
        removed=result_removed,
        restored=sorted(r["address"] for r in restored),
    )


def instance_devices(engine: Engine, instance_uuid: str) -> list[ClaimedDevice]:
    """The devices an instance holds (claimed or allocated), by request and address."""
    with engine.connect() as conn:
        return instance_devices_in(conn, instance_uuid)


def instance_devices_in(
    conn: Connection, instance_uuid: str, host: str | None = None
) -> list[ClaimedDevice]:
    """``instance_devices`` in the caller's transaction; only those on ``host`` when
    given (a server being moved holds devices on two hosts)."""
    query = select(*_CLAIMED_COLUMNS).where(
        D.c.instance_uuid == instance_uuid, D.c.status.in_(IN_USE)
    )
    if host is not None:
        query = query.where(D.c.host_id == select(H.c.id).where(H.c.name == host).scalar_subquery())
    rows = conn.execute(query.order_by(D.c.request_id, D.c.address))
    return [ClaimedDevice.from_mapping(r._mapping) for r in rows]


__all__ = [
    "DEFAULT_RETRIES",
    "ClaimConflict",
    "ClaimHook",
    "ClaimPlan",
    "ClaimResult",
    "ClaimedDevice",
    "FreeResult",
    "StoreError",
    "allocate",
    "claim",
    "copy_pools",
    "execute_claim",
    "free",
    "instance_devices",
    "instance_devices_in",
    "plan_claim",
    "pool_id",
    "pools_json",
]
