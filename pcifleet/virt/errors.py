"""Exceptions of the virt layer.

``InvalidVirtSpec`` is raised while building a spec, before any XML exists, and
names the field; ``InvalidTask`` is raised while reading a task payload the
controller sent an agent, and names the payload field; the driver errors say
what the hypervisor side refused.
"""

from __future__ import annotations


class InvalidVirtSpec(ValueError):
    """A domain, device, interface or network description with a bad field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidTask(ValueError):
    """A task payload with a bad or missing field, e.g. ``ports[1].binding:profile.pci_slot``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class VirtDriverError(Exception):
    """A driver could not do what was asked; the message says why."""


class DriverUnavailable(VirtDriverError):
    """Unknown driver name, or its library (libvirt-python) is missing."""


class UnsupportedOperation(VirtDriverError):
    """The hypervisor connection cannot do this (e.g. live attach on test:///)."""


class DomainNotFound(VirtDriverError):
    """No domain with that UUID is defined."""


class DomainExists(VirtDriverError):
    """Another domain already uses that name."""


class DomainStateError(VirtDriverError):
    """The domain is in the wrong state (already running, still running...)."""


class DeviceNotFound(VirtDriverError):
    """The device to detach is not in the domain."""


class DeviceExists(VirtDriverError):
    """The device to attach is already in the domain (same MAC or PCI source)."""
