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

from pcifleet.agent.live import live_dest, live_rollback, live_source
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

    def can_migrate(self) -> bool:
        return True

    def migrate(self, uuid: str, dest_uri: str, dest_xml: str) -> None:
        self.sent = [*getattr(self, "sent", []), (uuid, dest_uri, dest_xml)]


def test_a_driver_that_migrates_gets_the_rewritten_xml_and_the_host_uri(tmp_path: Path) -> None:
    source = MigratingDriver(tmp_path / "a" / "domains")
    build(source, two_ports(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    done = live_source(source, source_task(), LOCAL, "qemu+tls://%s/system")
    assert done == {"migrated": True}
    ((uuid, uri, xml),) = source.sent
    assert (uuid, uri) == (UUID, "qemu+tls://compute2/system")
    assert 'dev="ens1f0v7"' in xml and 'bus="0xd8"' in xml
    # without a URI the agents carry the XML, whatever the driver can do
    assert "domain_xml" in live_source(source, source_task(unplug=[]), LOCAL)
