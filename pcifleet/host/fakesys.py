"""Build sysfs trees from compact host descriptions, with the kernel's real link shapes.

Two levels:

- ``FakeDevice`` / ``FakeNetdev`` and ``write_fake_sysfs(devices, root)``: one entry per
  PCI function, including the odd cases discovery must survive (a VF whose files
  vanished, an unreadable file, a dangling driver link, switchdev representors).
- ``write_sysfs(layout, root)``: a whole host from a ``HostLayout`` (or anything with
  ``.devices() -> list[PciDevice]``); ``pcifleet up`` uses it for its sample host.

The tree mirrors what Linux writes (see tests/fixtures/sysfs): ``bus/pci/devices/X``
-> ``../../../devices/pci0000:00/<bridge>/X``, ``physfn`` -> ``../<PF>``, ``virtfnN``
-> ``../<VF>``, ``driver`` -> ``../../../../bus/pci/drivers/<name>``, ``iommu_group``
-> ``../../../../kernel/iommu_groups/<n>``, ``net/<if>/`` directories and
``class/net/<if>`` links. Links are relative, so a tree can be moved or copied.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType, PciDevice, check_ifname

# Ethernet controller: what a layout device without a "class" is taken for.
DEFAULT_CLASS = "0x020000"


class Fault(StrEnum):
    """Ways a device can be broken in a generated tree, as on a host that changes."""

    VANISHED = "vanished"  # bus/pci/devices/X dangles: the VF went away after listing
    PARTIAL = "partial"  # the directory lost its files except ``vendor``
    UNREADABLE = "unreadable"  # numa_node cannot be read (a directory stands in its place)
    DANGLING_DRIVER = "dangling-driver"  # driver -> a driver directory that is gone
    GARBAGE = "garbage"  # vendor holds text that is not a hex id


@dataclass
class FakeNetdev:
    """A network interface of a device; ``virtio`` hangs it under ``virtio0/net``."""

    name: str
    mac: str | None = None
    phys_port_name: str | None = None
    phys_switch_id: str | None = None
    virtio: bool = False


@dataclass
class FakeDevice:
    """One PCI function as the kernel would show it.

    ``physfn`` makes it a VF of that PF; ``totalvfs`` (> 0) gives it SR-IOV capability
    (it is a PF even with no VFs); the PF's ``virtfnN`` links and ``sriov_numvfs``
    are derived from the VFs present in the same description.
    """

    address: str
    vendor_id: str
    product_id: str
    class_code: str = DEFAULT_CLASS
    numa_node: int = -1
    driver: str | None = None
    iommu_group: int | None = None
    physfn: str | None = None
    totalvfs: int | None = None
    netdevs: list[FakeNetdev] = field(default_factory=list)
    fault: Fault | None = None


class HasDevices(Protocol):
    """What ``write_sysfs`` needs of a host layout."""

    def devices(self) -> list[PciDevice]: ...


class _Dirs:
    """The directories one tree write has made. A host's tree is a few thousand
    entries; asking the kernel again for each entry's parent doubled the system
    calls, and ``pcifleet up`` writes a tree per simulated host."""

    def __init__(self) -> None:
        self.made: set[Path] = set()

    def parent(self, path: Path) -> Path:
        parent = path.parent
        if parent not in self.made:
            parent.mkdir(parents=True, exist_ok=True)
            self.made.add(parent)
        return parent

    def write(self, path: Path, text: str) -> None:
        self.parent(path)
        with open(path, "w") as f:
            f.write(text + "\n")

    def link(self, link: Path, target: Path) -> None:
        """A relative symlink ``link`` -> ``target``, as the kernel makes them."""
        os.symlink(os.path.relpath(target, self.parent(link)), link)


def _bridge_name(address: PciAddress) -> str:
    """A root port per bus: devices on bus N sit behind 0000:00:<N>.0 (slot/function
    spread so all 256 buses get distinct names)."""
    return str(PciAddress(address.domain, 0, address.bus % 32, (address.bus // 32) % 8))


def _device_dirs(devices: Sequence[FakeDevice], root: Path) -> dict[str, Path]:
    """Where each device's directory lives; VFs sit beside their PF, as in Linux."""
    dirs: dict[str, Path] = {}
    for dev in devices:
        if dev.physfn is not None:
            continue
        addr = PciAddress.parse(dev.address)
        host_bridge = root / "devices" / f"pci{addr.domain:04x}:00"
        parent = host_bridge if addr.bus == 0 else host_bridge / _bridge_name(addr)
        dirs[str(addr)] = parent / str(addr)
    for dev in devices:
        if dev.physfn is None:
            continue
        addr = PciAddress.parse(dev.address)
        pf_dir = dirs.get(str(PciAddress.parse(dev.physfn)))
        if pf_dir is None:
            # The PF is not described: put the VF where a PF on its bus would be.
            host_bridge = root / "devices" / f"pci{addr.domain:04x}:00"
            pf_dir = host_bridge / _bridge_name(addr) / "pf"
        dirs[str(addr)] = pf_dir.parent / str(addr)
    return dirs


