"""Typed descriptions of what a domain gets, checked at construction.

Each spec says which libvirt element it becomes (as os-vif's VIF objects do), so
the XML builders are plain translations and an invalid spec can never exist.

- ``HostdevSpec`` -> ``<hostdev mode='subsystem' type='pci' managed='yes'>``
  with ``<driver name='vfio'/>``: a flavor alias device (a GPU, an accelerator).
- ``SriovInterfaceSpec`` -> by ``vnic_type``:
  ``direct``: ``<interface type='hostdev' managed='yes'>`` (the VF itself);
  ``macvtap``: ``<interface type='direct'>`` on the VF's netdev, mode passthrough;
  ``direct-physical``: the PF as a ``<hostdev>``; ``trusted`` ->
  ``trustGuestRxFilters='yes'`` on the interface.
- ``BridgeInterfaceSpec`` -> ``<interface type='bridge'>`` with ``<source
  bridge=.../>`` and ``<model type='virtio'/>``: a normal port plugged into the
  host's Linux bridge for its network (the agent makes the bridge first).
  ``vif_type`` ``hw_veb`` may carry a VLAN (``<vlan><tag id=N/>``), ``802.1qbh``
  carries a port profile (``<virtualport type='802.1Qbh'>``) instead.
- ``NetworkSpec`` -> ``<network>`` with ``<forward mode='hostdev' managed='yes'>``
  pooling the VFs of one PF.
- ``GuestNumaCell`` -> the guest's NUMA cell on a host node (``<cpu><numa>``,
  ``<numatune>``, and ``<cputune><vcpupin>`` when its vCPUs are pinned).
- ``DomainSpec`` -> a whole ``<domain>``; ``console_log`` -> ``<log file=...
  append='on'/>`` under the pty serial; ``managed`` -> the pcifleet marker
  ``<metadata><pcifleet:instance uuid=... project_id=... flavor_name=...
  host=.../></metadata>`` (``project_id``/``flavor_name``/``owner`` written
  when given);
  ``image_path``/``image_format`` -> the ``vda`` virtio disk (for a server, its
  qcow2 overlay); ``machine`` -> ``<type machine=...>``; ``domain_type`` ->
  ``<domain type=...>`` (``kvm``, or ``qemu`` where the host has no usable KVM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pcifleet.pci.address import PciAddress
from pcifleet.pci.request import SRIOV_VNIC_TYPES
from pcifleet.virt import validate as v
from pcifleet.virt.errors import InvalidVirtSpec

VnicType = Literal["direct", "macvtap", "direct-physical"]
VifType = Literal["hw_veb", "802.1qbh", "hostdev_physical"]
# The SR-IOV vnic_types the PCI model knows; VnicType spells them for mypy.
VNIC_TYPES: tuple[str, ...] = tuple(SRIOV_VNIC_TYPES)
# hostdev_physical is what Neutron reports for direct-physical ports.
VIF_TYPES: tuple[str, ...] = ("hw_veb", "802.1qbh", "hostdev_physical")
DomainType = Literal["kvm", "qemu"]


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses: normalised values are stored once, at construction.
    object.__setattr__(obj, name, value)


@dataclass(frozen=True, slots=True)
class HostdevSpec:
    """A whole PCI device passed to the guest (flavor alias; or a PF)."""

    address: PciAddress

    def __post_init__(self) -> None:
        _set(self, "address", v.check_address(self.address, "address"))


@dataclass(frozen=True, slots=True)
class SriovInterfaceSpec:
    """A bound SR-IOV Neutron port: which VF (or PF), its MAC and its network.

    ``address`` is the VF (or, for direct-physical, the PF) the port is bound to —
    the port's ``binding:profile.pci_slot``. ``vf_ifname`` is the VF's netdev,
    needed only for ``macvtap``. ``vlan`` comes from the port's network
    (``vif_details.vlan``); a PF handed over whole cannot be held to a VLAN by the
    host, so for ``direct-physical`` it is kept here but not written.
    """

    vnic_type: VnicType
    mac: str
    address: PciAddress | None = None
    vif_type: VifType = "hw_veb"
    vf_ifname: str | None = None
    vlan: int | None = None
    profileid: str | None = None
    # A trusted VF (the port's binding:profile asked for one): the guest may
    # change its MAC and filters -> trustGuestRxFilters='yes' on the interface.
    trusted: bool = False

    def __post_init__(self) -> None:
        vnic = v.check_choice(self.vnic_type, "vnic_type", VNIC_TYPES)
        if not isinstance(self.trusted, bool):
            raise InvalidVirtSpec("trusted", f"must be true or false, got {self.trusted!r}")
        if self.trusted and vnic == "direct-physical":
            raise InvalidVirtSpec("trusted", "applies to VFs (direct, macvtap), not a whole PF")
        vif = v.check_choice(self.vif_type, "vif_type", VIF_TYPES)
        _set(self, "mac", v.check_mac(self.mac, "mac"))
        if self.address is not None:
            _set(self, "address", v.check_address(self.address, "address"))
        elif vnic != "macvtap":
            raise InvalidVirtSpec("address", f"vnic_type {vnic} needs the device's PCI address")
        if self.vf_ifname is not None:
            _set(self, "vf_ifname", v.check_ifname(self.vf_ifname, "vf_ifname"))
        elif vnic == "macvtap":
            raise InvalidVirtSpec("vf_ifname", "vnic_type macvtap needs the VF's netdev name")
        if self.vlan is not None:
            v.check_vlan(self.vlan, "vlan")
        if vif == "802.1qbh":
            if vnic == "direct-physical":
                raise InvalidVirtSpec("vif_type", "802.1qbh applies to direct and macvtap ports")
            if self.profileid is None:
                raise InvalidVirtSpec("profileid", "vif_type 802.1qbh needs a port profile id")
            if self.vlan is not None:
                raise InvalidVirtSpec("vlan", "vif_type 802.1qbh sets VLANs by port profile")
        elif self.profileid is not None:
            raise InvalidVirtSpec("profileid", f"only vif_type 802.1qbh takes one, not {vif}")
        if vif == "hostdev_physical" and vnic != "direct-physical":
            raise InvalidVirtSpec("vif_type", "hostdev_physical is for direct-physical ports")
        if self.profileid is not None:
            v.check_profileid(self.profileid, "profileid")


@dataclass(frozen=True, slots=True)
class BridgeInterfaceSpec:
    """A normal port: a virtio NIC on the Linux bridge ``bridge`` of its network.

    ``target_dev`` names the host's tap device (libvirt picks ``vnetN`` without
    it); Neutron's linuxbridge agent calls it ``tap`` + the port id's first 11
    characters, which lets an operator find a port's tap by its id.
    """

    mac: str
    bridge: str
    target_dev: str | None = None
    model: Literal["virtio"] = "virtio"

    def __post_init__(self) -> None:
        _set(self, "mac", v.check_mac(self.mac, "mac"))
        v.check_ifname(self.bridge, "bridge")
        if self.target_dev is not None:
            v.check_ifname(self.target_dev, "target_dev")
        v.check_choice(self.model, "model", ("virtio",))


InterfaceSpec = SriovInterfaceSpec | BridgeInterfaceSpec

# Host NUMA node ids and CPU ids, as the kernel bounds them.
NUMA_NODE_MAX = 1023
HOST_CPU_MAX = 8191


@dataclass(frozen=True, slots=True)
class GuestNumaCell:
    """One guest NUMA cell placed on one host node.

    -> ``<cpu><numa><cell id=i cpus=... memory=...>``, ``<numatune><memnode
    cellid=i mode='strict' nodeset=host_node>``, and with ``pin`` (dedicated
    CPUs) a ``<cputune><vcpupin vcpu=N cpuset=pin>`` per vCPU of the cell.
    """

    host_node: int
    vcpus: tuple[int, ...]
    memory_mb: int
    pin: frozenset[int] | None = None

    def __post_init__(self) -> None:
        node = self.host_node
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node <= NUMA_NODE_MAX:
            raise InvalidVirtSpec("host_node", f"{node!r} is not a NUMA node 0..{NUMA_NODE_MAX}")
        _set(self, "vcpus", tuple(self.vcpus))
        if not self.vcpus or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < v.VCPUS_MAX
            for c in self.vcpus
        ):
            raise InvalidVirtSpec("vcpus", f"{self.vcpus!r} must be vCPU ids")
        v.check_positive(self.memory_mb, "memory_mb", v.MEMORY_MB_MAX)
        if self.pin is not None:
            _set(self, "pin", frozenset(self.pin))
            if not self.pin or not all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= HOST_CPU_MAX
                for c in self.pin
            ):
                raise InvalidVirtSpec("pin", f"{sorted(self.pin)!r} must be host CPU ids")


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """A libvirt network that hands out the VFs of PF ``pf_dev``."""

    name: str
    pf_dev: str
    vlan: int | None = None

    def __post_init__(self) -> None:
        v.check_name(self.name, "name")
        v.check_ifname(self.pf_dev, "pf_dev")
        if self.vlan is not None:
            v.check_vlan(self.vlan, "vlan")


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """A server as a KVM domain.

    ``name`` is the libvirt domain name and must be unique on the host: use
    ``domain_name_for(server_uuid)``; the user's server name goes in ``title``.
    ``interfaces`` are the server's ports in the server's port order, SR-IOV and
    bridge mixed; the XML keeps that order.
    """

    name: str
    uuid: str
    memory_mb: int
    vcpus: int
    image_path: str
    image_format: Literal["raw", "qcow2"] = "qcow2"
    hostdevs: tuple[HostdevSpec, ...] = ()
    interfaces: tuple[InterfaceSpec, ...] = ()
    title: str | None = None
    domain_type: DomainType = "kvm"
    arch: str = "x86_64"
    machine: str | None = None
    # Where the hypervisor writes the serial console (read back by console_output).
    console_log: str | None = None
    # Marks the domain as pcifleet's own in its metadata, so an orphan sweep may
    # remove it; domains an operator made by hand never carry the mark.
    managed: bool = False
    # Written into the pcifleet mark, so an operator reading a host's domains
    # sees whose server it is and what size it was asked to be.
    project_id: str | None = None
    flavor_name: str | None = None
    # The agent whose domain this is (its host name, or a simulated host's own
    # name on a libvirtd that several share): its sweeps touch only its own.
    owner: str | None = None
    # Empty PCIe root ports on a q35 machine: libvirt gives each device it knows
    # at define time a port of its own and no more, so a running guest has no
    # slot to hot plug an interface into unless some are left free (Nova's
    # ``num_pcie_ports``).
    hotplug_ports: int = 0
    # The guest's NUMA cells on the host's nodes (empty: no NUMA placement).
    numa_cells: tuple[GuestNumaCell, ...] = ()

    def __post_init__(self) -> None:
        v.check_name(self.name, "name")
        if not isinstance(self.hotplug_ports, int) or not 0 <= self.hotplug_ports <= 28:
            raise InvalidVirtSpec("hotplug_ports", f"{self.hotplug_ports!r} is outside 0..28")
        _set(self, "uuid", v.check_uuid(self.uuid, "uuid"))
        v.check_positive(self.memory_mb, "memory_mb", v.MEMORY_MB_MAX)
        v.check_positive(self.vcpus, "vcpus", v.VCPUS_MAX)
        v.check_image_path(self.image_path, "image_path")
        v.check_choice(self.image_format, "image_format", v.IMAGE_FORMATS)
        v.check_choice(self.domain_type, "domain_type", ("kvm", "qemu"))
        v.check_choice(self.arch, "arch", ("x86_64", "aarch64", "ppc64le", "s390x"))
        if self.machine is not None:
            v.check_machine(self.machine, "machine")
        if self.title is not None:
            v.check_title(self.title, "title")
        if self.console_log is not None:
            v.check_image_path(self.console_log, "console_log")
        if self.project_id is not None:
            v.check_title(self.project_id, "project_id")
        if self.flavor_name is not None:
            v.check_title(self.flavor_name, "flavor_name")
        if self.owner is not None:
            v.check_title(self.owner, "owner")
        if not isinstance(self.managed, bool):
            raise InvalidVirtSpec("managed", f"must be true or false, got {self.managed!r}")
        _set(self, "hostdevs", _typed_tuple(self.hostdevs, HostdevSpec, "hostdevs"))
        _set(self, "interfaces", _typed_tuple(self.interfaces, InterfaceSpec, "interfaces"))
        _set(self, "numa_cells", _typed_tuple(self.numa_cells, GuestNumaCell, "numa_cells"))
        _check_numa(self)
        _check_unique(self)


def _typed_tuple(items: object, kind: Any, field_name: str) -> tuple[object, ...]:
    names = " or ".join(k.__name__ for k in getattr(kind, "__args__", (kind,)))
    if isinstance(items, str | bytes) or not hasattr(items, "__iter__"):
        raise InvalidVirtSpec(field_name, f"must be a list of {names}")
    out = tuple(items)
    for i, item in enumerate(out):
        if not isinstance(item, kind):
            raise InvalidVirtSpec(f"{field_name}[{i}]", f"must be a {names}")
    return out


def _check_numa(spec: DomainSpec) -> None:
    # libvirt refuses cells that leave a vCPU out, name one twice, or whose
    # memory does not add up to the domain's; say so with the field.
    if not spec.numa_cells:
        return
    vcpus = [c for cell in spec.numa_cells for c in cell.vcpus]
    if sorted(vcpus) != list(range(spec.vcpus)):
        raise InvalidVirtSpec(
            "numa_cells", f"the cells' vCPUs must be 0..{spec.vcpus - 1} once each"
        )
    if sum(cell.memory_mb for cell in spec.numa_cells) != spec.memory_mb:
        raise InvalidVirtSpec(
            "numa_cells", f"the cells' memory must add up to {spec.memory_mb} MiB"
        )


def _check_unique(spec: DomainSpec) -> None:
    # The same PCI function twice, or two ports with one MAC, would be refused by
    # the hypervisor only at start time; say it here, with the field.
    seen: dict[PciAddress, str] = {}
    for i, h in enumerate(spec.hostdevs):
        if h.address in seen:
            raise InvalidVirtSpec(f"hostdevs[{i}].address", f"{h.address} is already used")
        seen[h.address] = f"hostdevs[{i}]"
    macs: set[str] = set()
    for i, port in enumerate(spec.interfaces):
        if isinstance(port, SriovInterfaceSpec) and port.address is not None:
            if port.address in seen:
                raise InvalidVirtSpec(
                    f"interfaces[{i}].address",
                    f"{port.address} is already used by {seen[port.address]}",
                )
            seen[port.address] = f"interfaces[{i}]"
        if port.mac in macs:
            raise InvalidVirtSpec(f"interfaces[{i}].mac", f"{port.mac} is already used")
        macs.add(port.mac)


def domain_name_for(server_uuid: str) -> str:
    """The libvirt domain name pcifleet uses for a server: unique and path-safe."""
    return "pcifleet-" + v.check_uuid(server_uuid, "server_uuid")
