"""A live migration between two hosts on the xml driver, through the agent's
tasks: the source unplugs the direct port and hands over XML with the macvtap
port on the destination's VF netdev and the device on the destination's
address; the destination runs it and plugs its own VF. Failures at either end
leave each host as it was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from pcifleet.agent.disks import Disks
from pcifleet.agent.live import HostFiles, live_dest, live_prepare, live_rollback, live_source
from pcifleet.agent.tasks import TaskFailed, build
from pcifleet.virt import DomainNotFound, XmlDriver
from tests.agent.test_tasks import GPU, LOCAL, UUID, VF, fake_image, host_disks, payload

MACVTAP_VF, DEST_VF, DEST_GPU = "0000:3b:02.3", "0000:3b:02.5", "0000:d8:00.0"
MAC = "fa:16:3e:00:00:05"


def two_ports() -> dict[str, Any]:
    task = payload()
    macvtap = {
        **task["ports"][0],
        "id": "port-m",
        "mac_address": MAC,
        "vnic_type": "macvtap",
        "pci_request_id": "req-m",
        "binding:profile": {**task["ports"][0]["binding:profile"], "pci_slot": MACVTAP_VF},
    }
    task["ports"] = [task["ports"][0], macvtap]
    task["devices"].append({"address": MACVTAP_VF, "request_id": "req-m", "for_port": True})
    return task


def direct_port(address: str) -> dict[str, Any]:
    port = dict(payload()["ports"][0])
    port["binding:profile"] = {**port["binding:profile"], "pci_slot": address}
    return {
        "instance": {"uuid": UUID, "name": "vm <1>"},
        "port": port,
        "device": {"address": address, "request_id": "req-port", "for_port": True},
    }


def source_task(**changes: Any) -> dict[str, Any]:
    return {
        "instance": {"uuid": UUID, "name": "vm <1>"},
        "dest_host": "compute2",
        "netdevs": {MAC: "ens1f0v7"},
        "hostdevs": [{"source": GPU, "dest": DEST_GPU}],
        "unplug": [direct_port(VF)],
        **changes,
    }


@pytest.fixture
def hosts(tmp_path: Path) -> tuple[XmlDriver, XmlDriver]:
    source = XmlDriver(tmp_path / "a" / "domains")
    build(source, two_ports(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    return source, XmlDriver(tmp_path / "b" / "domains")


def test_the_domain_moves_with_its_ports_on_the_destination(
    hosts: tuple[XmlDriver, XmlDriver],
) -> None:
    source, dest = hosts
    assert 'dev="ens1f0v3"' in source.get_xml(UUID)
    sent = live_source(source, source_task(), LOCAL)
    doc = etree.fromstring(sent["domain_xml"].encode())
    (macvtap,) = doc.findall("devices/interface[@type='direct']")
    assert macvtap.find("source").get("dev") == "ens1f0v7"
    assert doc.find("devices/interface[@type='hostdev']") is None  # the direct port is out
    (gpu,) = doc.findall("devices/hostdev/source/address")
    assert gpu.get("bus") == "0xd8"

    done = live_dest(dest, {"instance": {"uuid": UUID, "name": "vm <1>"},
                            "domain_xml": sent["domain_xml"],
                            "plug": [direct_port(DEST_VF)]}, LOCAL)  # fmt: skip
    assert done["plugged"] == ["port-1"]
    assert dest.info(UUID).running
    there = etree.fromstring(dest.get_xml(UUID).encode())
    (plugged,) = there.findall("devices/interface[@type='hostdev']/source/address")
    assert plugged.get("function") == "0x5"
    assert "pcifleet:instance" in dest.get_xml(UUID)  # the mark moves: a sweep may remove it


def test_a_failed_source_plugs_its_port_back(hosts: tuple[XmlDriver, XmlDriver]) -> None:
    source, _ = hosts
    before = source.get_xml(UUID)
    with pytest.raises(TaskFailed, match="no device"):
        live_source(source, source_task(netdevs={"fa:16:3e:99:99:99": "ens1f0v7"}), LOCAL)
    assert source.get_xml(UUID).count('type="hostdev"') == before.count('type="hostdev"')
    assert source.info(UUID).running


def test_a_failed_destination_defines_nothing_and_the_source_plugs_back(
    hosts: tuple[XmlDriver, XmlDriver],
) -> None:
    source, dest = hosts
    sent = live_source(source, source_task(), LOCAL)
    with pytest.raises(TaskFailed):
        live_dest(dest, {"instance": {"uuid": UUID, "name": "vm <1>"},
                         "domain_xml": sent["domain_xml"],
                         "plug": [direct_port("0000:3b:7f.7")]}, LOCAL)  # fmt: skip
    with pytest.raises(DomainNotFound):
        dest.info(UUID)
    live_rollback(source, {"instance": {"uuid": UUID, "name": "vm <1>"},
                           "plug": [direct_port(VF)]}, LOCAL)  # fmt: skip
    assert 'function="0x1"' in source.get_xml(UUID)


class MigratingDriver(XmlDriver):
    """An xml driver standing in for libvirt's own migration: records the call."""

    sent: list[tuple[str, str, str]]
    options: list[dict[str, Any]]

    def can_migrate(self) -> bool:
        return True

    def migrate(self, uuid: str, dest_uri: str, dest_xml: str, **options: Any) -> None:
        self.sent = [*getattr(self, "sent", []), (uuid, dest_uri, dest_xml)]
        self.options = [*getattr(self, "options", []), options]


