"""The scheduler against a real store: choice, filters, weighers, races, errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update

from pcifleet.pci import PciDevice, request_for_port
from pcifleet.scheduler import NoValidHost, Scheduler, SchedulerConfig
from pcifleet.store.bulk import bulk_load_hosts
from pcifleet.store.checks import check_consistency
from pcifleet.store.claims import claim
from pcifleet.store.inventory import set_host_state, sync_inventory
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import utcnow
from tests.store.sample import PF1, classified, gpu, pf_port, vf_port


def new_id() -> str:
    return str(uuid.uuid4())


def fleet(engine: Engine, n: int, numvfs: int = 4, vcpus: int = 16, **kw: object) -> list[str]:
    names = [f"h{i:02d}" for i in range(n)]
    bulk_load_hosts(engine, names, classified(numvfs), vcpus=vcpus, memory_mb=65536)
    return names


def physnet3_host(engine: Engine, name: str) -> None:
    """A host whose only NIC is on physnet3 (another network)."""
    devices = [
        (c.device, {"physical_network": "physnet3"})
        for c in classified(2)
        if c.tags is not None and c.tags.get("physical_network") == "physnet1"
    ]
    sync_inventory(engine, name, devices, None, vcpus=16, memory_mb=65536)


def test_places_a_port_and_keeps_index_and_store_in_step(engine: Engine) -> None:
    fleet(engine, 3)
    sched = Scheduler(engine)
    req = vf_port("physnet2")
    placed = sched.select_and_claim(new_id(), [req], vcpus=2, memory_mb=1024)
    [dev] = placed.claim.devices_for(req.request_id)
    assert dev.physical_network == "physnet2"
    entry = sched.index.hosts[sched.index.by_name[placed.host]]
    assert entry.generation == placed.claim.generation
    assert entry.vcpus_used == 2
    # A forced refresh finds nothing to reload: the index already matches the store.
    assert sched.refresh(force=True) == 0
    assert check_consistency(engine) == []


def test_a_request_walks_only_hosts_that_can_serve_it(engine: Engine) -> None:
    fleet(engine, 20)
    physnet3_host(engine, "odd")
    sched = Scheduler(engine)
    sched.refresh(force=True)
    req = vf_port("physnet3")
    assert [e.name for e in sched.index.walk(req, ascending=True)] == ["odd"]
    assert sched.index.population(req) == 1
    assert sched.select_and_claim(new_id(), [req]).host == "odd"


def test_pack_fills_the_used_host_spread_goes_elsewhere(engine: Engine) -> None:
    fleet(engine, 3)
    pack = Scheduler(engine)
    first = pack.select_and_claim(new_id(), [vf_port()]).host
    assert pack.select_and_claim(new_id(), [vf_port()]).host == first
    spread = Scheduler(engine, SchedulerConfig(mode="spread"))
    assert spread.select_and_claim(new_id(), [vf_port()]).host != first


def test_spread_goes_to_the_freest_host_pack_to_the_used_one(engine: Engine) -> None:
    fleet(engine, 2)
    claim(engine, "h01", new_id(), [vf_port("physnet1")])
    pack = Scheduler(engine)
    assert pack.select_and_claim(new_id(), [vf_port("physnet1")]).host == "h01"
    spread = Scheduler(engine, SchedulerConfig(mode="spread"))
    assert spread.select_and_claim(new_id(), [vf_port("physnet1")]).host == "h00"


def test_best_fit_keeps_whole_numa_nodes_over_plain_packing(engine: Engine) -> None:
    fleet(engine, 2)
    claim(engine, "h00", new_id(), [gpu(1, "required")], numa_cells=[1])  # h00: node 1 used
    claim(engine, "h01", new_id(), [vf_port("physnet1")])  # h01: node 0 used
    sched = Scheduler(engine)
    # Packing alone would take h00's last GPU (on node 0) and break its last whole
    # node; h01's node-0 GPU breaks nothing new.
    placed = sched.select_and_claim(new_id(), [gpu()])
    assert placed.host == "h01"
    assert [d.numa_node for d in placed.claim.devices] == [0]
    # A whole PF can only come from a host whose PF is untouched.
    assert sched.select_and_claim(new_id(), [pf_port("physnet2")]).host == "h00"


def test_servers_without_pci_prefer_hosts_without_free_devices(engine: Engine) -> None:
    fleet(engine, 2)
    sync_inventory(engine, "plain", [], None, vcpus=16, memory_mb=65536)
    sched = Scheduler(engine)
    assert sched.select_and_claim(new_id(), [], vcpus=2).host == "plain"


def test_down_and_disabled_hosts_are_skipped(engine: Engine) -> None:
    fleet(engine, 3)
    old = utcnow() - timedelta(minutes=10)
    with engine.begin() as conn:
        conn.execute(update(H).where(H.c.name == "h00").values(last_report_at=old))
    set_host_state(engine, "h01", "disabled")
    sched = Scheduler(engine)
    for _ in range(3):
        assert sched.select_and_claim(new_id(), [vf_port()]).host == "h02"


def test_a_host_that_stops_reporting_goes_down_between_refreshes(engine: Engine) -> None:
    fleet(engine, 1)
    now = [datetime.now(UTC).timestamp()]
    sched = Scheduler(engine, SchedulerConfig(host_down_after=60), clock=lambda: now[0])
    sched.select_and_claim(new_id(), [vf_port()])
    now[0] += 120
    with pytest.raises(NoValidHost, match=r"1 host\(s\) failed host up"):
        sched.select_and_claim(new_id(), [vf_port()])


def test_vcpu_and_ram_filters(engine: Engine) -> None:
    fleet(engine, 2, vcpus=2)
    sched = Scheduler(engine, SchedulerConfig(cpu_allocation_ratio=1.0))
    sched.select_and_claim(new_id(), [vf_port()], vcpus=2)
    sched.select_and_claim(new_id(), [vf_port()], vcpus=2)
    with pytest.raises(NoValidHost, match=r"2 host\(s\) failed vCPU") as info:
        sched.select_and_claim(new_id(), [vf_port()], vcpus=2)
    assert info.value.hosts == 2
    with pytest.raises(NoValidHost, match="failed RAM"):
        Scheduler(engine).select_and_claim(new_id(), [], memory_mb=10**6)


def test_numa_required_policy_with_a_one_node_server(engine: Engine) -> None:
    fleet(engine, 1)
    sched = Scheduler(engine)
    # Both GPUs and the physnet1 port must share the server's single NUMA node:
    # the GPUs are on nodes 0 and 1, so two GPUs cannot.
    with pytest.raises(NoValidHost, match="alias 'gpu' x2"):
        sched.select_and_claim(new_id(), [gpu(2, "required")], numa_nodes=1)
    placed = sched.select_and_claim(
        new_id(), [gpu(1, "required"), vf_port("physnet2")], numa_nodes=1
    )
    assert placed.numa_cells == [1]
    assert {d.numa_node for d in placed.claim.devices} == {1}


def test_no_valid_host_says_which_request_and_how_many_hosts(engine: Engine) -> None:
    fleet(engine, 4)
    sched = Scheduler(engine)
    req = vf_port("physnet9")
    with pytest.raises(NoValidHost) as info:
        sched.select_and_claim(new_id(), [vf_port("physnet1"), req])
    message = str(info.value)
    assert f"port request {req.request_id} (type-VF on physnet9 x1)" in message
    assert "4 host(s) failed PCI" in message
    assert info.value.code == "pcifleet.no_valid_host"


def test_a_lost_race_moves_to_the_next_host(engine: Engine) -> None:
    fleet(engine, 2, numvfs=1)
    mine, theirs = Scheduler(engine), Scheduler(engine)
    mine.refresh(force=True)
    taken = theirs.select_and_claim(new_id(), [pf_port("physnet1")]).host
    # `mine` still believes both PFs are free and tries the same host first.
    placed = mine.select_and_claim(new_id(), [pf_port("physnet1")])
    assert placed.host != taken
    assert placed.attempts == 2
    with pytest.raises(NoValidHost):
        mine.select_and_claim(new_id(), [pf_port("physnet1")])
    assert check_consistency(engine) == []


def test_refresh_reloads_only_changed_hosts(engine: Engine) -> None:
    fleet(engine, 5)
    sched = Scheduler(engine)
    assert sched.refresh(force=True) == 5
    assert sched.refresh(force=True) == 0
    claim(engine, "h03", new_id(), [gpu()])
    assert sched.refresh(force=True) == 1
    assert sched.refresh() == 0  # within refresh_interval: not even a scan


def test_release_frees_in_store_and_index(engine: Engine) -> None:
    fleet(engine, 1, numvfs=1)
    sched = Scheduler(engine)
    vm = new_id()
    placed = sched.select_and_claim(vm, [vf_port()], vcpus=4)
    with pytest.raises(NoValidHost):
        sched.select_and_claim(new_id(), [pf_port()])
    freed = sched.release(placed.host, vm, vcpus=4)
    assert freed.restored == [PF1]
    assert sched.select_and_claim(new_id(), [pf_port()]).host == placed.host
    assert check_consistency(engine) == []


def test_capacity_per_fleet_and_host(engine: Engine) -> None:
    fleet(engine, 3)
    sched = Scheduler(engine)
    assert sched.capacity([vf_port()]).total == 12
    assert sched.capacity([pf_port()]).total == 3
    assert sched.capacity([gpu()]).total == 6
    assert sched.capacity([gpu(2)]).total == 3
    both = sched.capacity([vf_port("physnet1"), vf_port("physnet2")])
    assert both.per_host == {"h00": 4, "h01": 4, "h02": 4}
    sched.select_and_claim(new_id(), [vf_port()])
    after = sched.capacity([vf_port()])
    assert after.total == 11
    assert sorted(after.per_host.values()) == [3, 4, 4]
    # The capacity of a whole PF drops too: the used host's PF is blocked.
    assert sched.capacity([pf_port()]).total == 2
    assert sched.capacity([], vcpus=16).total == 3 * 4  # 16 vCPUs x 4.0 / 16


def test_capacity_needs_something_to_count(engine: Engine) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Scheduler(engine).capacity([])


def test_an_unknown_device_kind_matches_no_host(engine: Engine) -> None:
    fleet(engine, 2)
    odd = PciDevice(address="0000:af:00.0", vendor_id="15b3", product_id="1017")
    sync_inventory(engine, "mlx", [(odd, {"physical_network": "physnet1"})], None)
    sched = Scheduler(engine)
    placed = sched.select_and_claim(new_id(), [pf_port("physnet1")])
    assert placed.host in {"h00", "h01"}  # the Mellanox device is type-PCI, not a PF


def test_a_host_with_unreadable_pools_is_left_out_not_fatal(engine: Engine) -> None:
    fleet(engine, 2)
    with engine.begin() as conn:
        conn.execute(
            update(H).where(H.c.name == "h00").values(pci_stats=[{"vendor_id": "zz", "count": 1}])
        )
    sched = Scheduler(engine)
    for _ in range(3):
        assert sched.select_and_claim(new_id(), [vf_port()]).host == "h01"
    assert not sched.index.hosts[sched.index.by_name["h00"]].enabled


def test_a_bad_instance_uuid_is_refused_before_any_write(engine: Engine) -> None:
    fleet(engine, 1)
    with pytest.raises(ValueError, match=r"^instance_uuid"):
        Scheduler(engine).select_and_claim("x" * 37, [vf_port()])


def test_an_alias_naming_two_models_counts_both(engine: Engine) -> None:
    from pcifleet.pci import parse_aliases, requests_from_flavor

    fleet(engine, 3)
    t4 = PciDevice(address="0000:af:00.0", vendor_id="10de", product_id="1eb8", numa_node=0)
    v100 = PciDevice(address="0000:b0:00.0", vendor_id="10de", product_id="1db4", numa_node=1)
    sync_inventory(engine, "mixed", [(t4, {}), (v100, {})], None, vcpus=16, memory_mb=65536)
    aliases = parse_aliases(
        [
            {"name": "anygpu", "vendor_id": "10de", "product_id": "1db4"},
            {"name": "anygpu", "vendor_id": "10de", "product_id": "1eb8"},
        ]
    )
    sched = Scheduler(engine)
    sched.refresh(force=True)
    [one] = requests_from_flavor({"pci_passthrough:alias": "anygpu:1"}, aliases)
    assert len(list(sched.index.walk(one, ascending=True))) == 4
    [three] = requests_from_flavor({"pci_passthrough:alias": "anygpu:3"}, aliases)
    assert list(sched.index.walk(three, ascending=True)) == []
    with pytest.raises(NoValidHost, match="alias 'anygpu' x3"):
        sched.select_and_claim(new_id(), [three])
    # Only "mixed" has one of each model: packing takes it first for two.
    [two] = requests_from_flavor({"pci_passthrough:alias": "anygpu:2"}, aliases)
    placed = sched.select_and_claim(new_id(), [two])
    assert placed.host == "mixed"
    assert sorted(d.product_id for d in placed.claim.devices) == ["1db4", "1eb8"]


def test_a_down_host_that_reports_again_is_used_again(engine: Engine) -> None:
    from pcifleet.store.inventory import heartbeat

    fleet(engine, 1)
    with engine.begin() as conn:
        conn.execute(update(H).values(last_report_at=utcnow() - timedelta(minutes=5)))
    now = [datetime.now(UTC).timestamp()]
    config = SchedulerConfig(refresh_interval=3600, recheck_interval=1.0)
    sched = Scheduler(engine, config, clock=lambda: now[0])
    with pytest.raises(NoValidHost, match=r"1 host\(s\) failed host up"):
        sched.select_and_claim(new_id(), [vf_port()])
    heartbeat(engine, "h00")
    # Within the recheck interval of a re-read that found nothing, "no" comes
    # from the index as it stands...
    with pytest.raises(NoValidHost, match=r"1 host\(s\) failed host up"):
        sched.select_and_claim(new_id(), [vf_port()])
    # ...after it, heartbeats (they bump no generation) are seen by the re-read
    # before saying no.
    now[0] += 1.5
    assert sched.select_and_claim(new_id(), [vf_port()]).host == "h00"


def test_a_host_this_process_reports_is_seen_within_the_recheck_interval(
    engine: Engine,
) -> None:
    now = [datetime.now(UTC).timestamp()]
    config = SchedulerConfig(refresh_interval=3600, recheck_interval=60.0)
    sched = Scheduler(engine, config, clock=lambda: now[0])
    with pytest.raises(NoValidHost):
        sched.select_and_claim(new_id(), [vf_port()])  # no hosts at all: a fruitless look
    fleet(engine, 1)  # a first inventory report, committed by this process...
    sched.host_changed("h00")  # ...which says so, as the inventory route does
    assert sched.select_and_claim(new_id(), [vf_port()]).host == "h00"


# --- guest NUMA over reported cells (issue #13) ---------------------------------

CELLS = [
    {"id": 0, "cpus": "0-7", "memory_mb": 32768, "socket": 0},
    {"id": 1, "cpus": "8-15", "memory_mb": 32768, "socket": 1},
]


def numa_host(engine: Engine, name: str, cells: list[dict[str, object]] = CELLS) -> None:
    sync_inventory(
        engine, name, classified(4), None, vcpus=16, memory_mb=65536, numa_topology=cells
    )


def test_one_cell_with_required_policy_cannot_span_two_cells_and_says_numa(
    engine: Engine,
) -> None:
    numa_host(engine, "n1")
    sched = Scheduler(engine)
    ports = [vf_port("physnet1"), vf_port("physnet2")]  # NUMA 0 and NUMA 1
    for r in ports:
        r.numa_policy = "required"  # type: ignore[assignment]
    with pytest.raises(NoValidHost) as err:
        sched.select_and_claim(new_id(), ports, vcpus=2, memory_mb=1024, numa_nodes=1)
    assert "NUMA policy required" in str(err.value)
    # the same ports over two cells fit, and the claim names both cells
    placed = sched.select_and_claim(new_id(), ports, vcpus=2, memory_mb=1024, numa_nodes=2)
    assert placed.numa_cells == [0, 1]


def test_both_ports_on_one_cell_place_the_server_on_that_cell(engine: Engine) -> None:
    numa_host(engine, "n1")
    sched = Scheduler(engine)
    ports = [vf_port("physnet2"), vf_port("physnet2")]
    for r in ports:
        r.numa_policy = "required"  # type: ignore[assignment]
    placed = sched.select_and_claim(new_id(), ports, vcpus=2, memory_mb=1024, numa_nodes=1)
    assert placed.numa_cells == [1]


def test_cells_too_small_for_the_guests_share_are_not_chosen(engine: Engine) -> None:
    small = [
        {"id": 0, "cpus": "0-1", "memory_mb": 32768},
        {"id": 1, "cpus": "2-15", "memory_mb": 32768},
    ]
    numa_host(engine, "n1", small)
    sched = Scheduler(engine)
    # four vCPUs in one cell: only cell 1 has them, even though cell 0 comes first
    placed = sched.select_and_claim(new_id(), [], vcpus=4, numa_nodes=1)
    assert placed.numa_cells == [1]
    with pytest.raises(NoValidHost) as err:
        sched.select_and_claim(new_id(), [vf_port("physnet2")], vcpus=16, numa_nodes=1)
    assert "NUMA nodes with room" in str(err.value)


def test_socket_policy_uses_the_cells_sharing_the_instances_socket(engine: Engine) -> None:
    one_socket = [{**c, "socket": 0} for c in CELLS]
    numa_host(engine, "n1", one_socket)
    sched = Scheduler(engine)
    gpus = gpu(2, numa_policy="socket")  # one GPU per cell
    placed = sched.select_and_claim(new_id(), [gpus], vcpus=2, numa_nodes=1)
    assert placed.numa_cells is not None and len(placed.numa_cells) == 1
    numa_host(engine, "n2", CELLS)  # two sockets: no cell reaches both GPUs
    with pytest.raises(NoValidHost):
        sched.select_and_claim(
            new_id(), [gpu(2, numa_policy="socket")], vcpus=2, numa_nodes=1, only_host="n2"
        )


def test_distinct_pf_ports_are_claimed_on_two_pfs(engine: Engine) -> None:
    fleet(engine, 1)
    sched = Scheduler(engine)
    ports = [request_for_port("physnet1", "direct", distinct_pf=True) for _ in range(2)]
    with pytest.raises(NoValidHost) as err:
        # the sample host has one PF on physnet1
        sched.select_and_claim(new_id(), ports)
    assert "distinct_pf" in str(err.value)
    both = [
        request_for_port("physnet1", "direct", distinct_pf=True),
        request_for_port("physnet2", "direct", distinct_pf=True),
    ]
    placed = sched.select_and_claim(new_id(), both)
    assert len({d.parent_addr for d in placed.claim.devices}) == 2
    assert check_consistency(engine) == []
