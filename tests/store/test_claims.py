"""Claims, allocation and release on a real database, with the PF/VF dependency."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event, select, update

from pcifleet.pci import PciRequestsUnsatisfiable
from pcifleet.store.checks import check_consistency, held_by_request
from pcifleet.store.claims import (
    ClaimConflict,
    allocate,
    claim,
    execute_claim,
    free,
    instance_devices,
    plan_claim,
)
from pcifleet.store.errors import HostNotFound
from pcifleet.store.inventory import sync_inventory
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from pcifleet.store.snapshot import load_host
from tests.store.sample import GPU1, PF1, PF2, classified, gpu, pf_port, vf_port


@pytest.fixture
def host(engine: Engine) -> Iterator[Engine]:
    sync_inventory(engine, "h1", classified(4), None, vcpus=8, memory_mb=8192)
    yield engine
    assert check_consistency(engine) == []


def status_of(engine: Engine, address: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(D.c.status).where(D.c.address == address)).scalar_one())


def host_row(engine: Engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(select(H).where(H.c.name == "h1")).mappings().one())


def free_in(engine: Engine, parent: str, dev_type: str) -> int:
    for p in host_row(engine)["pci_stats"]:
        if p["parent_addr"] == parent and p["dev_type"] == dev_type:
            return int(p["count"])
    raise AssertionError(f"no pool {parent} {dev_type}")


def new_id() -> str:
    return str(uuid.uuid4())


def test_vf_claim_marks_the_vf_blocks_its_pf_and_bumps_generation(host: Engine) -> None:
    before = host_row(host)["generation"]
    vm, req = new_id(), vf_port("physnet1")
    result = claim(host, "h1", vm, [req], vcpus=2, memory_mb=1024)
    assert result.generation == before + 1 == host_row(host)["generation"]
    [dev] = result.devices
    assert dev.request_id == req.request_id
    assert dev.parent_addr == PF1
    assert dev.physical_network == "physnet1"
    assert dev.pci_vendor_info == "8086:154c"
    assert status_of(host, dev.address) == "claimed"
    assert status_of(host, PF1) == "unavailable"
    assert free_in(host, PF1, "type-VF") == 3
    assert free_in(host, PF1, "type-PF") == 0
    row = host_row(host)
    assert (row["vcpus_used"], row["memory_mb_used"]) == (2, 1024)
    assert instance_devices(host, vm) == [dev]


def test_pf_claim_blocks_all_its_vfs(host: Engine) -> None:
    result = claim(host, "h1", new_id(), [pf_port("physnet2")])
    assert [d.address for d in result.devices] == [PF2]
    with host.connect() as conn:
        vfs = conn.execute(select(D.c.status).where(D.c.parent_addr == PF2)).scalars().all()
    assert vfs == ["unavailable"] * 4
    assert free_in(host, PF2, "type-VF") == 0
    assert free_in(host, PF1, "type-VF") == 4


def test_all_requests_are_met_at_once(host: Engine) -> None:
    reqs = [vf_port("physnet1"), vf_port("physnet2"), gpu(2)]
    result = claim(host, "h1", new_id(), reqs)
    assert [len(result.devices_for(r.request_id)) for r in reqs] == [1, 1, 2]
    assert held_by_request(host) == {r.request_id: r.count for r in reqs}


def test_unsatisfiable_claim_changes_nothing(host: Engine) -> None:
    before = host_row(host)
    with pytest.raises(PciRequestsUnsatisfiable, match="alias 'gpu' x3 needs 3"):
        claim(host, "h1", new_id(), [vf_port(), gpu(3)])
    assert host_row(host) == before
    assert held_by_request(host) == {}


def test_numa_required_policy_picks_the_device_on_the_instances_node(host: Engine) -> None:
    result = claim(host, "h1", new_id(), [gpu(1, "required")], numa_cells=[1])
    assert [d.address for d in result.devices] == [GPU1]
    with pytest.raises(PciRequestsUnsatisfiable):
        claim(host, "h1", new_id(), [gpu(1, "required")], numa_cells=[1])


def test_unknown_host(host: Engine) -> None:
    with pytest.raises(HostNotFound, match="'nope'"):
        claim(host, "nope", new_id(), [vf_port()])


def test_allocate_then_free_restores_the_pf_only_when_its_last_vf_is_free(host: Engine) -> None:
    vm1, vm2 = new_id(), new_id()
    a = claim(host, "h1", vm1, [vf_port()], vcpus=2, memory_mb=512).devices[0].address
    b = claim(host, "h1", vm2, [vf_port()], vcpus=2, memory_mb=512).devices[0].address
    assert a != b
    assert allocate(host, "h1", vm1) == [a]
    assert status_of(host, a) == "allocated"
    first = free(host, "h1", vm1, vcpus=2, memory_mb=512)
    assert first.freed == [a]
    assert first.restored == []
    assert status_of(host, PF1) == "unavailable"
    second = free(host, "h1", vm2, vcpus=2, memory_mb=512)
    assert second.restored == [PF1]
    assert status_of(host, PF1) == "available"
    assert free_in(host, PF1, "type-VF") == 4
    assert free_in(host, PF1, "type-PF") == 1
    row = host_row(host)
    assert (row["vcpus_used"], row["memory_mb_used"]) == (0, 0)


def test_freeing_a_pf_restores_its_vfs(host: Engine) -> None:
    vm = new_id()
    claim(host, "h1", vm, [pf_port()])
    result = free(host, "h1", vm)
    assert result.freed == [PF1]
    assert len(result.restored) == 4
    assert free_in(host, PF1, "type-VF") == 4


def test_freeing_a_vanished_device_removes_it(host: Engine) -> None:
    vm = new_id()
    gen = claim(host, "h1", vm, [vf_port()]).generation
    addr = instance_devices(host, vm)[0].address
    sync_inventory(host, "h1", classified(0), gen)
    result = free(host, "h1", vm)
    assert result.removed == [addr]
    assert status_of(host, addr) == "removed"
    assert status_of(host, PF1) == "available"


def test_free_of_nothing_only_returns_counters(host: Engine) -> None:
    claim(host, "h1", new_id(), [], vcpus=4)
    result = free(host, "h1", new_id(), vcpus=8)
    assert result.freed == []
    assert host_row(host)["vcpus_used"] == 0


def test_a_plan_from_an_old_generation_loses(host: Engine) -> None:
    with host.connect() as conn:
        old = load_host(conn, "h1")
    stale = plan_claim(old, [vf_port()])
    claim(host, "h1", new_id(), [vf_port()])
    before = host_row(host)
    with pytest.raises(ClaimConflict, match="no longer at generation"):
        execute_claim(host, stale, new_id())
    assert host_row(host) == before


def test_claim_retries_after_losing_twice(host: Engine) -> None:
    """Another writer commits right before our swap, twice; the third try wins."""
    other = host.connect()
    lost = []

    def interfere(conn, cursor, statement, params, context, executemany):
        if conn is other:
            return
        if len(lost) < 2 and statement.lstrip().upper().startswith("UPDATE HOSTS"):
            lost.append(statement)
            other.execute(update(H).values(generation=H.c.generation + 1))
            other.commit()

    event.listen(host, "before_cursor_execute", interfere)
    try:
        result = claim(host, "h1", new_id(), [vf_port()])
    finally:
        event.remove(host, "before_cursor_execute", interfere)
        other.close()
    assert len(lost) == 2
    assert len(result.devices) == 1
    assert result.generation == host_row(host)["generation"]


def test_claim_gives_up_after_its_retries(host: Engine) -> None:
    other = host.connect()

    def interfere(conn, cursor, statement, params, context, executemany):
        if conn is not other and statement.lstrip().upper().startswith("UPDATE HOSTS"):
            other.execute(update(H).values(generation=H.c.generation + 1))
            other.commit()

    event.listen(host, "before_cursor_execute", interfere)
    try:
        with pytest.raises(ClaimConflict, match="lost 3 races"):
            claim(host, "h1", new_id(), [vf_port()], retries=2)
    finally:
        event.remove(host, "before_cursor_execute", interfere)
        other.close()
    assert held_by_request(host) == {}
