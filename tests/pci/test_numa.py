"""NUMA: host cells as reported, and what a flavor, image or port asks."""

import pytest

from pcifleet.pci import (
    InstanceNuma,
    InvalidNumaRequest,
    InvalidNumaTopology,
    NumaPolicy,
    NumaTopology,
    apply_numa_policy,
    instance_numa,
    request_for_port,
)
from pcifleet.pci.request import PciRequest


def two_sockets() -> NumaTopology:
    return NumaTopology.from_json(
        [
            {"id": 0, "cpus": "0-7", "memory_mb": 1024, "socket": 0},
            {"id": 1, "cpus": "8-15", "memory_mb": 1024, "socket": 0},
            {"id": 2, "cpus": "16-23", "memory_mb": 1024, "socket": 1},
        ]
    )


def test_topology_round_trips_and_knows_socket_mates() -> None:
    topology = two_sockets()
    assert NumaTopology.from_json(topology.to_json()) == topology
    assert topology.cell(1) is not None and topology.cell(1).cpus == frozenset(range(8, 16))  # type: ignore[union-attr]
    assert topology.socket_mates([0]) == {0, 1}
    assert topology.socket_mates([2]) == {2}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"cells": []}, "numa_topology must be a list"),
        ([{"id": -1, "cpus": "0"}], "numa_topology[0].id"),
        ([{"id": 0, "cpus": "3-1"}], "numa_topology[0].cpus"),
        ([{"id": 0, "cpus": "0-99999"}], "numa_topology[0].cpus"),
        ([{"id": 0, "memory_mb": "lots"}], "numa_topology[0].memory_mb"),
        ([{"id": 0, "socket": True}], "numa_topology[0].socket"),
        ([{"id": 0, "gpus": 1}], "unknown field(s) gpus"),
        ([{"id": 0}, {"id": 0}], "cell ids repeat"),
        (["node0"], "numa_topology[0] must be an object"),
    ],
)
def test_hostile_topologies_are_refused_naming_the_field(data: object, field: str) -> None:
    with pytest.raises(InvalidNumaTopology) as err:
        NumaTopology.from_json(data)
    assert field in str(err.value)


def test_flavor_and_image_give_the_policy_and_nodes() -> None:
    numa = instance_numa(
        {"hw:numa_nodes": "2", "hw:pci_numa_affinity_policy": "Required"},
        vcpus=4,
        memory_mb=2048,
    )
    assert numa == InstanceNuma(nodes=2, cpu_policy="shared", pci_policy=NumaPolicy.REQUIRED)
    image = instance_numa({}, {"hw_pci_numa_affinity_policy": "socket"})
    assert image.pci_policy is NumaPolicy.SOCKET and image.nodes is None
    # dedicated CPUs live in one cell unless the flavor says otherwise, as in Nova
    assert instance_numa({"hw:cpu_policy": "dedicated"}).nodes == 1


@pytest.mark.parametrize(
    ("specs", "image", "message"),
    [
        ({"hw:numa_nodes": "0"}, {}, "hw:numa_nodes ('0') must be an integer from 1 to 8"),
        ({"hw:numa_nodes": "two"}, {}, "hw:numa_nodes ('two')"),
        ({"hw:numa_nodes": "99999999999"}, {}, "hw:numa_nodes"),
        ({"hw:numa_nodes": "3"}, {}, "the flavor's vcpus (4) must split evenly over 3"),
        ({"hw:cpu_policy": "isolated"}, {}, "hw:cpu_policy ('isolated')"),
        ({"hw:pci_numa_affinity_policy": "strict"}, {}, "hw:pci_numa_affinity_policy ('strict')"),
        ({}, {"hw_pci_numa_affinity_policy": "any"}, "hw_pci_numa_affinity_policy ('any')"),
        (
            {"hw:pci_numa_affinity_policy": "required"},
            {"hw_pci_numa_affinity_policy": "preferred"},
            "disagree",
        ),
    ],
)
def test_bad_numa_wishes_are_refused_naming_the_field(
    specs: dict[str, str], image: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidNumaRequest) as err:
        instance_numa(specs, image, vcpus=4, memory_mb=4096)
    assert message in str(err.value)


def test_a_ports_policy_beats_the_flavors_which_beats_the_alias() -> None:
    port = request_for_port("physnet1", "direct")
    other_port = request_for_port("physnet2", "direct")
    alias = PciRequest(count=1, specs=[{"vendor_id": "10de"}], numa_policy=NumaPolicy.PREFERRED)
    numa = InstanceNuma(nodes=1, pci_policy=NumaPolicy.REQUIRED)
    apply_numa_policy([port, other_port, alias], numa, {port.request_id: NumaPolicy.LEGACY})
    assert port.numa_policy is NumaPolicy.LEGACY
    assert other_port.numa_policy is NumaPolicy.REQUIRED
    assert alias.numa_policy is NumaPolicy.REQUIRED
    untouched = PciRequest(count=1, specs=[{"vendor_id": "10de"}], numa_policy="preferred")
    apply_numa_policy([untouched], InstanceNuma())
    assert untouched.numa_policy is NumaPolicy.PREFERRED
