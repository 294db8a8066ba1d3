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

Power operations (Nova's server actions) and the states they need; each raises
``DomainStateError`` naming the state when it forbids the action:
- ``stop(uuid, timeout)``: ACPI power button, wait up to ``timeout`` seconds for
  the guest to shut off, then power off hard (``timeout`` 0: at once). A shut-off
  domain is left alone; a suspended one is refused (its saved memory would go).
- ``start``: boots a shut-off domain, restores a suspended one.
- ``reboot(uuid, hard)``: soft (running only): ACPI shutdown, start again once
  off, and hard if the guest ignores it within ``timeout``; hard (any state):
  power off, discard any saved image, start.
- ``pause`` / ``unpause``: stop and continue the vCPUs (running <-> paused).
- ``suspend`` / ``resume``: save memory to disk and stop (running or paused ->
  suspended), and restore (suspended -> running).
- ``console_output(uuid, length)``: the last ``length`` lines of the serial
  console log (all when None), from at most the last 1 MiB of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pcifleet.virt.errors import UnsupportedOperation
from pcifleet.virt.interface_xml import DeviceSpec
from pcifleet.virt.model import DomainSpec, DomainType
from pcifleet.virt.power import PowerState

# How long a soft reboot waits for the guest to shut down before going hard
# (Nova's default for a clean shutdown is the same minute).
DEFAULT_SHUTDOWN_TIMEOUT = 60.0


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
    power_state: PowerState
    # True when the domain carries pcifleet's mark (see ``pcifleet.virt.marker``).
    managed: bool = False
    # The agent named in that mark (None: no mark, or one that names nobody).
    owner: str | None = None

    def owned_by(self, owner: str) -> bool:
        """Whether this is a pcifleet domain that ``owner``'s agent may manage: one
        it marked, or one whose mark predates owners."""
        return self.managed and self.owner in (None, owner)

    @property
    def running(self) -> bool:
        """Whether the domain is active (running, or with its vCPUs paused)."""
        return self.power_state.active

    @property
    def state(self) -> str:
        """The state in ``virsh domstate`` words ("running", "shut off"...)."""
        return self.power_state.words


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

    def migratable_xml(self, uuid: str) -> str:
        """The domain's XML as another host's hypervisor may take it: without what
        this one filled in for itself while running (libvirt's MIGRATABLE)."""
        return self.get_xml(uuid)

    # -- power (server actions) -------------------------------------------------

    @abstractmethod
    def power_state(self, uuid: str) -> PowerState: ...

    @abstractmethod
    def stop(self, uuid: str, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None: ...

    @abstractmethod
    def reboot(self, uuid: str, hard: bool, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None: ...

    @abstractmethod
    def pause(self, uuid: str) -> None: ...

    @abstractmethod
    def unpause(self, uuid: str) -> None: ...

    @abstractmethod
    def suspend(self, uuid: str) -> None: ...

    @abstractmethod
    def resume(self, uuid: str) -> None: ...

    @abstractmethod
    def console_output(self, uuid: str, length: int | None = None) -> str: ...

    def domain_type(self) -> DomainType:
        """The domain type a server on this host is defined with: ``kvm``, or
        ``qemu`` (plain emulation) where the hypervisor has no usable KVM.

        The default suits drivers without a hypervisor (``xml``): they stand in
        for a KVM host.
        """
        return "kvm"

    # -- live migration ---------------------------------------------------------

    def define_xml(self, xml: str, name: str, uuid: str) -> DomainInfo:
        """Define prepared domain XML (a live migration's, on its destination)."""
        raise UnsupportedOperation(f"the {self.name} driver cannot define raw domain XML")

    def migrate(
        self,
        uuid: str,
        dest_uri: str,
        dest_xml: str,
        *,
        migrate_uri: str | None = None,
        copy_storage: bool = False,
    ) -> None:
        """Live-migrate the running domain to the hypervisor at ``dest_uri``, where
        it runs (and is defined) as ``dest_xml`` says; undefined here after.
        ``migrate_uri``: where the guest's memory goes (default: the
        destination hypervisor picks, by its host name). ``copy_storage``: the
        disks are not shared, so their contents go too, into the files
        ``dest_xml`` names (which must exist there, on the same backing image).
        Drivers without a peer to migrate to leave it to the agents: the
        destination defines ``dest_xml`` and this host removes the domain."""
        raise UnsupportedOperation(f"the {self.name} driver cannot migrate a domain")

    def can_migrate(self) -> bool:
        """Whether ``migrate`` is a real migration here."""
        return False

    def close(self) -> None:  # noqa: B027  (optional hook, deliberately not abstract)
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> VirtDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
