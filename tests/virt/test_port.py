"""Bound Neutron ports (as the Networking API returns them) into interface specs."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from pcifleet.pci import SRIOV_VNIC_TYPES
from pcifleet.pci.address import PciAddress
from pcifleet.virt import InvalidVirtSpec, SriovInterfaceSpec, interface_from_port
from pcifleet.virt.model import VNIC_TYPES, VnicType


def bound(**kw: Any) -> dict[str, Any]:
    port: dict[str, Any] = {
        "id": "3c0f2f8e-0d9e-4d4c-a1c3-5f0c3d7c2a10",
        "mac_address": "fa:16:3e:4b:1c:2d",
        "binding:vnic_type": "direct",
        "binding:vif_type": "hw_veb",
        "binding:profile": {
            "pci_slot": "0000:3b:02.1",
            "pci_vendor_info": "8086:154c",
            "physical_network": "physnet1",
        },
        "binding:vif_details": {"vlan": "100", "port_filter": False},
    }
    port.update(kw)
    return port


def test_direct_port_on_a_vlan_network() -> None:
    assert interface_from_port(bound()) == SriovInterfaceSpec(
        "direct", "fa:16:3e:4b:1c:2d", PciAddress.parse("0000:3b:02.1"), vlan=100
    )


@pytest.mark.parametrize("vlan", [None, "0", 0, ""])
def test_flat_network_has_no_tag(vlan: Any) -> None:
    assert interface_from_port(bound(**{"binding:vif_details": {"vlan": vlan}})).vlan is None


def test_802_1qbh_port() -> None:
    spec = interface_from_port(
        bound(**{"binding:vif_type": "802.1qbh", "binding:vif_details": {"profileid": "pp-1"}})
    )
    assert (spec.vif_type, spec.profileid, spec.vlan) == ("802.1qbh", "pp-1", None)


def test_macvtap_port_needs_the_vf_netdev() -> None:
    port = bound(**{"binding:vnic_type": "macvtap"})
    with pytest.raises(InvalidVirtSpec, match="vf_ifname"):
        interface_from_port(port)
    assert interface_from_port(port, vf_ifname="ens1f0v1").vf_ifname == "ens1f0v1"


def test_direct_physical_port() -> None:
    port = bound(
        **{
            "binding:vnic_type": "direct-physical",
            "binding:vif_type": "hostdev_physical",
            "binding:profile": {"pci_slot": "0000:5e:00.0"},
            "binding:vif_details": {},
        }
    )
    spec = interface_from_port(port)
    assert (spec.vnic_type, spec.address) == ("direct-physical", PciAddress.parse("0000:5e:00.0"))


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"mac_address": "fa:16:3e:4b:1c:2d'"}, "mac_address"),
        ({"mac_address": None}, "mac_address"),
        ({"binding:vnic_type": "normal"}, "binding:vnic_type"),
        ({"binding:vif_type": "ovs"}, "binding:vif_type"),
        ({"binding:vif_type": "binding_failed"}, "binding:vif_type"),
        ({"binding:profile": {"pci_slot": "0000:3b:20.1"}}, "binding:profile.pci_slot"),
        ({"binding:profile": {}}, "binding:profile.pci_slot"),
        ({"binding:profile": "0000:3b:02.1"}, "binding:profile"),
        ({"binding:vif_details": {"vlan": "4095"}}, "binding:vif_details.vlan"),
        ({"binding:vif_details": {"vlan": "1e2"}}, "binding:vif_details.vlan"),
        ({"binding:vif_details": {"vlan": "١٠٠"}}, "binding:vif_details.vlan"),  # Arabic digits
        ({"binding:vif_details": {"vlan": -5}}, "binding:vif_details.vlan"),
        ({"binding:vif_details": ["vlan"]}, "binding:vif_details"),
        (
            {"binding:vif_type": "802.1qbh", "binding:vif_details": {"profileid": "p'1"}},
            "binding:vif_details.profileid",
        ),
    ],
)
def test_bad_port_names_the_port_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        interface_from_port(bound(**kw))
    assert excinfo.value.field == field


def test_not_a_port() -> None:
    with pytest.raises(InvalidVirtSpec, match="port"):
        interface_from_port(["mac_address"])  # type: ignore[arg-type]


def test_vnic_types_are_the_pci_models() -> None:
    # VnicType is spelled out for mypy; it must not drift from what the scheduler hands out.
    assert get_args(VnicType) == VNIC_TYPES == tuple(SRIOV_VNIC_TYPES)
