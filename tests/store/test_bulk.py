"""The bulk loader stores exactly what one inventory report per host would."""

from __future__ import annotations

from sqlalchemy import Engine, select

from pcifleet.pci import PciPools
from pcifleet.store.bulk import bulk_load_hosts
from pcifleet.store.checks import check_consistency
from pcifleet.store.claims import pools_json
from pcifleet.store.inventory import sync_inventory
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from tests.store.sample import classified

FACTS = [c for c in D.c if c.name not in ("id", "host_id", "created_at", "updated_at")]


def rows_of(engine: Engine, host: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(*FACTS)
                .join(H, H.c.id == D.c.host_id)
                .where(H.c.name == host)
                .order_by(D.c.address)
            )
        ]


def stats_of(engine: Engine, host: str) -> list[dict]:
    with engine.connect() as conn:
        return conn.execute(select(H.c.pci_stats).where(H.c.name == host)).scalar_one()


def test_bulk_equals_sync(engine: Engine) -> None:
    devices = classified(3)
    # 2 PFs, 2 x 3 VFs and 2 GPUs per host
    assert bulk_load_hosts(engine, ["b1", "b2", "b3"], devices) == 3 * 10
    sync_inventory(engine, "s1", devices, None)
    assert rows_of(engine, "b3") == rows_of(engine, "s1")
    assert stats_of(engine, "b2") == stats_of(engine, "s1")
    assert check_consistency(engine) == []


def test_cached_pool_document_equals_the_models() -> None:
    from pcifleet.pci import build_pools

    pools = build_pools(classified(2))
    assert pools_json(pools) == pools.to_json()
    assert PciPools.from_json(pools_json(pools)).to_json() == pools.to_json()
