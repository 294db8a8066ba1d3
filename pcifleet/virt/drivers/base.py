"""The driver seam: what a host agent asks of a hypervisor, in one small ABC.

Shaped like os-vif's plugin base: ``describe()`` says what a driver is and can
do, and every driver keeps the same contract, so the ``xml`` driver (files only)
stands in for ``libvirt`` wherever no hypervisor exists.

Contract shared by all drivers (domains are named by their UUID, the server's):
- ``define`` writes or replaces a domain's persistent config; a *different* UUID
  already using the name raises ``DomainExists``.
- ``start`` on a running domain raises ``DomainStateError``; ``destroy`` (power
  off) on a stopped one does nothing, so delete paths can retry.
- ``undefine`` refuses a running domain (``DomainStateError``).
- ``attach_interface`` / ``detach_interface`` take a device spec (an SR-IOV
  port, or a ``HostdevSpec``): they change the config, and the running guest
  when it runs. A duplicate MAC or PCI function raises ``DeviceExists``; a
  missing device ``DeviceNotFound``.
- An unknown UUID raises ``DomainNotFound``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pcifleet.virt.interface_xml import DeviceSpec
from pcifleet.virt.model import DomainSpec


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What ``describe()`` reports."""

    name: str
    description: str
    location: str
    live_attach: bool


@dataclass(frozen=True, slots=True)
class DomainInfo:
    """One domain as a driver lists it."""

    uuid: str
    name: str
    title: str | None
    running: bool

    @property
    def state(self) -> str:
        return "running" if self.running else "shut off"


class VirtDriver(ABC):
    """Base class of the virt drivers; see the module docstring for the contract."""

    name: ClassVar[str]

    @abstractmethod
    def describe(self) -> DriverInfo: ...

    @abstractmethod
    def define(self, spec: DomainSpec) -> DomainInfo: ...

    @abstractmethod
    def start(self, uuid: str) -> None: ...

    @abstractmethod
    def destroy(self, uuid: str) -> None: ...

    @abstractmethod
    def undefine(self, uuid: str) -> None: ...

    @abstractmethod
    def attach_interface(self, uuid: str, device: DeviceSpec) -> None: ...

    @abstractmethod
    def detach_interface(self, uuid: str, device: DeviceSpec) -> None: ...

    @abstractmethod
    def list(self) -> list[DomainInfo]: ...

    @abstractmethod
    def info(self, uuid: str) -> DomainInfo: ...

    @abstractmethod
    def get_xml(self, uuid: str) -> str: ...

    def close(self) -> None:  # noqa: B027  (optional hook, deliberately not abstract)
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> VirtDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