def test_a_driver_that_migrates_gets_the_rewritten_xml_and_the_host_uri(tmp_path: Path) -> None:
    source = MigratingDriver(tmp_path / "a" / "domains")
    build(source, two_ports(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    done = live_source(source, source_task(), LOCAL, "qemu+tls://%s/system")
    assert done == {"migrated": True}
    ((uuid, uri, xml),) = source.sent
    assert (uuid, uri) == (UUID, "qemu+tls://compute2/system")
    assert 'dev="ens1f0v7"' in xml and 'bus="0xd8"' in xml
    # a hypervisor that migrates is never bypassed: carrying the XML would
    # restart the guest, so without a URI the source says what is missing
    with pytest.raises(TaskFailed, match="live_migration_uri"):
        live_source(source, source_task(unplug=[]), LOCAL)
    assert source.info(UUID).running
    assert source.options[0] == {"migrate_uri": None, "copy_storage": False}


def dest_host(tmp_path: Path, **changes: Any) -> HostFiles:
    values: dict[str, Any] = {
        "fetch_image": fake_image(tmp_path / "b"),
        "disks": host_disks(tmp_path / "b"),
        "console_dir": tmp_path / "b" / "console",
        "owner": "compute2@sim",
        "inbound_addr": "192.0.2.12",
    }
    return HostFiles(**{**values, **changes})


def test_the_destination_prepares_disk_and_console_before_the_guest_comes(
    tmp_path: Path,
) -> None:
    (tmp_path / "b").mkdir()
    host = dest_host(tmp_path)
    files = live_prepare(payload(), LOCAL, host)["dest_files"]
    assert files == {
        "disk": str(host.disks.path_of(UUID)),
        "console_log": str(tmp_path / "b" / "console" / f"{UUID}.log"),
        "owner": "compute2@sim",
        "inbound_addr": "192.0.2.12",
    }
    assert host.disks.path_of(UUID).exists()
    assert (tmp_path / "b" / "console").is_dir()


def test_a_destination_that_cannot_run_the_image_prepares_nothing(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    host = dest_host(tmp_path, fetch_image=fake_image(tmp_path / "b", "vhdx"))
    with pytest.raises(TaskFailed, match="vhdx"):
        live_prepare(payload(), LOCAL, host)
    assert not host.disks.path_of(UUID).exists()


def test_the_migration_lands_on_what_the_destination_prepared(tmp_path: Path) -> None:
    source = MigratingDriver(tmp_path / "a" / "domains")
    build(source, two_ports(), LOCAL, fake_image(tmp_path), host_disks(tmp_path),
          tmp_path / "a" / "console")  # fmt: skip
    (tmp_path / "b").mkdir()
    files = live_prepare(payload(), LOCAL, dest_host(tmp_path))["dest_files"]
    live_source(source, source_task(dest_files=files), LOCAL, "qemu+tcp://%s/system")
    ((_, uri, xml),) = source.sent
    # %s is the destination's inbound address; the memory goes there too
    assert uri == "qemu+tcp://192.0.2.12/system"
    assert source.options == [{"migrate_uri": "tcp://192.0.2.12", "copy_storage": True}]
    doc = etree.fromstring(xml.encode())
    assert doc.find("devices/disk/source").get("file") == files["disk"]
    assert doc.find("devices/serial/log").get("file") == files["console_log"]
    mark = doc.find("metadata/{https://pcifleet.dev/xmlns/domain/1.0}instance")
    assert mark.get("host") == "compute2@sim"


def test_a_failed_destination_removes_the_disk_it_prepared(
    hosts: tuple[XmlDriver, XmlDriver], tmp_path: Path
) -> None:
    source, dest = hosts
    disks: Disks = host_disks(tmp_path / "b")
    files = live_prepare(payload(), LOCAL, dest_host(tmp_path))["dest_files"]
    sent = live_source(source, source_task(dest_files=files), LOCAL)
    with pytest.raises(TaskFailed):
        live_dest(dest, {"instance": {"uuid": UUID, "name": "vm <1>"},
                         "domain_xml": sent["domain_xml"],
                         "plug": [direct_port("0000:3b:1f.7")]}, LOCAL, disks)  # fmt: skip
    with pytest.raises(DomainNotFound):
        dest.info(UUID)
    assert not disks.path_of(UUID).exists()
