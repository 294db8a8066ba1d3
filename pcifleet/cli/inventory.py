"""``pcifleet inventory``: the host's PCI devices and what the device specs make of them.

Reads one source (sysfs by default, libvirt node devices, or a simulated host
layout), classifies the devices by the operator's device specs, and prints every
device with the pool it lands in, then the pools. ``--explain`` answers, spec by
spec, why one device is or is not matched. Errors are one line on stderr: exit 2
for a mistake in what was asked (options, config, an unknown device), 1 when the
host cannot be read.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from pcifleet.host.config import HostConfig, config_from_document, load_host_config
from pcifleet.host.errors import HostConfigError, HostDiscoveryError
from pcifleet.host.fakesys import write_sysfs
from pcifleet.host.inventory import Inventory
from pcifleet.host.layout_file import load_layout
from pcifleet.host.nodedev import read_nodedev_dir, read_nodedev_libvirt
from pcifleet.host.report import InventoryReport, classify_inventory
from pcifleet.host.snapshot import is_snapshot, materialize_snapshot
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import HostLayout, InvalidDeviceSpec, PciDevice

PROG = "pcifleet inventory"
SAMPLE = "sample"


class _Fail(Exception):
    """A one-line error for stderr, with the exit code it deserves."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"{PROG}: error: {message}", err=True)
    sys.exit(code)


def _warn(message: str) -> None:
    click.echo(f"{PROG}: warning: {message}", err=True)


def _load_layout(value: str) -> HostLayout:
    try:
        return load_layout(None if value == SAMPLE else Path(value))
    except HostConfigError as exc:
        raise _Fail(str(exc), 2) from None


@contextmanager
def _sysfs_root(root: Path) -> Iterator[Path]:
    """``root`` itself, or a real tree unpacked from it when it is a stored capture."""
    if not is_snapshot(root):
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="pcifleet-sysfs-") as tmp:
        yield materialize_snapshot(root, Path(tmp) / "sys")


def _read_inventory(
    sysfs_root: Path | None,
    libvirt_uri: str | None,
    nodedev_xml: Path | None,
    layout: HostLayout | None,
) -> Inventory:
    try:
        if libvirt_uri is not None:
            return read_nodedev_libvirt(libvirt_uri)
        if nodedev_xml is not None:
            return read_nodedev_dir(nodedev_xml)
        if layout is not None:
            with tempfile.TemporaryDirectory(prefix="pcifleet-layout-") as tmp:
                inv = read_sysfs(write_sysfs(layout, Path(tmp) / "sys"))
            return Inventory(inv.devices, inv.warnings, f"layout:{layout.hostname}")
        root = sysfs_root or Path("/sys")
        with _sysfs_root(root) as real_root:
            inv = read_sysfs(real_root)
        return Inventory(inv.devices, inv.warnings, f"sysfs:{root}")
    except HostDiscoveryError as exc:
        raise _Fail(str(exc), 1) from None


def _config(path: Path | None, layout: HostLayout | None) -> HostConfig:
    try:
        if path is not None:
            return load_host_config(path)
        if layout is not None:
            return config_from_document(dict(layout.raw), "host layout")
    except HostConfigError as exc:
        raise _Fail(str(exc), 2) from None
    return HostConfig()


def _tags_text(tags: dict[str, str | None] | None) -> str:
    if not tags:
        return ""
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()))


def _devices_table(report: InventoryReport) -> Table:
    table = Table(title=f"PCI devices ({report.inventory.source})", title_justify="left")
    for name in ("Address", "Vendor:Product", "Type", "PF", "Netdev", "NUMA", "Driver"):
        table.add_column(name, no_wrap=True)
    table.add_column("Pool / tags")
    for c in report.classified:
        d = c.device
        if c.spec_index is None:
            pool = "[dim]not matched[/dim]"
        else:
            pool = f"spec {c.spec_index + 1}: {_tags_text(c.tags) or '(no tags)'}"
        table.add_row(
            str(d.address),
            d.vendor_product,
            d.dev_type.value,
            str(d.parent_addr or ""),
            d.ifname or "",
            "" if d.numa_node is None else str(d.numa_node),
            d.driver or "",
            pool,
        )
    return table


def _pools_table(report: InventoryReport) -> Table:
    table = Table(title="Pools", title_justify="left")
    for name in ("Pool", "Vendor:Product", "Type", "NUMA", "Tags"):
        table.add_column(name, no_wrap=name != "Tags")
    table.add_column("Free", justify="right")
    table.add_column("Total", justify="right")
    for pool in report.pools.pools:
        table.add_row(
            pool.pool_id,
            f"{pool.vendor_id}:{pool.product_id}",
            pool.dev_type.value,
            "" if pool.numa_node is None else str(pool.numa_node),
            _tags_text(pool.tags),
            str(pool.count),
            str(pool.total),
        )
    return table