def _write_netdev(made: _Dirs, root: Path, dev_dir: Path, netdev: FakeNetdev) -> None:
    check_ifname(netdev.name, "netdev name")  # never let a name escape the tree
    owner = dev_dir / "virtio0" if netdev.virtio else dev_dir
    net_dir = owner / "net" / netdev.name
    net_dir.mkdir(parents=True, exist_ok=True)
    if netdev.mac is not None:
        made.write(net_dir / "address", netdev.mac)
    if netdev.phys_port_name is not None:
        made.write(net_dir / "phys_port_name", netdev.phys_port_name)
    if netdev.phys_switch_id is not None:
        made.write(net_dir / "phys_switch_id", netdev.phys_switch_id)
    # The kernel's shape climbs to the owner's parent: net/IF/device -> ../../../<owner>.
    os.symlink(f"../../../{owner.name}", net_dir / "device")
    made.link(root / "class" / "net" / netdev.name, net_dir)


def write_fake_sysfs(devices: Iterable[FakeDevice], root: Path) -> Path:
    """Write ``devices`` as a sysfs tree under ``root`` (created); returns ``root``.

    Raises FileExistsError when ``root`` already holds a tree: trees are written
    whole, never merged, so a stale device cannot linger.
    """
    devices = list(devices)
    if (root / "bus").exists():
        raise FileExistsError(f"{root} already holds a sysfs tree; write to an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    made = _Dirs()
    dirs = _device_dirs(devices, root)
    vfs_of: dict[str, list[FakeDevice]] = {}
    for dev in devices:
        if dev.physfn is not None:
            vfs_of.setdefault(str(PciAddress.parse(dev.physfn)), []).append(dev)
    # Automatic IOMMU groups (one per device, as with a VT-d IOMMU and ACS) start
    # after any group a description sets itself.
    next_group = 1 + max((d.iommu_group for d in devices if d.iommu_group is not None), default=-1)
    (root / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
    for dev in devices:
        addr = str(PciAddress.parse(dev.address))
        dev_dir = dirs[addr]
        made.link(root / "bus" / "pci" / "devices" / addr, dev_dir)
        if dev.fault is Fault.VANISHED:
            continue  # the listing link stays, the directory is gone
        if dev_dir not in made.made:
            dev_dir.mkdir(parents=True, exist_ok=True)
            made.made.add(dev_dir)
        vendor = "0xzz!" if dev.fault is Fault.GARBAGE else f"0x{dev.vendor_id}"
        made.write(dev_dir / "vendor", vendor)
        if dev.fault is Fault.PARTIAL:
            continue
        made.write(dev_dir / "device", f"0x{dev.product_id}")
        made.write(dev_dir / "class", dev.class_code)
        if dev.fault is Fault.UNREADABLE:
            (dev_dir / "numa_node").mkdir()
        else:
            made.write(dev_dir / "numa_node", str(dev.numa_node))
        group = dev.iommu_group
        if group is None:
            group, next_group = next_group, next_group + 1
        group_dir = root / "kernel" / "iommu_groups" / str(group)
        made.link(group_dir / "devices" / addr, dev_dir)
        made.link(dev_dir / "iommu_group", group_dir)
        if dev.fault is Fault.DANGLING_DRIVER:
            made.link(dev_dir / "driver", root / "bus" / "pci" / "drivers" / "unloaded")
        elif dev.driver is not None:
            check_ifname(dev.driver, "driver")  # same path rules as a netdev name
            drv_dir = root / "bus" / "pci" / "drivers" / dev.driver
            made.link(drv_dir / addr, dev_dir)
            made.link(dev_dir / "driver", drv_dir)
        if dev.physfn is not None:
            # An undescribed PF leaves physfn dangling, as when a PF is hot-removed.
            pf = str(PciAddress.parse(dev.physfn))
            made.link(dev_dir / "physfn", dirs.get(pf, dev_dir.parent / pf))
        vfs = sorted(vfs_of.get(addr, []), key=lambda d: PciAddress.parse(d.address))
        if dev.totalvfs is not None or vfs:
            _write_sriov(made, dev_dir, dev, vfs, dirs)
        for netdev in dev.netdevs:
            _write_netdev(made, root, dev_dir, netdev)
    return root


def _write_sriov(
    made: _Dirs, dev_dir: Path, pf: FakeDevice, vfs: list[FakeDevice], dirs: dict[str, Path]
) -> None:
    total = pf.totalvfs if pf.totalvfs is not None else len(vfs)
    made.write(dev_dir / "sriov_totalvfs", str(total))
    made.write(dev_dir / "sriov_numvfs", str(len(vfs)))
    pf_rid = PciAddress.parse(pf.address).routing_id
    if vfs:
        rids = [PciAddress.parse(v.address).routing_id for v in vfs]
        stride = rids[1] - rids[0] if len(rids) > 1 else 1
        made.write(dev_dir / "sriov_offset", str(rids[0] - pf_rid))
        made.write(dev_dir / "sriov_stride", str(stride))
        made.write(dev_dir / "sriov_vf_device", vfs[0].product_id)  # no 0x, as the kernel
    for i, vf in enumerate(vfs):
        made.link(dev_dir / f"virtfn{i}", dirs[str(PciAddress.parse(vf.address))])


def fake_devices_from(devices: Iterable[PciDevice]) -> list[FakeDevice]:
    """Descriptions of model devices, so a tree read back gives the same devices.

    ``extra`` supplies what PciDevice has no field for: ``class``, ``mac``,
    ``iommu_group``, ``totalvfs``, ``phys_port_name``, ``phys_switch_id``.
    """
    devices = list(devices)
    vf_count: dict[PciAddress, int] = {}
    for dev in devices:
        if dev.parent_addr is not None:
            vf_count[dev.parent_addr] = vf_count.get(dev.parent_addr, 0) + 1
    out: list[FakeDevice] = []
    for dev in devices:
        extra = dev.extra
        totalvfs: int | None = None
        if dev.dev_type is DevType.PF:
            # sriov_totalvfs > 0 is what marks SR-IOV capability, so a PF without
            # VFs still reads back as a PF.
            totalvfs = max(int(extra.get("totalvfs", "0")), vf_count.get(dev.address, 0), 1)
        netdevs = []
        if dev.ifname is not None:
            netdevs.append(
                FakeNetdev(
                    dev.ifname,
                    mac=extra.get("mac"),
                    phys_port_name=extra.get("phys_port_name"),
                    phys_switch_id=extra.get("phys_switch_id"),
                )
            )
        group = extra.get("iommu_group")
        out.append(
            FakeDevice(
                address=str(dev.address),
                vendor_id=dev.vendor_id,
                product_id=dev.product_id,
                class_code=extra.get("class", DEFAULT_CLASS),
                numa_node=-1 if dev.numa_node is None else dev.numa_node,
                driver=dev.driver,
                iommu_group=int(group) if group is not None else None,
                physfn=str(dev.parent_addr) if dev.parent_addr is not None else None,
                totalvfs=totalvfs,
                netdevs=netdevs,
            )
        )
    return out


def write_sysfs(layout: HasDevices, root: Path) -> Path:
    """Write the host described by ``layout`` as a sysfs tree under ``root``.

    ``read_sysfs(root)`` then returns ``layout.devices()`` (with ``extra`` gaining the
    facts sysfs always has: ``class``, ``iommu_group``, ``totalvfs``/``numvfs``).
    ``root`` must not hold a tree already.
    """
    return write_fake_sysfs(fake_devices_from(layout.devices()), root)
