"""Whole-database consistency checks: what must hold whatever the concurrency.

Run by the tests after concurrent claims and by the benchmark at the end. Each
check is one aggregate query, so it stays quick on a million device rows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from pcifleet.pci import DeviceStatus, DevType
from pcifleet.store.devices import IN_USE
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D

AVAILABLE = DeviceStatus.AVAILABLE.value
REMOVED = DeviceStatus.REMOVED.value


def devices_held_twice(engine: Engine) -> list[str]:
    """Devices (host, address) that appear in more than one row."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(D.c.host_id, D.c.address, func.count())
            .group_by(D.c.host_id, D.c.address)
            .having(func.count() > 1)
        ).all()
    return [f"host {h} device {a} has {n} rows" for h, a, n in rows]


def ownership_problems(engine: Engine) -> list[str]:
    """In-use devices without an owner, or free devices that still name one."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(D.c.host_id, D.c.address, D.c.status, D.c.instance_uuid).where(
                or_(
                    and_(
                        D.c.status.in_(IN_USE),
                        or_(D.c.instance_uuid.is_(None), D.c.request_id.is_(None)),
                    ),
                    and_(D.c.status.not_in(IN_USE), D.c.instance_uuid.is_not(None)),
                )
            )
        ).all()
    return [f"host {h} device {a}: status {s} with instance {i}" for h, a, s, i in rows]


def dependency_problems(engine: Engine) -> list[str]:
    """PF/VF rule broken: a PF and its VF both in use or free while the other is in use."""
    vf, pf = aliased(D), aliased(D)
    with engine.connect() as conn:
        rows = conn.execute(
            select(vf.c.host_id, vf.c.address, vf.c.status, pf.c.address, pf.c.status)
            .join(pf, and_(pf.c.host_id == vf.c.host_id, pf.c.address == vf.c.parent_addr))
            .where(
                vf.c.dev_type == DevType.VF.value,
                or_(
                    and_(vf.c.status.in_(IN_USE), pf.c.status.in_((*IN_USE, AVAILABLE))),
                    and_(pf.c.status.in_(IN_USE), vf.c.status == AVAILABLE),
                ),
            )
        ).all()
    return [f"host {h}: VF {v} is {vs} while its PF {p} is {ps}" for h, v, vs, p, ps in rows]


def pool_problems(engine: Engine) -> list[str]:
    """Hosts whose ``pci_stats`` do not add up to their device rows."""
    counted: dict[int, dict[str, tuple[int, int]]] = defaultdict(dict)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                D.c.host_id,
                D.c.pool_id,
                func.sum(case((D.c.status == AVAILABLE, 1), else_=0)),
                func.count(),
            )
            .where(D.c.status != REMOVED)
            .group_by(D.c.host_id, D.c.pool_id)
        )
        for host_id, pool_id, free, total in rows:
            counted[host_id][pool_id] = (int(free or 0), int(total))
        stats = conn.execute(select(H.c.id, H.c.name, H.c.pci_stats)).all()
    problems = []
    for host_id, name, pci_stats in stats:
        have: dict[str, tuple[int, int]] = {}
        for pool in pci_stats or []:
            have[pool["pool_id"]] = (pool["count"], pool["total"])
        want = counted.get(host_id, {})
        for pool_id in sorted(set(have) | set(want)):
            if have.get(pool_id) != want.get(pool_id):
                problems.append(
                    f"host {name} pool {pool_id}: pci_stats (free, total) "
                    f"{have.get(pool_id)} but devices {want.get(pool_id)}"
                )
    return problems


def check_consistency(engine: Engine) -> list[str]:
    """Every problem found; an empty list means the store is consistent."""
    return [
        *devices_held_twice(engine),
        *ownership_problems(engine),
        *dependency_problems(engine),
        *pool_problems(engine),
    ]


def held_by_request(engine: Engine) -> dict[str, Any]:
    """request_id -> number of devices held (to compare with what was asked)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(D.c.request_id, func.count())
            .where(D.c.status.in_(IN_USE))
            .group_by(D.c.request_id)
        ).all()
    return {r: int(n) for r, n in rows}