def _describe(device: PciDevice, report: InventoryReport) -> str:
    parts = [str(device.address), device.vendor_product, device.dev_type.value]
    if device.ifname:
        parts.append(f"netdev {device.ifname}")
    parent = report.inventory.parent_of(device)
    if device.parent_addr is not None:
        pf_name = f" ({parent.ifname})" if parent is not None and parent.ifname else ""
        parts.append(f"PF {device.parent_addr}{pf_name}")
    parts.append("NUMA " + ("unknown" if device.numa_node is None else str(device.numa_node)))
    return ", ".join(parts)


def _explain(report: InventoryReport, key: str, as_json: bool, console: Console) -> None:
    try:
        device = report.inventory.find(key)
    except InvalidDeviceSpec as exc:
        raise _Fail(f"--explain {key!r}: {exc}", 2) from None
    if device is None:
        raise _Fail(
            f"--explain: no device with address or netdev {key!r} "
            f"among the {len(report.inventory.devices)} devices of {report.inventory.source}",
            2,
        )
    verdicts = report.explain(device)
    chosen = next((v for v in verdicts if v.chosen), None)
    if as_json:
        body: dict[str, object] = {
            "device": device.to_dict(),
            "matched": chosen is not None,
            "spec_index": None if chosen is None else chosen.index + 1,
            "specs": [v.to_dict() for v in verdicts],
        }
        click.echo(json.dumps(body, indent=2))
        return
    out = [_describe(device, report)]
    if not verdicts:
        out.append("  no device_spec is configured: nothing is handed out (use --config)")
    for v in verdicts:
        if v.reason is None:
            tail = "matches" + (" (first match: this spec classifies it)" if v.chosen else "")
        else:
            tail = f"no: {v.reason}"
        out.append(f"  spec {v.index + 1} {v.spec.source}: {tail}")
    if chosen is None:
        out.append("result: not matched; this device is not handed out")
    else:
        out.append(
            f"result: matched by spec {chosen.index + 1}; tags: "
            f"{_tags_text(chosen.spec.tags) or '(none)'}"
        )
    console.print("\n".join(out), markup=False, highlight=False, soft_wrap=True)


@click.command("inventory")
@click.option(
    "--sysfs-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Read this sysfs tree instead of /sys (a stored capture with NAME.link files works too).",
)
@click.option(
    "--libvirt-uri", metavar="URI", help="Read libvirt node devices, e.g. qemu:///system."
)
@click.option(
    "--nodedev-xml",
    type=click.Path(path_type=Path, file_okay=False),
    help="Read a directory of `virsh nodedev-dumpxml` files.",
)
@click.option(
    "--layout",
    metavar="TOML|sample",
    help="Simulate the host a layout file describes ('sample': the packaged sample host).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="PCIFLEET_CONFIG",
    help="pcifleet.toml or nova.conf with the [pci] device_spec and alias entries.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option(
    "--explain",
    metavar="ADDRESS_OR_NETDEV",
    help="Tell spec by spec why this device is or is not matched.",
)
def inventory(
    sysfs_root: Path | None,
    libvirt_uri: str | None,
    nodedev_xml: Path | None,
    layout: str | None,
    config_path: Path | None,
    as_json: bool,
    explain: str | None,
) -> None:
    """List this host's PCI devices, the pools the device specs put them in, and why."""
    chosen = [
        n
        for n, v in (
            ("--sysfs-root", sysfs_root),
            ("--libvirt-uri", libvirt_uri),
            ("--nodedev-xml", nodedev_xml),
            ("--layout", layout),
        )
        if v is not None
    ]
    if len(chosen) > 1:
        _die(f"{' and '.join(chosen)} cannot be used together: pick one source", 2)
    try:
        host_layout = _load_layout(layout) if layout is not None else None
        config = _config(config_path, host_layout)
        inv = _read_inventory(sysfs_root, libvirt_uri, nodedev_xml, host_layout)
        report = classify_inventory(inv, config.device_spec)
        for warning in inv.warnings:
            _warn(warning)
        console = Console(soft_wrap=False) if sys.stdout.isatty() else Console(width=200)
        if explain is not None:
            _explain(report, explain, as_json, console)
            return
        for i in report.unmatched_specs:
            _warn(f"device_spec {i + 1} {report.specs[i].source} matched no device")
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=2))
            return
        console.print(_devices_table(report))
        console.print(_pools_table(report))
        matched = sum(1 for c in report.classified if c.matched)
        summary = (
            f"{len(report.classified)} devices, {matched} matched, {len(report.pools.pools)} pools"
        )
        if not report.specs:
            summary += " (no device_spec configured: pass --config pcifleet.toml or nova.conf)"
        console.print(summary, highlight=False)
    except _Fail as fail:
        _die(str(fail), fail.code)
