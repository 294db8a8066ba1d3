"""The check every ``devname`` (a netdev name from an operator or a command line) passes.

Names end up compared with, and on a live host joined into, sysfs paths, so each is
checked first: no ``/``, no ``..``, no NUL, at most 15 bytes (the kernel's IFNAMSIZ
minus the NUL). Which devices a devname stands for (a PF's name brings its VFs) is
``pcifleet.pci.DeviceSpec.match``'s business.
"""

from __future__ import annotations

from pcifleet.pci.device import check_ifname
from pcifleet.pci.errors import InvalidDeviceSpec


def check_devname(name: object) -> str:
    """``name`` if it is a safe netdev name; InvalidDeviceSpec naming ``devname`` if not."""
    return check_ifname(name, "devname", InvalidDeviceSpec)
