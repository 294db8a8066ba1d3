"""Read a host's PCI and SR-IOV devices from Linux sysfs.

The walk starts at ``<root>/bus/pci/devices`` (one symlink per PCI function) and reads,
per device, only the files and links that say what the device is and how it relates
to others. ``root`` is a parameter so tests and ``pcifleet up`` can point it at a
generated tree.

A host changes while it is read: a VF disappears when ``sriov_numvfs`` is written,
a driver is unbound, a file is unreadable. The reader lists each device directory
once, treats a file absent from that listing as "not there" (an optional fact), and
treats a listed file that then cannot be read as a device that changed under us:
that device is skipped with a warning. A device is therefore either complete or
absent, never half-filled, and one bad device never stops the walk.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from pcifleet.host.errors import HostDiscoveryError
from pcifleet.host.inventory import Inventory, make_inventory
from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType, PciDevice
from pcifleet.pci.errors import InvalidPciAddress, InvalidPciDevice

#: The name ``read_sysfs`` returns; the same class as every other source's result.
SysfsInventory = Inventory

# phys_port_name of a switchdev representor (a netdev that stands for a VF, a PF or a
# sub-function on the embedded switch, hanging off the PF's PCI device): pf0vf1,
# c1pf0vf3, pf0sf2, pf1. The uplink is p0/p1 and is the PF's own netdev.
_REPRESENTOR_RE = re.compile(r"(?:c\d+)?pf\d+(?:(?:vf|sf)\d+)?")
# Reading these fails with EOPNOTSUPP on drivers without switchdev: normal, not a fault.
_OPTIONAL_NETDEV_ATTRS = ("phys_port_name", "phys_switch_id")


class _Skip(Exception):
    """This device cannot be read completely; the message says why."""


@dataclass
class _Netdev:
    name: str
    mac: str | None = None
    phys_port_name: str | None = None
    phys_switch_id: str | None = None

    @property
    def is_representor(self) -> bool:
        return self.phys_port_name is not None and bool(
            _REPRESENTOR_RE.fullmatch(self.phys_port_name)
        )


@dataclass
class _Listing:
    """One device directory: its path and the names it held when listed."""

    path: str
    names: set[str] = field(default_factory=set)

    def read(self, name: str) -> str | None:
        """The stripped text of ``name``; None if it was not listed; _Skip if it broke."""
        if name not in self.names:
            return None
        return _read_text(f"{self.path}/{name}", name)

    def require(self, name: str) -> str:
        """The text of a file every PCI device has; _Skip when it is missing or broken."""
        value = self.read(name)
        if value is None:
            raise _Skip(f"no {name} file (the device is going away)")
        return value

    def link_name(self, name: str) -> str | None:
        """Last component of a link's target; None if absent; _Skip if it dangles."""
        if name not in self.names:
            return None
        link = f"{self.path}/{name}"
        try:
            target = os.readlink(link)
        except OSError as exc:
            raise _Skip(f"{name}: {_reason(exc)}") from None
        if not os.path.exists(link):
            raise _Skip(f"{name} link dangles (-> {target})")
        return os.path.basename(target.rstrip("/"))


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _read_text(path: str, label: str) -> str:
    # os.open/os.read: no buffered file object per attribute; a host has thousands.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise _Skip(f"{label} vanished while the device was read") from None
    except OSError as exc:
        raise _Skip(f"{label} is unreadable: {_reason(exc)}") from None
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise _Skip(f"{label} is not ASCII text") from None


def _listing(path: str, what: str = "device directory") -> _Listing:
    try:
        return _Listing(path, set(os.listdir(path)))
    except FileNotFoundError:
        raise _Skip(f"{what} vanished (dangling link)") from None
    except NotADirectoryError:
        raise _Skip("not a directory") from None
    except OSError as exc:
        raise _Skip(f"{what} unreadable: {_reason(exc)}") from None


