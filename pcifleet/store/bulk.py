"""Bulk loading of simulated hosts: many identical hosts in a few statements.

For ``pcifleet up`` simulations and the benchmarks: one classified host is
turned into rows once and inserted for every host name with Core executemany,
computing facts and pools with the same functions as ``sync_inventory`` so the
result is exactly what one report per host would have stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, bindparam, insert, select

from pcifleet.store.devices import new_device_row, pool_stats_json
from pcifleet.store.inventory import Reported, assignable_devices
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from pcifleet.store.models import utcnow
from pcifleet.store.snapshot import CHUNK

BATCH_HOSTS = 1_000


def bulk_load_hosts(
    engine: Engine,
    names: Sequence[str],
    devices: Iterable[Reported],
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    numa_topology: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> int:
    """Insert hosts ``names``, each with the same classified ``devices``; returns device rows.

    The hosts must not exist yet. Every host starts at generation 1 with all
    devices available, as after its first inventory report.
    """
    now = now or utcnow()
    template = [
        new_device_row(device, tags, now)
        for _, (device, tags) in sorted(assignable_devices(devices).items())
    ]
    stats = pool_stats_json(template)
    if not names:
        return 0
    with engine.begin() as conn:
        conn.execute(
            insert(H),
            [
                {
                    "name": name,
                    "pci_stats": stats,
                    "generation": 1,
                    "vcpus": vcpus,
                    "memory_mb": memory_mb,
                    "numa_topology": numa_topology,
                    "last_report_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for name in names
            ],
        )
        ids: dict[str, int] = {}
        for i in range(0, len(names), CHUNK):
            part = list(names[i : i + CHUNK])
            ids.update(conn.execute(select(H.c.name, H.c.id).where(H.c.name.in_(part))).all())
        if len(ids) != len(names):
            missing = sorted(set(names) - set(ids))
            raise RuntimeError(f"hosts not inserted: {missing[:5]}")
        first = ids[names[0]]
        if template:
            conn.execute(insert(D), [{**row, "host_id": first} for row in template])
        # Every other host gets a copy of the first host's rows, made by the
        # database (INSERT ... SELECT, executemany over host ids): no per-row
        # Python work, so 10,000 hosts load in seconds.
        columns = [c for c in D.c if c.name not in ("id", "host_id")]
        copy = insert(D).from_select(
            ["host_id", *(c.name for c in columns)],
            select(bindparam("b_host", type_=Integer), *columns).where(D.c.host_id == first),
        )
        others = [{"b_host": ids[name]} for name in names[1:]]
        for i in range(0, len(others), BATCH_HOSTS):
            if template:
                conn.execute(copy, others[i : i + BATCH_HOSTS])
    return len(template) * len(names)
