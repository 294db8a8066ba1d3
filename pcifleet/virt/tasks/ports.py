"""A server's port as the build task carries it: bound, with its resolved VF.

Wire shape (Neutron's names, so a port reads the same here as in the API)::

    {"id", "mac_address", "vnic_type", "network_id", "pci_request_id",
     "binding:profile": {"pci_vendor_info", "pci_slot", "physical_network", ...},
     "binding:vif_type": "hw_veb" | "802.1qbh" | "hostdev_physical" | "bridge" | ...,
     "binding:vif_details": {"vlan": "100", "port_filter": false, "profileid": ...}}

For an SR-IOV port (``direct``, ``macvtap``, ``direct-physical``) the profile
and details are read into typed fields: ``pci_slot`` is the VF (or PF) the
controller claimed for it and is required; ``vlan`` is a string of digits on
the wire (as Neutron's ML2 SR-IOV driver writes it), "0" for a flat network.
For any other port the network backend owns the binding, so both stay the
JSON they were — except a normal port bound with ``binding:vif_type`` ``bridge``
(Neutron's linuxbridge way), whose ``binding:vif_details`` say which bridge to
plug it into and what the bridge's uplink is (``BridgeBinding``)::

    {"port_filter": false, "bridge_name": "brq" + network_id[:11],
     "network_type": "local" | "flat" | "vlan", "physical_network": "physnet1" | null,
     "segmentation_id": 100 | null}

A payload from an older controller has no ``bridge_name``: the port reads
with ``bridge`` None. Keys not named here are kept as they came (``extra``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from pcifleet.pci.address import PciAddress
from pcifleet.pci.request import profile_trusted
from pcifleet.virt import validate as v
from pcifleet.virt.errors import InvalidTask, InvalidVirtSpec
from pcifleet.virt.model import (
    VIF_TYPES,
    VNIC_TYPES,
    BridgeInterfaceSpec,
    SriovInterfaceSpec,
    VifType,
    VnicType,
)
from pcifleet.virt.tasks import fields as f

PortVnicType = Literal["normal", "direct", "macvtap", "direct-physical"]
PORT_VNIC_TYPES: tuple[str, ...] = get_args(PortVnicType)
_PROFILE_KEYS = ("pci_vendor_info", "pci_slot", "physical_network")
_DETAILS_KEYS = ("vlan", "port_filter", "profileid")
_BRIDGE_KEYS = ("bridge_name", "network_type", "physical_network", "segmentation_id")
# Neutron's provider network types pcifleet makes (local: no physical network).
BRIDGE_NETWORK_TYPES = ("local", "flat", "vlan")
# Neutron's linuxbridge agent names a network's bridge "brq" + the network id's
# first 11 characters (15 in all, the kernel's IFNAMSIZ - 1).
BRIDGE_PREFIX = "brq"
BRIDGE_ID_CHARS = 11


@dataclass(frozen=True, slots=True)
class BindingProfile:
    """``binding:profile``: which device an SR-IOV port is bound to."""

    pci_vendor_info: str | None = None
    pci_slot: PciAddress | None = None
    physical_network: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        if self.pci_vendor_info is not None:
            out["pci_vendor_info"] = self.pci_vendor_info
        if self.pci_slot is not None:
            out["pci_slot"] = str(self.pci_slot)
            # bind_sriov_port always writes the key, null for a network without one
            out["physical_network"] = self.physical_network
        elif self.physical_network is not None:
            out["physical_network"] = self.physical_network
        return out

    @classmethod
    def from_dict(cls, data: Any, field: str, typed: bool = True) -> BindingProfile:
        raw = f.json_object(data, field)
        if not typed:
            return cls(extra=raw)
        extra = {k: val for k, val in raw.items() if k not in _PROFILE_KEYS}
        return cls(
            pci_vendor_info=_vendor_info(
                raw.get("pci_vendor_info"), f.at(field, "pci_vendor_info")
            ),
            pci_slot=f.address(f.required(raw, "pci_slot", field), f.at(field, "pci_slot")),
            physical_network=f.optional_text(
                raw.get("physical_network"), f.at(field, "physical_network")
            ),
            extra=extra,
        )


def _vendor_info(value: Any, field: str) -> str | None:
    if value is None:
        return None
    parts = f.text(value, field, 16).split(":")
    if len(parts) != 2:
        raise InvalidTask(field, f"{f.show(value)} is not vendor:product like 8086:154c")
    return f"{f.hex_id(parts[0], field)}:{f.hex_id(parts[1], field)}"


@dataclass(frozen=True, slots=True)
class VifDetails:
    """``binding:vif_details``: the VLAN (0: untagged) or the 802.1Qbh port profile."""

    vlan: int | None = None
    port_filter: bool | None = None
    profileid: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.extra)
        if self.port_filter is not None:
            out["port_filter"] = self.port_filter
        if self.vlan is not None:
            out["vlan"] = str(self.vlan)
        if self.profileid is not None:
            out["profileid"] = self.profileid
        return out

    @classmethod
    def from_dict(cls, data: Any, field: str, typed: bool = True) -> VifDetails:
        raw = f.json_object(data, field)
        if not typed:
            return cls(extra=raw)
        port_filter = raw.get("port_filter")
        return cls(
            vlan=_vlan(raw.get("vlan"), f.at(field, "vlan")),
            port_filter=None
            if port_filter is None
            else f.boolean(port_filter, f.at(field, "port_filter")),
            profileid=f.optional_text(raw.get("profileid"), f.at(field, "profileid")),
            extra={k: val for k, val in raw.items() if k not in _DETAILS_KEYS},
        )


def _vlan(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) > 4 or not value.isascii() or not value.isdigit():
            raise InvalidTask(field, f"{f.show(value)} is not a VLAN id")
        value = int(value)
    return f.integer(value, field, 0, v.VLAN_MAX)


def bridge_name_for(network_id: str) -> str:
    """The Linux bridge of a network, as Neutron's linuxbridge agent names it."""
    return BRIDGE_PREFIX + network_id[:BRIDGE_ID_CHARS]


