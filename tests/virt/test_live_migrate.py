"""The libvirt driver's live migration: what it hands virDomainMigrateToURI3
(the destination's XML as both the running and the persistent definition,
live, peer to peer, persisted there, undefined here), checked against a
stand-in libvirt module; and the drivers that cannot migrate say so."""

from __future__ import annotations

from typing import Any

import pytest

from pcifleet.virt import XmlDriver
from pcifleet.virt.drivers.libvirt_driver import LibvirtDriver
from pcifleet.virt.errors import DomainNotFound, UnsupportedOperation

UUID = "6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10"
DEST_XML = "<domain type='kvm'><name>pcifleet-x</name><devices/></domain>"


class FakeLibvirt:
    """The constants the driver reads, with libvirt's values."""

    VIR_MIGRATE_LIVE = 1
    VIR_MIGRATE_PEER2PEER = 2
    VIR_MIGRATE_PERSIST_DEST = 8
    VIR_MIGRATE_UNDEFINE_SOURCE = 16
    VIR_MIGRATE_PARAM_DEST_XML = "destination_xml"
    VIR_MIGRATE_PARAM_PERSIST_XML = "persistent_xml"
    VIR_ERR_NO_DOMAIN = 42
    VIR_ERR_OPERATION_INVALID = 55
    VIR_ERR_NO_SUPPORT = 3

    class libvirtError(Exception):
        def get_error_code(self) -> int:
            return 1


class FakeDomain:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def migrateToURI3(self, uri: str, params: dict[str, Any], flags: int) -> int:
        self.calls.append((uri, params, flags))
        return 0


class FakeConn:
    def __init__(self, dom: FakeDomain) -> None:
        self.dom = dom

    def lookupByUUIDString(self, uuid: str) -> FakeDomain:
        return self.dom


def test_migrate_sends_the_destination_xml_live_and_persistent() -> None:
    dom = FakeDomain()
    driver = LibvirtDriver("qemu:///system")
    driver._lv, driver._conn = FakeLibvirt, FakeConn(dom)
    assert driver.can_migrate()
    driver.migrate(UUID, "qemu+tcp://compute2/system", DEST_XML)
    ((uri, params, flags),) = dom.calls
    assert uri == "qemu+tcp://compute2/system"
    assert params == {"destination_xml": DEST_XML, "persistent_xml": DEST_XML}
    assert flags == 1 | 2 | 8 | 16


def test_the_xml_driver_leaves_migration_to_the_agents(tmp_path: Any) -> None:
    driver = XmlDriver(tmp_path / "domains")
    assert not driver.can_migrate()
    with pytest.raises(UnsupportedOperation):
        driver.migrate(UUID, "qemu+tcp://compute2/system", DEST_XML)
    with pytest.raises(DomainNotFound):
        driver.info(UUID)
