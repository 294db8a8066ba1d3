"""Finding one device of an inventory by the words an operator types."""

from __future__ import annotations

import pytest

from pcifleet.host.inventory import Inventory
from pcifleet.pci import DevType, InvalidDeviceSpec, PciAddress, PciDevice


def dev(address: str, ifname: str | None = None) -> PciDevice:
    return PciDevice(
        address=PciAddress.parse(address),
        vendor_id="8086",
        product_id="10c9",
        dev_type=DevType.PCI,
        ifname=ifname,
    )


def test_short_forms_find_the_one_device() -> None:
    inv = Inventory([dev("0000:02:00.0", "eth0"), dev("0000:03:00.0")])
    for key in ("02:00.0", "2:0.0", "0:2:0.0", "0000:02:00.0", "eth0"):
        assert inv.find(key) == inv.devices[0], key
    assert inv.find("04:00.0") is None
    assert inv.find("eth1") is None


def test_a_short_form_naming_two_domains_is_refused() -> None:
    inv = Inventory([dev("0000:02:00.0"), dev("0001:02:00.0")])
    with pytest.raises(InvalidDeviceSpec, match=r"names 2 devices .*give the domain"):
        inv.find("02:00.0")
    assert inv.find("0001:02:00.0") == inv.devices[1]


@pytest.mark.parametrize("key", ["02:zz.0", "1:2:3:4.0", "02:00.9", "../x", ":" * 300])
def test_hostile_keys_are_refused_with_a_reason(key: str) -> None:
    with pytest.raises(InvalidDeviceSpec, match="not a PCI address"):
        Inventory([dev("0000:02:00.0")]).find(key)
