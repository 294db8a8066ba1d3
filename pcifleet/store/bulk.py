"""Bulk loading of simulated hosts: many identical hosts in a few statements.

For ``pcifleet up`` simulations and the benchmarks: one classified host is
turned into rows once and inserted for every host name with Core executemany,
computing facts and pools with the same functions as ``sync_inventory`` so the
result is exactly what one report per host would have stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Engine, insert, select

from pcifleet.pci import DeviceStatus
from pcifleet.store.devices import facts_of, pool_stats_json
from pcifleet.store.inventory import Reported, assignable_devices
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from pcifleet.store.models import utcnow
from pcifleet.store.snapshot import CHUNK

BATCH_ROWS = 50_000


def bulk_load_hosts(
    engine: Engine,
    names: Sequence[str],
    devices: Iterable[Reported],
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
    now: datetime | None = None,
) -> int:
    """Insert hosts ``names``, each with the same classified ``devices``; returns rows added.

    The hosts must not exist yet. Every host starts at generation 1 with all
    devices available, as after its first inventory report.
    """
    now = now or utcnow()
    template = []
    for address, (device, tags) in sorted(assignable_devices(devices).items()):
        template.append(
            {
                "address": address,
                **facts_of(device, tags),
                "status": DeviceStatus.AVAILABLE.value,
                "instance_uuid": None,
                "request_id": None,
                "vanished_at": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    stats = pool_stats_json(template)
    added = 0
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
            wanted = set(names) - set(ids)
            raise RuntimeError(f"hosts not inserted: {sorted(wanted)[:5]}")
        batch: list[dict[str, object]] = []
        for name in names:
            host_id = ids[name]
            for row in template:
                batch.append({**row, "host_id": host_id})
            if len(batch) >= BATCH_ROWS:
                conn.execute(insert(D), batch)
                added += len(batch)
                batch = []
        if batch:
            conn.execute(insert(D), batch)
            added += len(batch)
    return added
