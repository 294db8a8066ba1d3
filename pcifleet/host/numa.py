"""A host's NUMA cells, read from sysfs (``<root>/devices/system/node``).

Each ``nodeN`` directory gives its CPUs (``cpulist``) and its memory
(``meminfo``: ``Node N MemTotal: ... kB``); a CPU's socket is its
``topology/physical_package_id``. A machine without NUMA (no node
directories) has no cells; the scheduler then derives what it can from the
devices' ``numa_node``. A node that cannot be read is left out with a warning,
never guessed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pcifleet.pci import (
    InvalidNumaTopology,
    NumaCell,
    NumaTopology,
    format_index_list,
    parse_index_list,
)
from pcifleet.pci.numa import MAX_CPU, MAX_NODE

_NODE_DIR = re.compile(r"node([0-9]{1,4})")
_MEM_TOTAL = re.compile(r"Node\s+[0-9]+\s+MemTotal:\s+([0-9]{1,15})\s+kB")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(64 * 1024)
    except OSError:
        return None


def _socket(root: str, cpus: frozenset[int]) -> int | None:
    if not cpus:
        return None
    text = _read(f"{root}/devices/system/cpu/cpu{min(cpus)}/topology/physical_package_id")
    if text is None or not text.strip().isdigit():
        return None
    value = int(text.strip())
    return value if value <= MAX_NODE else None


def read_numa_topology(root: Path = Path("/sys")) -> tuple[NumaTopology, list[str]]:
    """The host's cells and a warning per node that could not be read."""
    base = os.path.join(root, "devices", "system", "node")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return NumaTopology(), []
    cells: list[NumaCell] = []
    warnings: list[str] = []
    for name in names:
        m = _NODE_DIR.fullmatch(name)
        if m is None:
            continue
        node = int(m.group(1))
        if node > MAX_NODE:
            warnings.append(f"{base}/{name}: node id beyond {MAX_NODE}, skipped")
            continue
        cpulist = _read(f"{base}/{name}/cpulist")
        meminfo = _read(f"{base}/{name}/meminfo")
        if cpulist is None or meminfo is None:
            warnings.append(f"{base}/{name}: cpulist or meminfo unreadable, skipped")
            continue
        try:
            cpus = parse_index_list(
                cpulist.strip(), f"{name}/cpulist", MAX_CPU, InvalidNumaTopology
            )
        except InvalidNumaTopology as exc:
            warnings.append(f"{base}/{name}: {exc}, skipped")
            continue
        mem = _MEM_TOTAL.search(meminfo)
        memory_mb = int(mem.group(1)) // 1024 if mem else 0
        if mem is None:
            warnings.append(f"{base}/{name}/meminfo: no MemTotal line; memory taken as 0")
        cells.append(NumaCell(node, cpus, memory_mb, _socket(str(root), cpus)))
    return NumaTopology(tuple(cells)), warnings


def write_numa_topology(topology: NumaTopology, root: Path) -> None:
    """Write ``topology`` as sysfs shows it (for simulated hosts and tests)."""
    for cell in topology.cells:
        node = Path(root, "devices", "system", "node", f"node{cell.id}")
        node.mkdir(parents=True, exist_ok=True)
        (node / "cpulist").write_text(format_index_list(cell.cpus) + "\n")
        (node / "meminfo").write_text(
            f"Node {cell.id} MemTotal:       {cell.memory_mb * 1024} kB\n"
            f"Node {cell.id} MemFree:        {cell.memory_mb * 1024} kB\n"
        )
        if cell.socket is not None:
            for cpu in cell.cpus:
                topo = Path(root, "devices", "system", "cpu", f"cpu{cpu}", "topology")
                topo.mkdir(parents=True, exist_ok=True)
                (topo / "physical_package_id").write_text(f"{cell.socket}\n")
