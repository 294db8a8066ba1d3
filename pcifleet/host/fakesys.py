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


@dataclass(frozen=True, slots=True)
class _Entry:
    """One directory, file (its text) or symlink (its target) of a planned tree."""

    kind: str  # "dir", "file" or "link"
    text: str = ""


class _Plan:
    """Every entry of one tree, by path relative to its root ("a/b"), parents first.

    Planning before writing lets the hosts of ``pcifleet up`` share what their
    trees have in common (see ``FakeSysfs.write``) and asks for each directory
    once. Paths are plain strings: ``pathlib`` made planning cost more than
    writing.
    """

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}

    def dir(self, path: str) -> str:
        if path and path not in self.entries:
            self.dir(path.rpartition("/")[0])
            self.entries[path] = _DIR
        return path

    def write(self, path: str, text: str) -> None:
        self.dir(path.rpartition("/")[0])
        self.entries[path] = _Entry("file", text + "\n")

    def link(self, link: str, target: str) -> None:
        """A relative symlink ``link`` -> ``target``, as the kernel makes them."""
        self.symlink(link, _relative(target, link.rpartition("/")[0]))

    def symlink(self, link: str, target: str) -> None:
        self.dir(link.rpartition("/")[0])
        self.entries[link] = _Entry("link", target)


_DIR = _Entry("dir")


def _relative(target: str, start: str) -> str:
    """``target`` as seen from directory ``start`` (both relative to one root)."""
    to, at = target.split("/"), start.split("/") if start else []
    common = 0
    while common < min(len(to), len(at)) and to[common] == at[common]:
        common += 1
    return "/".join([".."] * (len(at) - common) + to[common:]) or "."


class FakeSysfs:
    """A sysfs tree planned from device descriptions, ready to be written.

    ``FakeSysfs(devices).write(root)`` is ``write_fake_sysfs(devices, root)``.
    ``write(root, like=(other, its_root))`` makes the same tree, but every file
    and symlink equal to ``other``'s at the same path is a hard link to it:
    ``pcifleet up`` writes the first simulated host of a layout whole and the
    others, which differ in their MACs only, in a third of the new inodes
    (a new inode is most of what a tree costs the kernel). A symlink cannot be
    edited in place; a shared file can, so replace a host's file (``rm``, then
    write) to change that host alone.
    """

    def __init__(self, devices: Iterable[FakeDevice]) -> None:
        plan = _Plan()
        _plan_tree(plan, list(devices))
        self.entries = plan.entries

    def write(self, root: Path, like: tuple[FakeSysfs, Path] | None = None) -> Path:
        """Write the tree under ``root`` (created); returns ``root``.

        Raises FileExistsError when ``root`` already holds a tree: trees are
        written whole, never merged, so a stale device cannot linger.
        """
        if (root / "bus").exists():
            raise FileExistsError(f"{root} already holds a sysfs tree; write to an empty directory")
        root.mkdir(parents=True, exist_ok=True)
        shared = like[0].entries if like is not None else {}
        source = str(like[1]) if like is not None else ""
        for rel, entry in self.entries.items():
            path = f"{root}/{rel}"
            if entry.kind != "dir" and shared.get(rel) == entry:
                try:
                    os.link(f"{source}/{rel}", path, follow_symlinks=False)
                    continue
                except OSError:
                    shared = {}  # no hard links here (or the other tree changed): write
            if entry.kind == "dir":
                os.mkdir(path)
            elif entry.kind == "link":
                os.symlink(entry.text, path)
            else:
                with open(path, "w") as f:
                    f.write(entry.text)
        return root


