import pytest

from pcifleet.pci import (
    DevType,
    InvalidPciRequest,
    PciPools,
    PciRequest,
    PciRequestsUnsatisfiable,
    build_pools,
    classify,
    parse_device_specs,
    request_for_port,
    requests_from_flavor,
)

from .helpers import gpu, pf, vf
from .sample import sample_aliases, sample_classified


def pools_by_type(pools: PciPools) -> dict[tuple[str, str], int]:
    return {(p.parent_addr, p.dev_type.value): p.count for p in pools.pools}


def test_sample_host_pools() -> None:
    pools = build_pools(sample_classified())
    summary = {
        (
            p.parent_addr,
            p.dev_type.value,
            p.vendor_id,
            p.product_id,
            p.numa_node,
            p.tags.get("physical_network"),
            p.count,
        )
        for p in pools.pools
    }
    assert summary == {
        ("0000:3b:00.0", "type-PF", "8086", "1572", 0, "physnet1", 1),
        ("0000:3b:00.0", "type-VF", "8086", "154c", 0, "physnet1", 64),
        ("0000:86:00.0", "type-PF", "8086", "1572", 1, "physnet2", 1),
        ("0000:86:00.0", "type-VF", "8086", "154c", 1, "physnet2", 64),
        ("0000:5e:00.0", "type-PCI", "10de", "1db4", 0, None, 1),
        ("0000:d8:00.0", "type-PCI", "10de", "1db4", 1, None, 1),
    }


def test_json_round_trip() -> None:
    pools = build_pools(sample_classified())
    again = PciPools.from_json(pools.to_json())
    assert again.to_json() == pools.to_json()
    assert {p["pool_id"] for p in pools.to_json()} == {p.pool_id for p in pools.pools}


@pytest.mark.parametrize(
    "data",
    [
        {},
        [{"vendor_id": "8086"}],
        [
            {
                "vendor_id": "8086",
                "product_id": "154c",
                "dev_type": "type-X",
                "parent_addr": "a",
                "count": 1,
            }
        ],
        [
            {
                "vendor_id": "8086",
                "product_id": "154c",
                "dev_type": "type-VF",
                "parent_addr": "a",
                "count": -1,
            }
        ],
        [
            {
                "vendor_id": "8086",
                "product_id": "154c",
                "dev_type": "type-VF",
                "parent_addr": "a",
                "count": 2,
                "total": 1,
            }
        ],
        [
            {
                "vendor_id": "8086",
                "product_id": "154c",
                "dev_type": "type-VF",
                "parent_addr": "a",
                "count": 1,
                "tags": {"x": 1},
            }
        ],
        ["pool"],
    ],
)
def test_bad_pool_json_is_rejected(data: object) -> None:
    with pytest.raises(InvalidPciRequest):
        PciPools.from_json(data)


def test_unmatched_devices_are_not_pooled() -> None:
    specs = parse_device_specs([{"vendor_id": "10de"}])
    pools = build_pools(classify([gpu("0000:5e:00.0"), pf("0000:3b:00.0")], specs))
    assert [p.dev_type for p in pools.pools] == [DevType.PCI]


def test_specs_match_pool_values_case_insensitively() -> None:
    pools = build_pools(sample_classified())
    assert pools.free_count({"physical_network": "PHYSNET1", "dev_type": "TYPE-VF"}) == 64
    assert pools.free_count({"vendor_id": "10DE"}) == 2


def test_all_requests_must_fit_at_once() -> None:
    pools = build_pools(sample_classified())
    gpus = requests_from_flavor({"pci_passthrough:alias": "gpu:2"}, sample_aliases())
    assert pools.supports(gpus)
    three = requests_from_flavor({"pci_passthrough:alias": "gpu:2,gpu:1"}, sample_aliases())
    assert not pools.supports(three)
    before = pools.to_json()
    with pytest.raises(PciRequestsUnsatisfiable, match="alias 'gpu'"):
        pools.apply(three)
    assert pools.to_json() == before  # nothing changed


