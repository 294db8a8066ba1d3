"""An SR-IOV interface spec from a bound Neutron port, as the API returns it.

The fields are the ones Nova reads: ``binding:vnic_type``, ``binding:vif_type``,
``binding:profile.pci_slot`` (the allocated VF or PF), ``binding:vif_details``
(``vlan`` — a *string* in Neutron's ML2 SR-IOV driver — or ``profileid`` for
802.1qbh) and ``mac_address``. Errors name the port field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from pcifleet.virt import validate as v
from pcifleet.virt.errors import InvalidVirtSpec
from pcifleet.virt.model import VIF_TYPES, VNIC_TYPES, SriovInterfaceSpec, VifType, VnicType


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidVirtSpec(field, f"must be an object, got {type(value).__name__}")
    return value


def _vlan(value: Any) -> int | None:
    field = "binding:vif_details.vlan"
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise InvalidVirtSpec(field, f"{value!r} is not a VLAN id")
        value = int(value)
    vlan = v.check_vlan(value, field)
    return vlan


def interface_from_port(
    port: Mapping[str, Any], vf_ifname: str | None = None
) -> SriovInterfaceSpec:
    """The spec for a bound SR-IOV port; ``vf_ifname`` is needed for macvtap.

    A VLAN of 0 (or none) in ``vif_details`` is read as a flat network: no tag.
    """
    if not isinstance(port, Mapping):
        raise InvalidVirtSpec("port", f"must be an object, got {type(port).__name__}")
    vnic = v.check_choice(port.get("binding:vnic_type"), "binding:vnic_type", VNIC_TYPES)
    vif_type = port.get("binding:vif_type")
    if vnic == "direct-physical" and vif_type in (None, "hostdev_physical"):
        vif_type = "hostdev_physical"
    vif = v.check_choice(vif_type, "binding:vif_type", VIF_TYPES)
    profile = _mapping(port.get("binding:profile"), "binding:profile")
    details = _mapping(port.get("binding:vif_details"), "binding:vif_details")
    slot = profile.get("pci_slot")
    address = None if slot is None else v.check_address(slot, "binding:profile.pci_slot")
    vlan_value = details.get("vlan")
    vlan = None if vlan_value in (0, "0") else _vlan(vlan_value)
    profileid = details.get("profileid") if vif == "802.1qbh" else None
    try:
        return SriovInterfaceSpec(
            vnic_type=cast(VnicType, vnic),
            mac=port.get("mac_address"),  # type: ignore[arg-type]  # checked by the spec
            address=address,
            vif_type=cast(VifType, vif),
            vf_ifname=vf_ifname,
            vlan=vlan,
            profileid=profileid,
        )
    except InvalidVirtSpec as exc:
        raise InvalidVirtSpec(_PORT_FIELDS.get(exc.field, exc.field), exc.reason) from None


_PORT_FIELDS = {
    "mac": "mac_address",
    "address": "binding:profile.pci_slot",
    "vlan": "binding:vif_details.vlan",
    "profileid": "binding:vif_details.profileid",
    "vif_type": "binding:vif_type",
}
