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
