"""How fast host discovery reads a big SR-IOV host.

Generates a host of PFS PFs with VFS VFs each (default 32 x 64 = 2,048 VFs, the size
of a well-populated NFV node), then times reading it from sysfs and from node-device
XML, and classifying it with device specs. Prints a table; the target is well under
one second for the sysfs read.

    .venv/bin/python benchmarks/discover.py            # 32 x 64
    .venv/bin/python benchmarks/discover.py --smoke    # 2 x 8, a few seconds
    .venv/bin/python benchmarks/discover.py --dir /tmp # where the tree goes

The tree goes to /dev/shm when it exists: sysfs lives in memory, and a disk-backed
temporary directory would time the disk's metadata path instead of the reader.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pcifleet.host.fakenodedev import write_nodedev_dir
from pcifleet.host.fakesys import FakeDevice, fake_devices_from, write_fake_sysfs
from pcifleet.host.nodedev import read_nodedev_dir
from pcifleet.host.report import classify_inventory
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import Nic, PciAddress, parse_device_specs


def big_host(pfs: int, vfs: int) -> list[FakeDevice]:
    """``pfs`` X710-like PFs on their own buses, ``vfs`` VFs each, half on each NUMA node."""
    nics = [
        Nic(
            address=PciAddress(0, 0x10 + p * 2, 0, 0),
            vendor_id="8086",
            product_id="1572",
            vf_product_id="154c",
            numvfs=vfs,
            totalvfs=vfs,
            numa_node=p % 2,
            ifname=f"ens{p}f0",
            driver="i40e",
            vf_driver="iavf",
            mac=f"3c:fd:fe:00:{p:02x}:00",
        )
        for p in range(pfs)
    ]
    return fake_devices_from(dev for nic in nics for dev in nic.devices())


def best_of(runs: int, fn: Callable[[], int]) -> tuple[float, float, int]:
    """(best seconds, median seconds, what fn returned) over ``runs`` calls."""
    times, result = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small host, for CI")
    parser.add_argument("--pfs", type=int, default=32)
    parser.add_argument("--vfs", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the trees")
    args = parser.parse_args(argv)
    if args.smoke:
        args.pfs, args.vfs, args.runs = 2, 8, 2
    base = args.dir or (Path("/dev/shm") if os.path.isdir("/dev/shm") else None)
    console = Console()
    devices = big_host(args.pfs, args.vfs)
    specs = parse_device_specs(
        [
            '{"devname": "ens0f0", "physical_network": "physnet0"}',
            '{"vendor_id": "8086", "product_id": "154c", "physical_network": "physnet1"}',
        ]
    )
    with tempfile.TemporaryDirectory(prefix="pcifleet-bench-", dir=base) as tmp:
        start = time.perf_counter()
        root = write_fake_sysfs(devices, Path(tmp) / "sys")
        xml_dir = write_nodedev_dir(devices, Path(tmp) / "xml")
        generated = time.perf_counter() - start
        inv = read_sysfs(root)
        assert len(inv.devices) == len(devices) and not inv.warnings, inv.warnings[:3]
        rows = [
            ("read_sysfs", best_of(args.runs, lambda: len(read_sysfs(root).devices))),
            (
                "read_nodedev_dir",
                best_of(args.runs, lambda: len(read_nodedev_dir(xml_dir).devices)),
            ),
            (
                "classify + pools",
                best_of(args.runs, lambda: len(classify_inventory(inv, specs).pools.pools)),
            ),
        ]
    table = Table(
        title=f"Host discovery: {len(devices)} devices ({args.pfs} PFs x {args.vfs} VFs)",
        caption=f"{args.runs} runs; tree in {base or tempfile.gettempdir()}, "
        f"made in {generated:.1f} s",
        title_justify="left",
        caption_justify="left",
    )
    for name in ("step", "devices", "best s", "median s", "devices/s"):
        table.add_column(name, justify="left" if name == "step" else "right")
    for name, (best, median, _n) in rows:
        table.add_row(
            name, str(len(devices)), f"{best:.3f}", f"{median:.3f}", f"{len(devices) / best:,.0f}"
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
