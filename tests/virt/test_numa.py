"""Guest NUMA in the domain: cells, memory binding, pinning; and the build
task fields that carry them (hostile values refused naming the field)."""

from __future__ import annotations

import pytest
from lxml import etree

from pcifleet.virt import GuestNumaCell, InvalidVirtSpec, domain_xml, server_domain_spec
from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.tasks import TaskInstance

UUID = "6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10"


def spec(cells: list[GuestNumaCell], vcpus: int = 4, memory_mb: int = 4096) -> str:
    return domain_xml(
        server_domain_spec(UUID, "n", vcpus, memory_mb, "/var/lib/x.qcow2", numa_cells=cells)
    )


def test_the_guest_is_placed_and_pinned_on_its_cell() -> None:
    root = etree.fromstring(spec([GuestNumaCell(1, (0, 1, 2, 3), 4096, frozenset({8, 9, 10}))]))
    assert root.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "1"}  # type: ignore[union-attr]
    assert [m.get("nodeset") for m in root.iterfind("numatune/memnode")] == ["1"]
    cell = root.find("cpu/numa/cell")
    assert cell is not None and cell.get("cpus") == "0-3" and cell.get("memory") == "4096"
    pins = [(p.get("vcpu"), p.get("cpuset")) for p in root.iterfind("cputune/vcpupin")]
    assert pins == [("0", "8-10"), ("1", "8-10"), ("2", "8-10"), ("3", "8-10")]


def test_shared_cpus_are_not_pinned() -> None:
    root = etree.fromstring(spec([GuestNumaCell(0, (0, 1), 2048), GuestNumaCell(1, (2, 3), 2048)]))
    assert root.find("cputune") is None
    assert root.find("numatune/memory").get("nodeset") == "0-1"  # type: ignore[union-attr]


def test_no_cells_no_numa_elements() -> None:
    root = etree.fromstring(spec([]))
    assert root.find("numatune") is None and root.find("cpu") is None


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ([GuestNumaCell(0, (0, 1), 4096)], "numa_cells"),  # vCPUs 2-3 left out
        ([GuestNumaCell(0, (0, 1, 2, 3), 1024)], "numa_cells"),  # memory does not add up
        (
            [GuestNumaCell(0, (0, 1, 2), 2048), GuestNumaCell(1, (2, 3), 2048)],
            "numa_cells",
        ),  # vCPU 2 twice
    ],
)
def test_cells_that_do_not_cover_the_guest_are_refused(
    cells: list[GuestNumaCell], field: str
) -> None:
    with pytest.raises(InvalidVirtSpec) as err:
        spec(cells)
    assert err.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"host_node": -1}, "host_node"),
        ({"host_node": 5000}, "host_node"),
        ({"host_node": True}, "host_node"),
        ({"vcpus": ()}, "vcpus"),
        ({"vcpus": (-1,)}, "vcpus"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"pin": frozenset()}, "pin"),
        ({"pin": frozenset({99999})}, "pin"),
    ],
)
def test_hostile_cells_are_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"host_node": 0, "vcpus": (0,), "memory_mb": 512, "pin": None}
    with pytest.raises(InvalidVirtSpec) as err:
        GuestNumaCell(**{**base, **kwargs})  # type: ignore[arg-type]
    assert err.value.field == field


def test_the_task_carries_cells_and_pins_and_splits_the_guest() -> None:
    data = {"uuid": UUID, "numa_cells": [0, 1], "cell_cpus": ["0-3", "4-7"]}
    instance = TaskInstance.from_dict(data)
    assert instance.to_dict()["cell_cpus"] == ["0-3", "4-7"]
    cells = instance.guest_numa_cells(4, 4096)
    assert [(c.host_node, c.vcpus, c.memory_mb, c.pin) for c in cells] == [
        (0, (0, 1), 2048, frozenset(range(4))),
        (1, (2, 3), 2048, frozenset(range(4, 8))),
    ]
    # a build without pinning keeps the shape it always had
    assert "cell_cpus" not in TaskInstance.from_dict({"uuid": UUID}).to_dict()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"numa_cells": [0], "cell_cpus": ["9-1"]}, "instance.cell_cpus[0]"),
        ({"numa_cells": [0], "cell_cpus": ["0-99999"]}, "instance.cell_cpus[0]"),
        ({"numa_cells": [0], "cell_cpus": [""]}, "instance.cell_cpus[0]"),
        ({"numa_cells": [0], "cell_cpus": [["0"]]}, "instance.cell_cpus[0]"),
        ({"numa_cells": [0], "cell_cpus": ["0", "1"]}, "instance.cell_cpus"),
        ({"cell_cpus": ["0"]}, "instance.cell_cpus"),
        ({"numa_cells": [0], "cell_cpus": "0-3"}, "instance.cell_cpus"),
    ],
)
def test_hostile_cell_cpus_are_refused_naming_the_field(
    data: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidTask) as err:
        TaskInstance.from_dict({"uuid": UUID, **data})
    assert err.value.field == field
