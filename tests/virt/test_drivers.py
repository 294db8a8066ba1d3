"""The driver contract, run against both drivers: ``xml`` (files) and ``libvirt``
(libvirt-python on test:///default). Same calls, same answers."""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from pcifleet.pci.address import PciAddress
from pcifleet.virt import (
    DeviceExists,
    DeviceNotFound,
    DomainExists,
    DomainNotFound,
    DomainStateError,
    HostdevSpec,
    SriovInterfaceSpec,
    UnsupportedOperation,
    VirtDriver,
)
from tests.virt.shapes import DIRECT_PHYSICAL, GPU, MACVTAP_VLAN, QBH, docs_example

A = PciAddress.parse

OTHER_UUID = "11111111-2222-4333-8444-555555555555"
NEW_PORT = SriovInterfaceSpec("direct", "fa:16:3e:77:00:01", A("0000:3b:03.0"), vlan=42)


def devices(drv: VirtDriver, uuid: str) -> etree._Element:
    found = etree.fromstring(drv.get_xml(uuid).encode()).find("devices")
    assert found is not None
    return found


def macs(drv: VirtDriver, uuid: str) -> list[str]:
    return [m.get("address", "") for m in devices(drv, uuid).iterfind("interface/mac")]


def hostdev_buses(drv: VirtDriver, uuid: str) -> list[str]:
    return [a.get("bus", "") for a in devices(drv, uuid).iterfind("hostdev/source/address")]


def test_describe_names_the_driver(driver: VirtDriver) -> None:
    info = driver.describe()
    assert info.name == driver.name
    assert info.location


def test_lifecycle(driver: VirtDriver) -> None:
    spec = docs_example()
    info = driver.define(spec)
    assert (info.uuid, info.name, info.title, info.running) == (
        spec.uuid,
        spec.name,
        "web-1",
        False,
    )
    assert spec.uuid in [d.uuid for d in driver.list()]
    assert macs(driver, spec.uuid) == ["fa:16:3e:4b:1c:2d"]

    driver.start(spec.uuid)
    assert driver.info(spec.uuid).running
    assert driver.info(spec.uuid).state == "running"
    with pytest.raises(DomainStateError):
        driver.start(spec.uuid)
    with pytest.raises(DomainStateError):
        driver.undefine(spec.uuid)

    driver.destroy(spec.uuid)
    driver.destroy(spec.uuid)  # already off: nothing to do, no error
    assert not driver.info(spec.uuid).running
    driver.undefine(spec.uuid)
    assert spec.uuid not in [d.uuid for d in driver.list()]
    with pytest.raises(DomainNotFound):
        driver.info(spec.uuid)


@pytest.mark.parametrize("call", ["start", "destroy", "undefine", "get_xml", "info"])
def test_unknown_domain(driver: VirtDriver, call: str) -> None:
    with pytest.raises(DomainNotFound):
        getattr(driver, call)(OTHER_UUID)
    with pytest.raises(DomainNotFound):
        driver.attach_interface(OTHER_UUID, NEW_PORT)


def test_redefine_replaces_config_and_names_stay_unique(driver: VirtDriver) -> None:
    spec = docs_example()
    driver.define(spec)
    driver.define(dataclasses.replace(spec, vcpus=8))
    root = etree.fromstring(driver.get_xml(spec.uuid).encode())
    assert root.findtext("vcpu") == "8"
    with pytest.raises(DomainExists, match=spec.uuid):
        driver.define(dataclasses.replace(spec, uuid=OTHER_UUID))


def test_attach_and_detach_on_a_stopped_domain(driver: VirtDriver) -> None:
    spec = docs_example()
    driver.define(spec)
    for device in (NEW_PORT, QBH, MACVTAP_VLAN, DIRECT_PHYSICAL):
        driver.attach_interface(spec.uuid, device)
    assert macs(driver, spec.uuid) == [
        "fa:16:3e:4b:1c:2d",
        NEW_PORT.mac,
        QBH.mac,
        MACVTAP_VLAN.mac,
    ]
    assert hostdev_buses(driver, spec.uuid) == ["0xaf", "0x5e"]
    tag = devices(driver, spec.uuid).find("interface[2]/vlan/tag")
    assert tag is not None and tag.get("id") == "42"

    driver.detach_interface(spec.uuid, QBH)
    driver.detach_interface(spec.uuid, DIRECT_PHYSICAL)
    driver.detach_interface(spec.uuid, GPU)
    assert macs(driver, spec.uuid) == ["fa:16:3e:4b:1c:2d", NEW_PORT.mac, MACVTAP_VLAN.mac]
    assert hostdev_buses(driver, spec.uuid) == []


def test_attach_refuses_a_duplicate_and_detach_a_stranger(driver: VirtDriver) -> None:
    spec = docs_example()
    driver.define(spec)
    before = driver.get_xml(spec.uuid)
    same_mac = dataclasses.replace(NEW_PORT, mac="fa:16:3e:4b:1c:2d")
    same_vf = dataclasses.replace(NEW_PORT, address=spec.interfaces[0].address)
    for device in (same_mac, same_vf, HostdevSpec(A("0000:af:00.0"))):
        with pytest.raises(DeviceExists):
            driver.attach_interface(spec.uuid, device)
    for device in (NEW_PORT, HostdevSpec(A("0000:af:00.1"))):
        with pytest.raises(DeviceNotFound):
            driver.detach_interface(spec.uuid, device)
    assert driver.get_xml(spec.uuid) == before


def test_attach_to_a_running_domain(driver: VirtDriver) -> None:
    spec = docs_example()
    driver.define(spec)
    driver.start(spec.uuid)
    if driver.describe().live_attach:
        driver.attach_interface(spec.uuid, NEW_PORT)
        assert NEW_PORT.mac in macs(driver, spec.uuid)
        driver.detach_interface(spec.uuid, NEW_PORT)
        assert NEW_PORT.mac not in macs(driver, spec.uuid)
    else:
        # libvirt's test driver has no hot plug (virDomainAttachDeviceFlags is
        # "not supported"); the driver says so and changes nothing.
        before = driver.get_xml(spec.uuid)
        with pytest.raises(UnsupportedOperation, match="not supported"):
            driver.attach_interface(spec.uuid, NEW_PORT)
        with pytest.raises(UnsupportedOperation, match="not supported"):
            driver.detach_interface(spec.uuid, spec.interfaces[0])
        assert driver.get_xml(spec.uuid) == before
    with pytest.raises(DeviceNotFound):
        driver.detach_interface(spec.uuid, QBH)