@dataclass(frozen=True, slots=True)
class BridgeBinding:
    """Where a normal port is plugged: the network's bridge and the bridge's uplink.

    ``network_type`` ``vlan`` puts a VLAN subinterface of ``physical_network``'s
    host interface on the bridge, ``flat`` the interface itself; a ``local``
    network (no ``physical_network``) has a bridge with no uplink.
    """

    bridge_name: str
    network_type: str = "local"
    physical_network: str | None = None
    segmentation_id: int | None = None

    def __post_init__(self) -> None:
        v.check_ifname(self.bridge_name, "bridge_name")
        v.check_choice(self.network_type, "network_type", BRIDGE_NETWORK_TYPES)
        if self.network_type == "vlan":
            v.check_vlan(self.segmentation_id, "segmentation_id")
            if self.physical_network is None:
                raise InvalidVirtSpec("physical_network", "a vlan network needs one")
        elif self.segmentation_id is not None:
            raise InvalidVirtSpec("segmentation_id", f"a {self.network_type} network has none")

    def to_dict(self) -> dict[str, Any]:
        return {
            "bridge_name": self.bridge_name,
            "network_type": self.network_type,
            "physical_network": self.physical_network,
            "segmentation_id": self.segmentation_id,
        }

    @classmethod
    def split(
        cls, details: Mapping[str, Any], field: str
    ) -> tuple[BridgeBinding | None, dict[str, Any]]:
        """A bridge port's ``vif_details`` as the binding and the other keys;
        None when they name no bridge (a payload from an older controller)."""
        if "bridge_name" not in details:
            return None, dict(details)
        rest = {k: val for k, val in details.items() if k not in _BRIDGE_KEYS}
        return cls.from_dict(details, field), rest

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], field: str) -> BridgeBinding:
        seg = raw.get("segmentation_id")
        try:
            return cls(
                bridge_name=f.text(raw.get("bridge_name"), f.at(field, "bridge_name"), 15),
                network_type=f.choice(
                    raw.get("network_type", "local"),
                    f.at(field, "network_type"),
                    BRIDGE_NETWORK_TYPES,
                ),
                physical_network=f.optional_text(
                    raw.get("physical_network"), f.at(field, "physical_network"), 64
                ),
                segmentation_id=None
                if seg is None
                else f.integer(seg, f.at(field, "segmentation_id"), 1, v.VLAN_MAX),
            )
        except InvalidVirtSpec as exc:
            raise InvalidTask(f.at(field, exc.field), exc.reason) from None