def test_count_may_come_from_several_pools() -> None:
    pools = build_pools(sample_classified())
    req = PciRequest(count=100, specs=[{"dev_type": "type-VF"}])
    takes = pools.apply([req])
    assert sorted(t.count for t in takes) == [36, 64]
    assert sum(p.count for p in pools.pools if p.dev_type is DevType.VF) == 28


def test_any_spec_of_a_request_may_match() -> None:
    pools = build_pools(sample_classified())
    req = PciRequest(count=1, specs=[{"vendor_id": "dead"}, {"physical_network": "physnet2"}])
    (take,) = pools.apply([req])
    assert take.pool.tags["physical_network"] == "physnet2"


def test_vf_taken_blocks_its_pf_pool() -> None:
    pools = build_pools(sample_classified())
    pools.apply([request_for_port("physnet1", "direct")])
    counts = pools_by_type(pools)
    assert counts[("0000:3b:00.0", "type-PF")] == 0
    assert counts[("0000:3b:00.0", "type-VF")] == 63
    assert counts[("0000:86:00.0", "type-PF")] == 1
    assert not pools.supports([request_for_port("physnet1", "direct-physical")])


def test_pf_taken_blocks_all_its_vfs() -> None:
    pools = build_pools(sample_classified())
    pools.apply([request_for_port("physnet2", "direct-physical")])
    counts = pools_by_type(pools)
    assert counts[("0000:86:00.0", "type-VF")] == 0
    assert not pools.supports([request_for_port("physnet2", "direct")])


def test_pf_and_vf_of_same_network_cannot_share_a_pf() -> None:
    pools = build_pools(sample_classified())
    both = [request_for_port("physnet1", "direct"), request_for_port("physnet1", "direct-physical")]
    assert not pools.supports(both)  # one NIC on physnet1: either its PF or its VFs


def test_best_fit_draws_from_a_broken_pf_first() -> None:
    specs = parse_device_specs([{"vendor_id": "8086", "physical_network": "physnet1"}])
    devices = [pf("0000:3b:00.0"), pf("0000:3c:00.0")]
    devices += [vf(f"0000:3b:02.{i}", "0000:3b:00.0") for i in range(4)]
    devices += [vf(f"0000:3c:02.{i}", "0000:3c:00.0") for i in range(4)]
    pools = build_pools(classify(devices, specs))
    first = pools.apply([request_for_port("physnet1", "direct")])[0].pool.parent_addr
    second = pools.apply([request_for_port("physnet1", "direct")])[0].pool.parent_addr
    assert first == second  # the other PF stays whole
    assert pools.supports([request_for_port("physnet1", "direct-physical")])


def numa_pools() -> PciPools:
    specs = parse_device_specs([{"vendor_id": "10de"}])
    return build_pools(
        classify(
            [
                gpu("0000:5e:00.0", numa=0),
                gpu("0000:d8:00.0", numa=1),
                gpu("0000:e0:00.0", numa=None),
            ],
            specs,
        )
    )


def gpu_request(policy: str, count: int = 1) -> PciRequest:
    return PciRequest(count=count, specs=[{"vendor_id": "10de"}], numa_policy=policy)  # type: ignore[arg-type]


def test_numa_required_only_uses_the_instance_cells() -> None:
    pools = numa_pools()
    assert pools.supports([gpu_request("required")], numa_cells=[1])
    assert not pools.supports([gpu_request("required", 2)], numa_cells=[1])
    assert "NUMA policy required" in (
        pools.explain_failure([gpu_request("required", 2)], [1]) or ""
    )


def test_numa_legacy_allows_devices_without_numa_info() -> None:
    pools = numa_pools()
    assert pools.supports([gpu_request("legacy", 2)], numa_cells=[1])
    assert not pools.supports([gpu_request("legacy", 3)], numa_cells=[1])


def test_numa_preferred_takes_cells_first_then_others() -> None:
    pools = numa_pools()
    (take,) = pools.apply([gpu_request("preferred")], numa_cells=[1])
    assert take.pool.numa_node == 1
    assert pools.supports([gpu_request("preferred", 2)], numa_cells=[1])


