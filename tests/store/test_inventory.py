"""Inventory sync: added, removed, flagged, returned; stale reports refused."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select

from pcifleet.pci import PciDevice
from pcifleet.store.checks import check_consistency
from pcifleet.store.claims import allocate, claim
from pcifleet.store.errors import HostNotFound, InvalidInventory, StaleGeneration
from pcifleet.store.inventory import heartbeat, set_host_state, sync_inventory
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from tests.store.sample import GPU0, PF1, classified, pf_port, vf_port


def statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(D.c.address, D.c.status)).all())


def pools(engine: Engine, host: str = "h1") -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        stats = conn.execute(select(H.c.pci_stats).where(H.c.name == host)).scalar_one()
    return {f"{p['parent_addr']}/{p['dev_type']}": (p["count"], p["total"]) for p in stats}


def test_first_report_creates_host_devices_and_pools(engine: Engine) -> None:
    result = sync_inventory(engine, "h1", classified(4), None, vcpus=64, memory_mb=1024)
    assert result.generation == 1
    assert len(result.added) == 2 * (1 + 4) + 2
    assert result.removed == result.flagged == []
    assert pools(engine) == {
        "0000:3b:00.0/type-PF": (1, 1),
        "0000:3b:00.0/type-VF": (4, 4),
        "0000:5e:00.0/type-PCI": (1, 1),
        "0000:86:00.0/type-PF": (1, 1),
        "0000:86:00.0/type-VF": (4, 4),
        "0000:d8:00.0/type-PCI": (1, 1),
    }
    assert check_consistency(engine) == []


def test_unmatched_devices_are_not_stored(engine: Engine) -> None:
    stray = PciDevice(address="0000:00:1f.0", vendor_id="8086", product_id="a1c8")
    sync_inventory(engine, "h1", [*classified(2), (stray, None)], None)
    assert "0000:00:1f.0" not in statuses(engine)


def test_stale_generation_is_refused_and_changes_nothing(engine: Engine) -> None:
    sync_inventory(engine, "h1", classified(4), None)
    before = statuses(engine)
    with pytest.raises(StaleGeneration, match=r"since generation 0 \(now 1\)") as info:
        sync_inventory(engine, "h1", classified(2), 0)
    assert info.value.code == "pcifleet.concurrent_update"
    assert statuses(engine) == before


def test_a_claim_makes_the_agents_generation_stale(engine: Engine) -> None:
    gen = sync_inventory(engine, "h1", classified(4), None).generation
    claim(engine, "h1", str(uuid.uuid4()), [vf_port()])
    with pytest.raises(StaleGeneration):
        sync_inventory(engine, "h1", classified(4), gen)
    assert sync_inventory(engine, "h1", classified(4), gen + 1).generation == gen + 2


def test_unknown_host_with_a_generation_is_refused(engine: Engine) -> None:
    with pytest.raises(StaleGeneration):
        sync_inventory(engine, "ghost", classified(1), 5)


def test_vanished_free_device_is_removed_and_comes_back(engine: Engine) -> None:
    gen = sync_inventory(engine, "h1", classified(4), None).generation
    result = sync_inventory(engine, "h1", classified(2), gen)
    assert result.removed == ["0000:3b:02.2", "0000:3b:02.3", "0000:86:02.2", "0000:86:02.3"]
    assert pools(engine)["0000:3b:00.0/type-VF"] == (2, 2)
    assert statuses(engine)["0000:3b:02.3"] == "removed"
    again = sync_inventory(engine, "h1", classified(4), result.generation)
    assert again.returned == result.removed
    assert pools(engine)["0000:3b:00.0/type-VF"] == (4, 4)
    assert check_consistency(engine) == []


def test_vanished_allocated_device_is_kept_and_flagged(engine: Engine) -> None:
    sync_inventory(engine, "h1", classified(4), None)
    vm = str(uuid.uuid4())
    held = claim(engine, "h1", vm, [vf_port()]).devices[0].address
    allocate(engine, "h1", vm)
    gen = claim(engine, "h1", str(uuid.uuid4()), []).generation  # a no-PCI claim: bump only
    # The host now reports no VFs at all (numvfs reset to 0).
    result = sync_inventory(engine, "h1", classified(0), gen)
    assert result.flagged == [held]
    assert held not in result.removed
    with engine.connect() as conn:
        row = conn.execute(select(D).where(D.c.address == held)).mappings().one()
    assert row["status"] == "allocated"
    assert row["instance_uuid"] == vm
    assert row["vanished_at"] is not None
    back = sync_inventory(engine, "h1", classified(4), result.generation)
    assert held in back.returned and len(back.returned) == 8  # the 7 removed VFs too
    with engine.connect() as conn:
        assert conn.execute(select(D.c.vanished_at).where(D.c.address == held)).scalar() is None
    assert check_consistency(engine) == []


def test_new_vfs_of_a_pf_in_use_arrive_blocked(engine: Engine) -> None:
    sync_inventory(engine, "h1", classified(0), None)
    claimed = claim(engine, "h1", str(uuid.uuid4()), [pf_port()])
    assert claimed.devices[0].address == PF1
    result = sync_inventory(engine, "h1", classified(2), claimed.generation)
    st = statuses(engine)
    assert st["0000:3b:02.0"] == st["0000:3b:02.1"] == "unavailable"
    assert st["0000:86:02.0"] == "available"
    assert "0000:3b:02.0" in result.added
    assert pools(engine)["0000:3b:00.0/type-VF"] == (0, 2)
    assert check_consistency(engine) == []


def test_changed_facts_are_updated(engine: Engine) -> None:
    devices = classified(1)
    gen = sync_inventory(engine, "h1", devices, None).generation
    renamed = [
        (c.device, {**(c.tags or {}), "trusted": "true"})
        if str(c.device.address) == GPU0
        else (c.device, c.tags)
        for c in devices
    ]
    result = sync_inventory(engine, "h1", renamed, gen)
    assert result.updated == [GPU0]
    with engine.connect() as conn:
        tags = conn.execute(select(D.c.tags).where(D.c.address == GPU0)).scalar()
    assert tags == {"trusted": "true"}
    assert check_consistency(engine) == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host": ""}, "host"),
        ({"host": "x" * 256}, "host"),
        ({"vcpus": -1}, "vcpus"),
        ({"memory_mb": "lots"}, "memory_mb"),
        ({"devices": ["0000:00:00.0"]}, r"devices\[0\]"),
        ({"devices": [("0000:00:00.0", {})]}, r"devices\[0\].device"),
    ],
)
def test_malformed_reports_name_the_field(engine: Engine, kwargs: dict, field: str) -> None:
    args = {"host": "h1", "devices": classified(1), **kwargs}
    with pytest.raises(InvalidInventory, match=f"^{field}"):
        sync_inventory(
            engine,
            args.pop("host"),
            args.pop("devices"),
            None,
            **args,
        )
    assert statuses(engine) == {}


def test_a_device_reported_twice_is_refused(engine: Engine) -> None:
    devices = classified(1)
    with pytest.raises(InvalidInventory, match=r"devices\[6\].address: 0000:3b:00.0 is reported"):
        sync_inventory(engine, "h1", [*devices, devices[0]], None)


def test_heartbeat_and_state(engine: Engine) -> None:
    gen = sync_inventory(engine, "h1", classified(1), None).generation
    heartbeat(engine, "h1")
    assert set_host_state(engine, "h1", "disabled") == gen + 1
    with pytest.raises(HostNotFound):
        heartbeat(engine, "nope")
    with pytest.raises(InvalidInventory, match=r"^state"):
        set_host_state(engine, "h1", "maintenance")


def test_a_first_report_for_a_known_host_is_refused(engine: Engine) -> None:
    sync_inventory(engine, "h1", classified(1), None)
    with pytest.raises(StaleGeneration, match=r"already known \(generation 1\)"):
        sync_inventory(engine, "h1", classified(1), None)