def _int(value: str | None, label: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise _Skip(f"{label} ({value!r}) is not an integer") from None


def _read_netdev(path: str, name: str) -> _Netdev:
    listing = _listing(path, "its directory")
    netdev = _Netdev(name, mac=listing.read("address"))
    for attr in _OPTIONAL_NETDEV_ATTRS:
        # Any failure here means "this driver has no such fact", not a broken device.
        try:
            value = listing.read(attr)
        except _Skip:
            value = None
        setattr(netdev, attr, value or None)
    return netdev


def _netdevs(dev: _Listing) -> list[_Netdev]:
    """Netdevs of the device: under ``net/``, or ``virtioN/net/`` for virtio-net."""
    net_dirs = [os.path.join(dev.path, "net")] if "net" in dev.names else []
    net_dirs += [
        os.path.join(dev.path, n, "net")
        for n in sorted(dev.names)
        if n.startswith("virtio") and os.path.isdir(os.path.join(dev.path, n, "net"))
    ]
    found: list[_Netdev] = []
    for net_dir in net_dirs:
        try:
            names = sorted(os.listdir(net_dir))
        except FileNotFoundError:
            continue  # the driver let go of the netdev between listing and now
        except OSError as exc:
            raise _Skip(f"net/ is unreadable: {_reason(exc)}") from None
        for name in names:
            try:
                found.append(_read_netdev(os.path.join(net_dir, name), name))
            except _Skip as skip:
                raise _Skip(f"netdev {name}: {skip}") from None
    return found


def _own_netdev(netdevs: list[_Netdev]) -> tuple[_Netdev | None, list[_Netdev]]:
    """The device's own netdev, and the switchdev representors that hang off it."""
    own = [n for n in netdevs if not n.is_representor]
    reps = [n for n in netdevs if n.is_representor]
    return (own[0] if own else None), reps


def _vf_indexes(dev: _Listing, virtfns: list[str]) -> dict[str, str]:
    """A PF's VFs by address -> N of its ``virtfnN`` link (the VF's index)."""
    out: dict[str, str] = {}
    for name in virtfns:
        index = name[len("virtfn") :]
        if not index.isdigit():
            continue
        try:
            target = dev.link_name(name)
        except _Skip:
            continue  # a VF going away; the VF's own read reports it
        if target is not None:
            out[target] = index
    return out


def _read_device(
    path: str | Path, address: PciAddress, vf_indexes: dict[str, str] | None = None
) -> PciDevice:
    """Read one device directory; raises _Skip when it cannot be read whole.

    A PF's VF indexes are added to ``vf_indexes`` (VF address -> index)."""
    dev = _listing(str(path))
    vendor = dev.require("vendor")
    product = dev.require("device")
    klass = dev.read("class")
    numa = _int(dev.read("numa_node"), "numa_node")
    driver = dev.link_name("driver")
    iommu_group = dev.link_name("iommu_group")
    physfn = dev.link_name("physfn")
    totalvfs = _int(dev.read("sriov_totalvfs"), "sriov_totalvfs")
    numvfs = _int(dev.read("sriov_numvfs"), "sriov_numvfs")
    virtfns = [n for n in dev.names if n.startswith("virtfn")]
    if vf_indexes is not None and virtfns:
        vf_indexes.update(_vf_indexes(dev, virtfns))
    netdev, representors = _own_netdev(_netdevs(dev))
    # Re-check at the end: a device removed after its files were read must not be
    # reported from stale facts.
    if not os.path.exists(os.path.join(dev.path, "vendor")):
        raise _Skip("device vanished while it was read")

    parent: PciAddress | None = None
    if physfn is not None:
        dev_type = DevType.VF
        try:
            parent = PciAddress.parse(physfn)
        except InvalidPciAddress:
            raise _Skip(f"physfn points to {physfn!r}, not a PCI device") from None
    elif virtfns or (totalvfs or 0) > 0:
        # A PF with SR-IOV capability and no VFs enabled yet is still a PF.
        dev_type = DevType.PF
    else:
        dev_type = DevType.PCI

    facts: dict[str, str | None] = {
        "class": klass,
        "iommu_group": iommu_group,
        "totalvfs": None if totalvfs is None else str(totalvfs),
        "numvfs": None if numvfs is None else str(numvfs),
    }
    if netdev is not None:
        facts.update(
            mac=netdev.mac,
            phys_port_name=netdev.phys_port_name,
            phys_switch_id=netdev.phys_switch_id,
        )
    if representors:
        facts["representors"] = ",".join(n.name for n in representors)
    extra = {k: v for k, v in facts.items() if v}
    try:
        return PciDevice(
            address=address,
            vendor_id=vendor,
            product_id=product,
            dev_type=dev_type,
            parent_addr=parent,
            numa_node=numa,
            ifname=netdev.name if netdev else None,
            driver=driver,
            extra=extra,
        )
    except InvalidPciDevice as exc:
        raise _Skip(str(exc)) from None


def read_sysfs(root: Path = Path("/sys")) -> Inventory:
    """Every PCI device under ``<root>/bus/pci/devices``, with warnings for those skipped.

    Raises HostDiscoveryError only when the device list itself cannot be read.
    """
    devices_dir = os.path.join(root, "bus", "pci", "devices")
    try:
        entries = sorted(os.listdir(devices_dir))
    except OSError as exc:
        raise HostDiscoveryError(
            f"cannot list PCI devices in {devices_dir}: {_reason(exc)}"
        ) from None
    devices: list[PciDevice] = []
    warnings: list[str] = []
    vf_indexes: dict[str, str] = {}
    for name in entries:
        try:
            address = PciAddress.parse(name)
        except InvalidPciAddress:
            warnings.append(f"{devices_dir}/{name}: not a PCI address, skipped")
            continue
        try:
            devices.append(_read_device(os.path.join(devices_dir, name), address, vf_indexes))
        except _Skip as skip:
            warnings.append(f"{address}: skipped: {skip}")
    # A VF's index (the N of its PF's virtfnN link) lets device specs pick VFs
    # by index ("vf_index": "0-7"); the PF's links are read once, not per VF.
    devices = [
        replace(d, extra={**d.extra, "vf_index": vf_indexes[str(d.address)]})
        if d.dev_type is DevType.VF and str(d.address) in vf_indexes
        else d
        for d in devices
    ]
    return make_inventory(devices, warnings, f"sysfs:{root}")
