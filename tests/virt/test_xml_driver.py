"""The xml driver's files, and picking drivers by name."""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path

import pytest

from pcifleet.pci.address import PciAddress
from pcifleet.virt import (
    DriverUnavailable,
    InvalidVirtSpec,
    PowerState,
    SriovInterfaceSpec,
    VirtDriverError,
    XmlDriver,
    domain_xml,
    get_driver,
)
from pcifleet.virt.drivers import LibvirtDriver, driver_class
from pcifleet.virt.drivers.xml_driver import atomic_write
from tests.virt.shapes import docs_example

A = PciAddress.parse


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_files_hold_exactly_the_domain_xml(tmp_path: Path) -> None:
    spec = docs_example()
    driver = XmlDriver(tmp_path)
    driver.define(spec)
    assert files(tmp_path) == [f"domains/{spec.uuid}.xml"]
    assert (tmp_path / "domains" / f"{spec.uuid}.xml").read_text() == domain_xml(spec)
    driver.start(spec.uuid)
    assert files(tmp_path) == [
        f"console/{spec.uuid}.log",
        f"domains/{spec.uuid}.xml",
        f"power/{spec.uuid}",
    ]
    assert (tmp_path / "power" / spec.uuid).read_text() == "running\n"
    driver.destroy(spec.uuid)
    assert (tmp_path / "power" / spec.uuid).read_text() == "shutdown\n"
    driver.undefine(spec.uuid)
    # The console log outlives its domain, as a hypervisor's logs do.
    assert files(tmp_path) == [f"console/{spec.uuid}.log"]


def test_a_running_marker_from_an_older_state_dir_still_reads_as_running(tmp_path: Path) -> None:
    spec = docs_example()
    driver = XmlDriver(tmp_path)
    driver.define(spec)
    (tmp_path / "running").mkdir()
    (tmp_path / "running" / spec.uuid).touch()
    assert driver.power_state(spec.uuid) is PowerState.RUNNING
    driver.stop(spec.uuid, timeout=0)
    assert driver.power_state(spec.uuid) is PowerState.SHUTDOWN
    assert not (tmp_path / "running" / spec.uuid).exists()


def test_an_unreadable_power_file_is_nostate_and_can_be_powered_off(tmp_path: Path) -> None:
    spec = docs_example()
    driver = XmlDriver(tmp_path)
    driver.define(spec)
    (tmp_path / "power" / spec.uuid).write_text("sleepy\n")
    assert driver.power_state(spec.uuid) is PowerState.NOSTATE
    driver.destroy(spec.uuid)
    assert driver.power_state(spec.uuid) is PowerState.SHUTDOWN


def test_state_survives_a_new_driver_instance(tmp_path: Path) -> None:
    spec = docs_example()
    XmlDriver(tmp_path).define(spec)
    XmlDriver(tmp_path).start(spec.uuid)
    info = XmlDriver(tmp_path).info(spec.uuid)
    assert (info.name, info.running) == (spec.name, True)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "d.xml"
    atomic_write(path, "<old/>")
    with pytest.raises(TypeError):
        atomic_write(path, 42)  # type: ignore[arg-type]  # fails after the temp file exists
    assert path.read_text() == "<old/>"
    assert files(tmp_path) == ["d.xml"]


@pytest.mark.parametrize("uuid", ["../../etc/passwd", "/etc/passwd", "", "6f1c2b8e"])
def test_uuids_cannot_name_other_paths(tmp_path: Path, uuid: str) -> None:
    driver = XmlDriver(tmp_path)
    for call in (driver.get_xml, driver.start, driver.info):
        with pytest.raises(InvalidVirtSpec) as excinfo:
            call(uuid)
        assert excinfo.value.field == "uuid"


def test_a_corrupt_file_is_reported_with_its_path(tmp_path: Path) -> None:
    driver = XmlDriver(tmp_path)
    spec = docs_example()
    driver.define(spec)
    driver.path_of(spec.uuid).write_text("<domain><name>half")
    with pytest.raises(VirtDriverError, match=f"{spec.uuid}.xml: domain XML does not parse"):
        driver.list()


