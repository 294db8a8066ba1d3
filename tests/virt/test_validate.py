"""Hostile and malformed inputs: each is refused with the field named, before
any XML exists."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pcifleet.pci.address import PciAddress
from pcifleet.pci.errors import InvalidPciAddress
from pcifleet.virt import (
    DomainSpec,
    HostdevSpec,
    InvalidVirtSpec,
    NetworkSpec,
    SriovInterfaceSpec,
    domain_element,
    domain_name_for,
    domain_xml,
)
from pcifleet.virt.validate import check_mac
from pcifleet.virt.xmlutil import parse

VF = "0000:3b:02.1"
MAC = "fa:16:3e:00:00:01"
UUID = "6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10"


def port(**kw: Any) -> SriovInterfaceSpec:
    args: dict[str, Any] = {"vnic_type": "direct", "mac": MAC, "address": VF}
    args.update(kw)
    return SriovInterfaceSpec(**args)


def domain(**kw: Any) -> DomainSpec:
    args: dict[str, Any] = {
        "name": "d1",
        "uuid": UUID,
        "memory_mb": 512,
        "vcpus": 1,
        "image_path": "/var/lib/pcifleet/images/d1.qcow2",
    }
    args.update(kw)
    return DomainSpec(**args)


def field_of(excinfo: pytest.ExceptionInfo[InvalidVirtSpec]) -> str:
    assert str(excinfo.value).startswith(excinfo.value.field + ": ")
    return excinfo.value.field


@pytest.mark.parametrize(
    "mac",
    [
        "fa:16:3e:00:00:0'",
        "fa:16:3e:00:00:01' onload='x",
        'fa:16:3e:00:00:0"',
        "fa:16:3e:00:00",
        "fa:16:3e:00:00:01:02",
        "fa-16-3e-00-00-01",
        "fa:16:3e:00:00:1",
        "fa:16:3e:00:00:0g",
        "01:00:5e:00:00:01",  # multicast
        "00:00:00:00:00:00",
        "",
        None,
        0xFA163E000001,
    ],
)
def test_bad_mac_is_refused(mac: Any) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        port(mac=mac)
    assert field_of(excinfo) == "mac"


def test_mac_is_normalised() -> None:
    assert port(mac=" FA:16:3E:0A:0B:0C ").mac == "fa:16:3e:0a:0b:0c"


@pytest.mark.parametrize("vlan", [0, 4095, -1, 65536, True, "100", 100.0])
def test_bad_vlan_is_refused(vlan: Any) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        port(vlan=vlan)
    assert field_of(excinfo) == "vlan"
    with pytest.raises(InvalidVirtSpec) as excinfo:
        NetworkSpec("n", "ens1f0", vlan=vlan)
    assert field_of(excinfo) == "vlan"


@pytest.mark.parametrize("vlan", [1, 4094])
def test_vlan_limits_are_accepted(vlan: int) -> None:
    assert port(vlan=vlan).vlan == vlan


@pytest.mark.parametrize("address", ["0000:3b:20.1", "0000:3b:02.8", "3b:02.1", "0000:3b:02.1'"])
def test_bad_pci_address_is_refused(address: str) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        port(address=address)
    assert field_of(excinfo) == "address"
    with pytest.raises(InvalidVirtSpec) as excinfo:
        HostdevSpec(address)  # type: ignore[arg-type]
    assert field_of(excinfo) == "address"


def test_slot_0x20_cannot_even_be_built() -> None:
    # The PCI model refuses it too, so no PciAddress with slot 0x20 can reach us.
    with pytest.raises(InvalidPciAddress, match="slot"):
        PciAddress(0, 0x3B, 0x20, 1)


@pytest.mark.parametrize(
    "profileid", ["prof'1", 'a"b', "a b", "<x>", "p&q", "", "-lead", "x" * 40, 42]
)
def test_bad_profileid_is_refused(profileid: Any) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        port(vif_type="802.1qbh", profileid=profileid)
    assert field_of(excinfo) == "profileid"


def test_profileid_of_39_characters_is_accepted() -> None:
    assert port(vif_type="802.1qbh", profileid="p" * 39).profileid == "p" * 39


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"vnic_type": "normal"}, "vnic_type"),
        ({"vnic_type": "baremetal"}, "vnic_type"),
        ({"vif_type": "ovs"}, "vif_type"),
        ({"address": None}, "address"),
        ({"vnic_type": "macvtap"}, "vf_ifname"),
        ({"vnic_type": "macvtap", "vf_ifname": "../eth0"}, "vf_ifname"),
        ({"vnic_type": "macvtap", "vf_ifname": "a" * 16}, "vf_ifname"),
        ({"vnic_type": "macvtap", "vf_ifname": "eth0 x"}, "vf_ifname"),
        ({"vif_type": "802.1qbh"}, "profileid"),
        ({"vif_type": "802.1qbh", "profileid": "p1", "vlan": 10}, "vlan"),
        ({"profileid": "p1"}, "profileid"),
        ({"vnic_type": "direct-physical", "vif_type": "802.1qbh", "profileid": "p"}, "vif_type"),
        ({"vif_type": "hostdev_physical"}, "vif_type"),
    ],
)
def test_inconsistent_port_is_refused(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        port(**kw)
    assert field_of(excinfo) == field


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": "a/b"}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "a\x7fb"}, "name"),
        ({"name": "a\ufffeb"}, "name"),
        ({"name": "a\ud800b"}, "name"),
        ({"title": "a\uffffb"}, "title"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 256}, "name"),
        ({"name": 7}, "name"),
        ({"title": "line\nbreak"}, "title"),
        ({"uuid": "not-a-uuid"}, "uuid"),
        ({"uuid": "../../etc/passwd"}, "uuid"),
        ({"memory_mb": 0}, "memory_mb"),
        ({"memory_mb": "512"}, "memory_mb"),
        ({"vcpus": 0}, "vcpus"),
        ({"vcpus": 10**6}, "vcpus"),
        ({"image_path": "relative.qcow2"}, "image_path"),
        ({"image_path": "/var/lib/../../etc/shadow"}, "image_path"),
        ({"image_path": "/a\nb"}, "image_path"),
        ({"image_format": "vmdk"}, "image_format"),
        ({"domain_type": "xen"}, "domain_type"),
        ({"machine": "q35'><x"}, "machine"),
        ({"hostdevs": [VF]}, "hostdevs[0]"),
        ({"interfaces": "eth0"}, "interfaces"),
        (
            {"hostdevs": (HostdevSpec(PciAddress.parse(VF)),), "interfaces": (port(),)},
            "interfaces[0].address",
        ),
        (
            {"hostdevs": (HostdevSpec(PciAddress.parse(VF)), HostdevSpec(PciAddress.parse(VF)))},
            "hostdevs[1].address",
        ),
        ({"interfaces": (port(), port(address="0000:3b:02.2"))}, "interfaces[1].mac"),
    ],
)
def test_bad_domain_is_refused(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidVirtSpec) as excinfo:
        domain(**kw)
    assert field_of(excinfo) == field


@pytest.mark.parametrize(("name", "pf"), [("n/1", "ens1f0"), ("n", "ens1/f0"), ("n", "")])
def test_bad_network_is_refused(name: str, pf: str) -> None:
    with pytest.raises(InvalidVirtSpec):
        NetworkSpec(name, pf)


def test_domain_name_for_is_unique_and_path_safe() -> None:
    assert domain_name_for(UUID.upper()) == f"pcifleet-{UUID}"
    with pytest.raises(InvalidVirtSpec, match="server_uuid"):
        domain_name_for("x/../y")


def test_markup_in_values_is_escaped_not_interpreted() -> None:
    spec = domain(name="<name>&amp;", title="</title><devices/>", image_path="/i/'\"<&>.raw")
    text = domain_xml(spec)
    assert "<devices/>" not in text
    root = parse(text)
    assert root.findtext("name") == "<name>&amp;"
    assert root.findtext("title") == "</title><devices/>"
    assert len(root.findall("devices")) == 1


@given(
    name=st.text(min_size=1, max_size=60).filter(lambda s: bool(s.strip()) and "/" not in s),
    title=st.text(max_size=60),
)
def test_any_accepted_name_survives_serialisation(name: str, title: str) -> None:
    try:
        spec = domain(name=name, title=title)
    except InvalidVirtSpec:
        return  # characters XML cannot carry: refusing is fine, corrupting is not
    root = parse(domain_xml(spec))
    assert root.findtext("name") == name
    assert (root.findtext("title") or "") == title
    assert domain_element(spec).findtext("name") == name


@given(st.text(max_size=30))
def test_mac_check_accepts_only_canonical_unicast(text: str) -> None:
    try:
        mac = check_mac(text)
    except InvalidVirtSpec as exc:
        assert exc.field == "mac"
        return
    assert len(mac) == 17 and mac == mac.lower() and int(mac[:2], 16) & 1 == 0
