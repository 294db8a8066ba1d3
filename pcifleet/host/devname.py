"""Resolve a device spec's ``devname`` (a netdev name) to the PCI devices it stands for.

A devname naming a PF stands for the PF and its VFs; naming anything else, for that
device alone. Names come from operators' config files and end up in filesystem paths
(``/sys/class/net/<name>``), so every name is checked first: no ``/``, no ``..``, no
NUL, at most 15 bytes (the kernel's IFNAMSIZ minus the NUL).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType, PciDevice, check_ifname
from pcifleet.pci.errors import InvalidDeviceSpec, InvalidPciAddress


def check_devname(name: object) -> str:
    """``name`` if it is a safe netdev name; InvalidDeviceSpec naming ``devname`` if not."""
    return check_ifname(name, "devname", InvalidDeviceSpec)


def resolve_devname(name: str, devices: Sequence[PciDevice]) -> list[PciDevice]:
    """The device whose netdev is ``name`` and, for a PF, its VFs; [] when none has it."""
    check_devname(name)
    owner = next((d for d in devices if d.ifname == name), None)
    if owner is None:
        return []
    if owner.dev_type is not DevType.PF:
        return [owner]
    return [owner, *(d for d in devices if d.parent_addr == owner.address)]


def netdev_pci_address(name: str, root: Path = Path("/sys")) -> PciAddress | None:
    """The PCI address behind netdev ``name`` on a live host, from ``class/net/<name>/device``.

    None when there is no such netdev or it is not on PCI (a bridge, a veth). A
    virtio-net netdev's ``device`` is ``virtioN``, whose parent is the PCI device.
    """
    check_devname(name)
    link = os.path.join(root, "class", "net", name, "device")
    try:
        device_dir = os.path.realpath(link, strict=True)
    except OSError:
        return None
    for candidate in (device_dir, os.path.dirname(device_dir)):
        try:
            return PciAddress.parse(os.path.basename(candidate))
        except InvalidPciAddress:
            continue
    return None
