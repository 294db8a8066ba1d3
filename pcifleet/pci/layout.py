"""Compact host descriptions ("layouts"): a few lines that stand for a whole host.

A layout names NICs (a PF and how many VFs it has enabled) and plain devices; the
host layer writes a layout as a sysfs tree, tests and ``pcifleet up`` use that to
simulate hosts. This module only turns a layout into devices: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType, PciDevice, check_ifname, normalize_id
from pcifleet.pci.errors import InvalidPciAddress, InvalidPciDevice

NIC_KEYS = frozenset(
    {
        "address",
        "vendor_id",
        "product_id",
        "vf_product_id",
        "numvfs",
        "totalvfs",
        "vf_offset",
        "vf_stride",
        "numa_node",
        "ifname",
        "driver",
        "vf_driver",
        "mac",
    }
)
DEVICE_KEYS = frozenset(
    {"address", "vendor_id", "product_id", "class", "numa_node", "driver", "ifname"}
)


def _opt_int(d: Mapping[str, Any], key: str, where: str, lo: int = 0) -> int | None:
    value = d.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < lo):
        raise InvalidPciDevice(f"{where}: {key} must be an integer >= {lo}, got {value!r}")
    return value


def _int(d: Mapping[str, Any], key: str, default: int, where: str, lo: int = 0) -> int:
    value = _opt_int(d, key, where, lo)
    return default if value is None else value


def _check_keys(d: Any, allowed: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise InvalidPciDevice(f"{where} must be a table, got {type(d).__name__}")
    unknown = sorted(set(map(str, d)) - allowed)
    if unknown:
        raise InvalidPciDevice(f"{where}: unknown key(s) {', '.join(unknown)}")
    return d


def vf_mac(pf: PciAddress, index: int) -> str:
    """A stable locally administered MAC for VF ``index`` of ``pf``."""
    octets = [
        pf.bus,
        (pf.slot << 3) | pf.function,
        pf.domain & 0xFF,
        (index >> 8) & 0xFF,
        index & 0xFF,
    ]
    return "02:" + ":".join(f"{o:02x}" for o in octets)


@dataclass(frozen=True, slots=True)
class Nic:
    """An SR-IOV NIC port: one PF and its enabled VFs."""

    address: PciAddress
    vendor_id: str
    product_id: str
    vf_product_id: str
    numvfs: int
    totalvfs: int
    vf_offset: int = 16
    vf_stride: int = 1
    numa_node: int | None = None
    ifname: str | None = None
    driver: str | None = None
    vf_driver: str | None = None
    mac: str | None = None

    def vf_address(self, index: int) -> PciAddress:
        """SR-IOV: VF i's routing id is the PF's + First VF Offset + i * VF Stride."""
        rid = self.address.routing_id + self.vf_offset + index * self.vf_stride
        try:
            return PciAddress.from_routing_id(self.address.domain, rid)
        except InvalidPciAddress:
            raise InvalidPciDevice(f"nic {self.address}: VF {index} falls beyond bus ff") from None

    def vf_ifname(self, index: int) -> str | None:
        return None if self.ifname is None else f"{self.ifname}v{index}"

    def devices(self) -> list[PciDevice]:
        extra = {"totalvfs": str(self.totalvfs), "numvfs": str(self.numvfs)}
        if self.mac:
            extra["mac"] = self.mac
        pf = PciDevice(
            address=self.address,
            vendor_id=self.vendor_id,
            product_id=self.product_id,
            dev_type=DevType.PF,
            numa_node=self.numa_node,
            ifname=self.ifname,
            driver=self.driver,
            extra=extra,
        )
        vfs = [
            PciDevice(
                address=self.vf_address(i),
                vendor_id=self.vendor_id,
                product_id=self.vf_product_id,
                dev_type=DevType.VF,
                parent_addr=self.address,
                numa_node=self.numa_node,
                ifname=self.vf_ifname(i) if self.vf_driver else None,
                driver=self.vf_driver,
                extra={"mac": vf_mac(self.address, i)} if self.vf_driver else {},
            )
            for i in range(self.numvfs)
        ]
        return [pf, *vfs]


def _nic(d: Any, n: int) -> Nic:
    where = f"nics[{n}]"
    d = _check_keys(d, NIC_KEYS, where)
    try:
        address = PciAddress.parse(d.get("address"))
    except InvalidPciAddress as exc:
        raise InvalidPciDevice(f"{where}: {exc}") from None
    numvfs = _int(d, "numvfs", 0, where)
    totalvfs = _int(d, "totalvfs", numvfs, where)
    if numvfs > totalvfs:
        raise InvalidPciDevice(f"{where}: numvfs ({numvfs}) is greater than totalvfs ({totalvfs})")
    ifname = d.get("ifname")
    return Nic(
        address=address,
        vendor_id=normalize_id(d.get("vendor_id"), f"{where}: vendor_id"),
        product_id=normalize_id(d.get("product_id"), f"{where}: product_id"),
        vf_product_id=normalize_id(d.get("vf_product_id"), f"{where}: vf_product_id"),
        numvfs=numvfs,
        totalvfs=totalvfs,
        vf_offset=_int(d, "vf_offset", 16, where, lo=1),
        vf_stride=_int(d, "vf_stride", 1, where, lo=1),
        numa_node=_opt_int(d, "numa_node", where),
        ifname=None if ifname is None else check_ifname(ifname, f"{where}: ifname"),
        driver=d.get("driver"),
        vf_driver=d.get("vf_driver"),
        mac=d.get("mac"),
    )


def _device(d: Any, n: int) -> PciDevice:
    where = f"devices[{n}]"
    d = _check_keys(d, DEVICE_KEYS, where)
    extra = {"class": d["class"]} if isinstance(d.get("class"), str) else {}
    try:
        return PciDevice(
            address=d.get("address"),
            vendor_id=d.get("vendor_id"),
            product_id=d.get("product_id"),
            numa_node=_opt_int(d, "numa_node", where),
            driver=d.get("driver"),
            ifname=d.get("ifname"),
            extra=extra,
        )
    except InvalidPciDevice as exc:
        raise InvalidPciDevice(f"{where}: {exc}") from None


def _entries(pci: Mapping[str, Any], key: str) -> tuple[Any, ...]:
    value = pci.get(key, [])
    if not isinstance(value, list):
        raise InvalidPciDevice(f"[pci] {key} must be a list, got {type(value).__name__}")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class HostLayout:
    hostname: str
    nics: tuple[Nic, ...] = ()
    plain: tuple[PciDevice, ...] = ()
    device_spec: tuple[Any, ...] = ()
    alias: tuple[Any, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HostLayout:
        if not isinstance(d, Mapping):
            raise InvalidPciDevice(f"a host layout must be a table, got {type(d).__name__}")
        hostname = d.get("hostname", "host")
        if not isinstance(hostname, str) or not hostname:
            raise InvalidPciDevice(f"hostname must be a non-empty string, got {hostname!r}")
        nics, devices = d.get("nics", []), d.get("devices", [])
        if not isinstance(nics, list) or not isinstance(devices, list):
            raise InvalidPciDevice("nics and devices must be lists of tables")
        pci = d.get("pci", {})
        if not isinstance(pci, Mapping):
            raise InvalidPciDevice("[pci] must be a table")
        layout = cls(
            hostname=hostname,
            nics=tuple(_nic(x, i) for i, x in enumerate(nics)),
            plain=tuple(_device(x, i) for i, x in enumerate(devices)),
            device_spec=_entries(pci, "device_spec"),
            alias=_entries(pci, "alias"),
            raw=d,
        )
        seen: set[PciAddress] = set()
        for dev in layout.devices():
            if dev.address in seen:
                raise InvalidPciDevice(
                    f"host layout {hostname}: address {dev.address} appears twice"
                )
            seen.add(dev.address)
        return layout

    def devices(self) -> list[PciDevice]:
        out: list[PciDevice] = []
        for nic in self.nics:
            out.extend(nic.devices())
        out.extend(self.plain)
        return sorted(out, key=lambda dev: dev.address)