def _bridge_name(address: PciAddress) -> str:
    """A root port per bus: devices on bus N sit behind 0000:00:<N>.0 (slot/function
    spread so all 256 buses get distinct names)."""
    return str(PciAddress(address.domain, 0, address.bus % 32, (address.bus // 32) % 8))


def _device_dirs(devices: Sequence[FakeDevice]) -> dict[str, str]:
    """Where each device's directory lives; VFs sit beside their PF, as in Linux."""
    dirs: dict[str, str] = {}
    for dev in devices:
        if dev.physfn is not None:
            continue
        addr = PciAddress.parse(dev.address)
        host_bridge = f"devices/pci{addr.domain:04x}:00"
        parent = host_bridge if addr.bus == 0 else f"{host_bridge}/{_bridge_name(addr)}"
        dirs[str(addr)] = f"{parent}/{addr}"
    for dev in devices:
        if dev.physfn is None:
            continue
        addr = PciAddress.parse(dev.address)
        pf_dir = dirs.get(str(PciAddress.parse(dev.physfn)))
        if pf_dir is None:
            # The PF is not described: put the VF where a PF on its bus would be.
            pf_dir = f"devices/pci{addr.domain:04x}:00/{_bridge_name(addr)}/pf"
        dirs[str(addr)] = f"{pf_dir.rpartition('/')[0]}/{addr}"
    return dirs


def _write_netdev(made: _Plan, dev_dir: str, netdev: FakeNetdev) -> None:
    check_ifname(netdev.name, "netdev name")  # never let a name escape the tree
    owner = f"{dev_dir}/virtio0" if netdev.virtio else dev_dir
    net_dir = made.dir(f"{owner}/net/{netdev.name}")
    if netdev.mac is not None:
        made.write(f"{net_dir}/address", netdev.mac)
    if netdev.phys_port_name is not None:
        made.write(f"{net_dir}/phys_port_name", netdev.phys_port_name)
    if netdev.phys_switch_id is not None:
        made.write(f"{net_dir}/phys_switch_id", netdev.phys_switch_id)
    # The kernel's shape climbs to the owner's parent: net/IF/device -> ../../../<owner>.
    made.symlink(f"{net_dir}/device", f"../../../{owner.rpartition('/')[2]}")
    made.link(f"class/net/{netdev.name}", net_dir)


def write_fake_sysfs(devices: Iterable[FakeDevice], root: Path) -> Path:
    """Write ``devices`` as a sysfs tree under ``root`` (created); returns ``root``.

    Raises FileExistsError when ``root`` already holds a tree: trees are written
    whole, never merged, so a stale device cannot linger.
    """
    return FakeSysfs(devices).write(root)


def _plan_tree(made: _Plan, devices: list[FakeDevice]) -> None:
    dirs = _device_dirs(devices)
    vfs_of: dict[str, list[FakeDevice]] = {}
    for dev in devices:
        if dev.physfn is not None:
            vfs_of.setdefault(str(PciAddress.parse(dev.physfn)), []).append(dev)
    # Automatic IOMMU groups (one per device, as with a VT-d IOMMU and ACS) start
    # after any group a description sets itself.
    next_group = 1 + max((d.iommu_group for d in devices if d.iommu_group is not None), default=-1)
    made.dir("bus/pci/devices")
    for dev in devices:
        addr = str(PciAddress.parse(dev.address))
        dev_dir = dirs[addr]
        made.link(f"bus/pci/devices/{addr}", dev_dir)
        if dev.fault is Fault.VANISHED:
            continue  # the listing link stays, the directory is gone
        made.dir(dev_dir)
        vendor = "0xzz!" if dev.fault is Fault.GARBAGE else f"0x{dev.vendor_id}"
        made.write(f"{dev_dir}/vendor", vendor)
        if dev.fault is Fault.PARTIAL:
            continue
        made.write(f"{dev_dir}/device", f"0x{dev.product_id}")
        made.write(f"{dev_dir}/class", dev.class_code)
        if dev.fault is Fault.UNREADABLE:
            made.dir(f"{dev_dir}/numa_node")
        else:
            made.write(f"{dev_dir}/numa_node", str(dev.numa_node))
        group = dev.iommu_group
        if group is None:
            group, next_group = next_group, next_group + 1
        group_dir = f"kernel/iommu_groups/{group}"
        made.link(f"{group_dir}/devices/{addr}", dev_dir)
        made.link(f"{dev_dir}/iommu_group", group_dir)
        if dev.fault is Fault.DANGLING_DRIVER:
            made.link(f"{dev_dir}/driver", "bus/pci/drivers/unloaded")
        elif dev.driver is not None:
            check_ifname(dev.driver, "driver")  # same path rules as a netdev name
            drv_dir = f"bus/pci/drivers/{dev.driver}"
            made.link(f"{drv_dir}/{addr}", dev_dir)
            made.link(f"{dev_dir}/driver", drv_dir)
        if dev.physfn is not None:
            # An undescribed PF leaves physfn dangling, as when a PF is hot-removed.
            pf = str(PciAddress.parse(dev.physfn))
            made.link(f"{dev_dir}/physfn", dirs.get(pf, f"{dev_dir.rpartition('/')[0]}/{pf}"))
        vfs = sorted(vfs_of.get(addr, []), key=lambda d: PciAddress.parse(d.address))
        if dev.totalvfs is not None or vfs:
            _write_sriov(made, dev_dir, dev, vfs, dirs)
        for netdev in dev.netdevs:
            _write_netdev(made, dev_dir, netdev)


def _write_sriov(
    made: _Plan, dev_dir: str, pf: FakeDevice, vfs: list[FakeDevice], dirs: dict[str, str]
) -> None:
    total = pf.totalvfs if pf.totalvfs is not None else len(vfs)
    made.write(f"{dev_dir}/sriov_totalvfs", str(total))
    made.write(f"{dev_dir}/sriov_numvfs", str(len(vfs)))
    pf_rid = PciAddress.parse(pf.address).routing_id
    if vfs:
        rids = [PciAddress.parse(v.address).routing_id for v in vfs]
        stride = rids[1] - rids[0] if len(rids) > 1 else 1
        made.write(f"{dev_dir}/sriov_offset", str(rids[0] - pf_rid))
        made.write(f"{dev_dir}/sriov_stride", str(stride))
        made.write(f"{dev_dir}/sriov_vf_device", vfs[0].product_id)  # no 0x, as the kernel
    for i, vf in enumerate(vfs):
        made.link(f"{dev_dir}/virtfn{i}", dirs[str(PciAddress.parse(vf.address))])


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