@dataclass(frozen=True, slots=True)
class TaskPort:
    """One port of the server; ``vf_address`` is the device it is bound to."""

    id: str
    vnic_type: PortVnicType
    mac_address: str | None = None
    network_id: str | None = None
    pci_request_id: str | None = None
    profile: BindingProfile = field(default_factory=BindingProfile)
    vif_type: str | None = None
    vif_details: VifDetails = field(default_factory=VifDetails)
    # A normal port bound to a bridge (kept in binding:vif_details on the wire).
    bridge: BridgeBinding | None = None

    @property
    def sriov(self) -> bool:
        """Passed through to the guest (a VF or PF), not plugged by a network backend."""
        return self.vnic_type != "normal"

    @property
    def vf_address(self) -> PciAddress | None:
        return self.profile.pci_slot

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mac_address": self.mac_address,
            "vnic_type": self.vnic_type,
            "network_id": self.network_id,
            "pci_request_id": self.pci_request_id,
            "binding:profile": self.profile.to_dict(),
            "binding:vif_type": self.vif_type,
            "binding:vif_details": self._details_dict(),
        }

    def _details_dict(self) -> dict[str, Any]:
        out = self.vif_details.to_dict()
        if self.bridge is not None:
            out.update(self.bridge.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: Any, field: str = "port") -> TaskPort:
        data = f.mapping(data, field)
        vnic = f.choice(data.get("vnic_type"), f.at(field, "vnic_type"), PORT_VNIC_TYPES)
        sriov = vnic != "normal"
        mac = data.get("mac_address")
        if sriov and mac is None:
            raise InvalidTask(f.at(field, "mac_address"), "is required for an SR-IOV port")
        vif_type = f.optional_text(
            data.get("binding:vif_type"), f.at(field, "binding:vif_type"), 64
        )
        details_field = f.at(field, "binding:vif_details")
        details = VifDetails.from_dict(data.get("binding:vif_details"), details_field, typed=sriov)
        bridge = None
        if not sriov and vif_type == "bridge":
            bridge, rest = BridgeBinding.split(details.extra, details_field)
            details = VifDetails(extra=rest)
        return cls(
            id=f.printable(f.required(data, "id", field), f.at(field, "id")),
            vnic_type=cast(PortVnicType, vnic),
            mac_address=f.optional_text(mac, f.at(field, "mac_address"), 32),
            network_id=f.optional_text(data.get("network_id"), f.at(field, "network_id")),
            pci_request_id=f.optional_text(
                data.get("pci_request_id"), f.at(field, "pci_request_id")
            ),
            profile=BindingProfile.from_dict(
                data.get("binding:profile"), f.at(field, "binding:profile"), typed=sriov
            ),
            vif_type=vif_type,
            vif_details=details,
            bridge=bridge,
        )

    def bridge_interface(self) -> BridgeInterfaceSpec:
        """The libvirt interface of a normal port bound to a bridge.

        The tap is named as Neutron's linuxbridge agent names it (``tap`` + the
        port id's first 11 characters) when the id makes a valid name, so an
        operator finds a port's tap by its id; otherwise libvirt picks one.
        Raises ``InvalidVirtSpec`` naming the port field.
        """
        if self.bridge is None:
            raise InvalidVirtSpec("binding:vif_details.bridge_name", "the port has no bridge")
        tap: str | None = "tap" + self.id[:BRIDGE_ID_CHARS]
        try:
            v.check_ifname(tap, "target_dev")
        except InvalidVirtSpec:
            tap = None
        try:
            return BridgeInterfaceSpec(
                mac=self.mac_address,  # type: ignore[arg-type]  # checked by the spec
                bridge=self.bridge.bridge_name,
                target_dev=tap,
            )
        except InvalidVirtSpec as exc:
            raise InvalidVirtSpec(_SPEC_TO_PORT.get(exc.field, exc.field), exc.reason) from None

    def interface(self, vf_ifname: str | None = None) -> SriovInterfaceSpec:
        """The libvirt interface of an SR-IOV port; ``vf_ifname`` is needed for macvtap.

        Raises ``InvalidVirtSpec`` naming the port field (``binding:vif_type``...).
        """
        vnic = v.check_choice(self.vnic_type, "binding:vnic_type", VNIC_TYPES)
        vif_type = self.vif_type
        if vnic == "direct-physical" and vif_type in (None, "hostdev_physical"):
            vif_type = "hostdev_physical"  # what Neutron reports for a whole PF
        vif = v.check_choice(vif_type, "binding:vif_type", VIF_TYPES)
        details = self.vif_details
        try:
            return SriovInterfaceSpec(
                vnic_type=cast(VnicType, vnic),
                mac=self.mac_address,  # type: ignore[arg-type]  # checked by the spec
                address=self.vf_address,
                vif_type=cast(VifType, vif),
                vf_ifname=vf_ifname,
                vlan=details.vlan or None,  # 0: a flat network, no tag
                profileid=details.profileid if vif == "802.1qbh" else None,
                trusted=vnic != "direct-physical" and profile_trusted(self.profile.extra),
            )
        except InvalidVirtSpec as exc:
            raise InvalidVirtSpec(_SPEC_TO_PORT.get(exc.field, exc.field), exc.reason) from None


# A spec field -> the port field it came from, so errors name what the sender wrote.
_SPEC_TO_PORT = {
    "mac": "mac_address",
    "address": "binding:profile.pci_slot",
    "vlan": "binding:vif_details.vlan",
    "profileid": "binding:vif_details.profileid",
    "vif_type": "binding:vif_type",
}
