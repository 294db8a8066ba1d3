"""Virt drivers and the factory that picks one by name.

Built in: ``xml`` (files in a state directory; the embedded default) and
``libvirt`` (libvirt-python). Other packages can add drivers through the entry
point group ``pcifleet.virt_drivers`` (name -> ``VirtDriver`` subclass).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from pcifleet.virt.drivers.base import DomainInfo, DriverInfo, VirtDriver
from pcifleet.virt.drivers.libvirt_driver import LibvirtDriver
from pcifleet.virt.drivers.xml_driver import XmlDriver
from pcifleet.virt.errors import DriverUnavailable

ENTRY_POINT_GROUP = "pcifleet.virt_drivers"
BUILTIN: dict[str, type[VirtDriver]] = {"xml": XmlDriver, "libvirt": LibvirtDriver}


def driver_class(name: str) -> type[VirtDriver]:
    """The driver class called ``name`` (built in first, then entry points)."""
    if name in BUILTIN:
        return BUILTIN[name]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, VirtDriver)):
                raise DriverUnavailable(f"entry point {ep.value} is not a VirtDriver")
            return cls
    known = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
    raise DriverUnavailable(f"unknown virt driver {name!r}; known: {', '.join(known)}")


def get_driver(name: str, **opts: Any) -> VirtDriver:
    """A driver instance: ``get_driver("xml", state_dir=...)``,
    ``get_driver("libvirt", uri="qemu:///system")``."""
    cls = driver_class(name)
    try:
        return cls(**opts)
    except TypeError as exc:
        raise DriverUnavailable(f"virt driver {name!r}, options {sorted(opts)}: {exc}") from None


__all__ = [
    "BUILTIN",
    "DomainInfo",
    "DriverInfo",
    "LibvirtDriver",
    "VirtDriver",
    "XmlDriver",
    "driver_class",
    "get_driver",
]
