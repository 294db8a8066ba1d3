"""A host's NUMA cells from sysfs, and VF indexes from the PF's virtfnN links:
on this machine's real /sys, on a real kernel's capture, and on trees with the
broken contents a host can have."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcifleet.host.numa import read_numa_topology, write_numa_topology
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import DevType, NumaCell, NumaTopology, PciAddress


@pytest.mark.skipif(not os.path.isdir("/sys/devices/system/node"), reason="no NUMA sysfs here")
def test_this_machines_cells_are_read() -> None:
    topology, warnings = read_numa_topology(Path("/sys"))
    assert warnings == []
    assert topology.cells, "a Linux host with node directories has at least one cell"
    cpus = set().union(*(c.cpus for c in topology.cells))
    assert len(cpus) == os.cpu_count()
    assert all(c.memory_mb > 0 for c in topology.cells)


def test_a_written_topology_reads_back(tmp_path: Path) -> None:
    topology = NumaTopology(
        (
            NumaCell(0, frozenset(range(0, 4)), 2048, socket=0),
            NumaCell(1, frozenset({4, 5, 6, 7, 12}), 4096, socket=1),
        )
    )
    write_numa_topology(topology, tmp_path)
    assert read_numa_topology(tmp_path) == (topology, [])


def test_no_node_directories_is_no_cells(tmp_path: Path) -> None:
    assert read_numa_topology(tmp_path) == (NumaTopology(), [])


def test_broken_nodes_are_left_out_with_a_warning(tmp_path: Path) -> None:
    base = tmp_path / "devices" / "system" / "node"
    for name, cpulist, meminfo in (
        ("node0", "0-3\n", "Node 0 MemTotal:  1048576 kB\n"),
        ("node1", "9-2\n", "Node 1 MemTotal:  1048576 kB\n"),  # reversed
        ("node2", "0-99999999\n", "Node 2 MemTotal: 1 kB\n"),  # absurd
        ("node3", "4-5\n", "garbage\n"),  # no MemTotal: kept, memory 0
    ):
        (base / name).mkdir(parents=True)
        (base / name / "cpulist").write_text(cpulist)
        (base / name / "meminfo").write_text(meminfo)
    (base / "node4").mkdir()  # no files at all
    (base / "possible").write_text("0-4\n")  # not a node directory
    topology, warnings = read_numa_topology(tmp_path)
    assert [c.id for c in topology.cells] == [0, 3]
    assert topology.cell(3) == NumaCell(3, frozenset({4, 5}), 0)
    assert len(warnings) == 4
    assert any("node1" in w and "reversed" in w for w in warnings)
    assert any("node4" in w and "unreadable" in w for w in warnings)


def test_real_kernel_vfs_carry_their_index(k61: Path) -> None:
    devices = read_sysfs(k61).devices
    vfs = {
        str(d.address): d.extra.get("vf_index")
        for d in devices
        if d.dev_type is DevType.VF and d.parent_addr == PciAddress.parse("0000:01:00.0")
    }
    # igb: VF n of 01:00.0 sits at 01:10.(2n)
    assert vfs == {
        "0000:01:10.0": "0",
        "0000:01:10.2": "1",
        "0000:01:10.4": "2",
        "0000:01:10.6": "3",
    }
    assert all("vf_index" not in d.extra for d in devices if d.dev_type is not DevType.VF)