def test_entities_in_a_planted_file_are_not_expanded(tmp_path: Path) -> None:
    driver = XmlDriver(tmp_path)
    spec = docs_example()
    driver.define(spec)
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    planted = (
        f'<!DOCTYPE domain [<!ENTITY x SYSTEM "file://{secret}">]>'
        f"<domain><name>&x;</name><uuid>{spec.uuid}</uuid><devices/></domain>"
    )
    driver.path_of(spec.uuid).write_text(planted)
    assert "TOP-SECRET" not in driver.info(spec.uuid).name


def test_concurrent_attaches_all_land(tmp_path: Path) -> None:
    driver = XmlDriver(tmp_path)
    spec = docs_example()
    driver.define(spec)
    ports = [
        SriovInterfaceSpec("direct", f"fa:16:3e:00:01:{i:02x}", A(f"0000:3c:00.{i}"))
        for i in range(8)
    ]
    threads = [threading.Thread(target=driver.attach_interface, args=(spec.uuid, p)) for p in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    text = driver.get_xml(spec.uuid)
    assert all(p.mac in text for p in ports)
    assert files(tmp_path) == [f"domains/{spec.uuid}.xml"]


def test_get_driver_by_name(tmp_path: Path) -> None:
    assert isinstance(get_driver("xml", state_dir=tmp_path), XmlDriver)
    assert isinstance(get_driver("libvirt", uri="test:///default"), LibvirtDriver)
    assert driver_class("xml") is XmlDriver
    with pytest.raises(DriverUnavailable, match="unknown virt driver 'noop'; known: libvirt, xml"):
        get_driver("noop")
    with pytest.raises(DriverUnavailable, match="options"):
        get_driver("xml", state_dir=tmp_path, colour="blue")


def test_without_libvirt_python_only_the_libvirt_driver_complains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import libvirt` fail as on a host
    # without libvirt-python; the package and the xml driver must not care.
    monkeypatch.setitem(sys.modules, "libvirt", None)
    driver = get_driver("libvirt", uri="test:///default")
    assert driver.describe().location == "test:///default"  # no import needed
    with pytest.raises(DriverUnavailable, match="libvirt-python is not installed"):
        driver.list()
    xml_driver = get_driver("xml", state_dir=tmp_path)
    xml_driver.define(docs_example())
    assert len(xml_driver.list()) == 1


def test_an_unreachable_uri_is_driver_unavailable(libvirt_module: object, tmp_path: Path) -> None:
    driver = get_driver("libvirt", uri=f"test://{tmp_path}/no-such-host.xml")
    with pytest.raises(DriverUnavailable, match="cannot connect"):
        driver.list()


def test_the_name_index_follows_redefine_and_undefine(tmp_path: Path) -> None:
    """Names are checked against an index kept in memory: a renamed or removed
    domain's old name is free again, a taken name is still refused."""
    from pcifleet.virt import DomainExists, XmlDriver, server_domain_spec

    driver = XmlDriver(tmp_path / "state")
    a = "00000000-0000-4000-8000-00000000000a"
    b = "00000000-0000-4000-8000-00000000000b"
    driver.define(server_domain_spec(a, "first", 1, 512, "/images/x"))
    renamed = server_domain_spec(a, "first", 1, 512, "/images/x")
    driver.define(dataclasses.replace(renamed, name="renamed"))
    driver.define(
        dataclasses.replace(server_domain_spec(b, "b", 1, 512, "/images/x"), name="first")
    )
    with pytest.raises(DomainExists):
        driver.define(dataclasses.replace(renamed, name="first"))
    driver.undefine(b)
    driver.define(dataclasses.replace(renamed, name="first"))
    # a fresh driver on the same directory reads the same names back
    assert {d.name for d in XmlDriver(tmp_path / "state").list()} == {"first"}