def test_no_numa_topology_means_no_restriction() -> None:
    assert numa_pools().supports([gpu_request("required", 3)])


# --- distinct PFs, trusted pools, socket policy (issue #13) -------------------


def two_pf_pools(trusted_second: bool = False) -> PciPools:
    devices = [
        pf("0000:3b:00.0", "ens1f0"),
        vf("0000:3b:02.0", "0000:3b:00.0"),
        vf("0000:3b:02.1", "0000:3b:00.0"),
        pf("0000:3c:00.0", "ens1f1", numa=1),
        vf("0000:3c:02.0", "0000:3c:00.0", numa=1),
        vf("0000:3c:02.1", "0000:3c:00.0", numa=1),
    ]
    second = '"trusted": "yes", ' if trusted_second else ""
    specs = parse_device_specs(
        [
            '{"devname": "ens1f0", "physical_network": "physnet1"}',
            '{"devname": "ens1f1", ' + second + '"physical_network": "physnet1"}',
        ]
    )
    return build_pools(classify(devices, specs))


def test_distinct_pf_ports_land_on_different_pfs() -> None:
    pools = two_pf_pools()
    a = request_for_port("physnet1", "direct", distinct_pf=True)
    b = request_for_port("physnet1", "direct", distinct_pf=True)
    takes = pools.copy().apply([a, b])
    assert sorted(t.pool.parent_addr for t in takes) == ["0000:3b:00.0", "0000:3c:00.0"]
    # without the mark, both come from the broken-in PF (best fit)
    plain = pools.copy().apply([request_for_port("physnet1", "direct") for _ in range(2)])
    assert {t.pool.parent_addr for t in plain} == {"0000:3b:00.0"}


def test_three_distinct_pf_ports_on_two_pfs_do_not_fit_and_say_why() -> None:
    pools = two_pf_pools()
    requests = [request_for_port("physnet1", "direct", distinct_pf=True) for _ in range(3)]
    assert not pools.supports(requests)
    why = pools.explain_failure(requests) or ""
    assert "on a PF no other distinct_pf port of the server uses" in why
    with pytest.raises(PciRequestsUnsatisfiable):
        pools.apply(requests)
    assert sum(p.count for p in pools.pools if p.dev_type is DevType.VF) == 4  # unchanged


def test_the_most_constrained_distinct_request_chooses_first() -> None:
    pools = two_pf_pools(trusted_second=True)
    # the flexible request comes first, but only the second PF is trusted
    flexible = request_for_port("physnet1", "direct", distinct_pf=True)
    narrow = request_for_port("physnet1", "direct", trusted=True, distinct_pf=True)
    takes = {t.request_id: t.pool.parent_addr for t in pools.apply([flexible, narrow])}
    assert takes == {narrow.request_id: "0000:3c:00.0", flexible.request_id: "0000:3b:00.0"}


def test_trusted_ports_take_only_trusted_pools() -> None:
    untrusted = two_pf_pools()
    trusted = request_for_port("physnet1", "direct", trusted=True)
    assert trusted.specs == [
        {"physical_network": "physnet1", "dev_type": "type-VF", "trusted": "true"}
    ]
    assert not untrusted.supports([trusted])
    mixed = two_pf_pools(trusted_second=True)
    (take,) = mixed.apply([trusted])
    assert take.pool.parent_addr == "0000:3c:00.0"


def test_socket_policy_reaches_the_cells_of_the_instances_socket() -> None:
    pools = build_pools(sample_classified())
    spec = {"vendor_id": "10de", "product_id": "1db4"}
    two_gpus = PciRequest(count=2, specs=[spec], numa_policy="socket")  # type: ignore[arg-type]
    # instance on cell 0, whose socket also holds cell 1: both GPUs may serve
    assert pools.supports([two_gpus], [0], socket_cells=[0, 1])
    # without socket information, socket acts as required: cell 0 has one GPU
    assert not pools.supports([two_gpus], [0])
