"""The agent's hot plug tasks on the xml driver: an SR-IOV port's VF and a normal
port's bridge interface go into a built domain and out again, a repeated task is
done without touching the domain, a VF not on this host fails the task, and the
domain the agent builds leaves PCIe root ports free for hot plug (checked by
libvirt's own schema)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pcifleet.agent.interfaces import attach_interface, detach_interface
from pcifleet.agent.tasks import HOTPLUG_PORTS, TaskFailed, build
from pcifleet.virt import XmlDriver
from pcifleet.virt.domain_xml import LIBVIRT_DEFAULT_DEVICES
from pcifleet.virt.tasks import InterfaceTask, InvalidTask
from tests.agent.test_tasks import LOCAL, UUID, fake_image, host_disks, payload
from tests.system import need_command

VF2 = "0000:3b:02.2"


def sriov_task(address: str = VF2, **port: Any) -> dict[str, Any]:
    return {
        "instance": {"uuid": UUID, "name": "vm"},
        "port": {
            "id": "port-9",
            "mac_address": "fa:16:3e:00:00:09",
            "vnic_type": "direct",
            "pci_request_id": "req-9",
            "binding:profile": {"pci_vendor_info": "8086:154c", "pci_slot": address},
            "binding:vif_type": "hw_veb",
            "binding:vif_details": {"vlan": "200", "port_filter": False},
            **port,
        },
        "device": {"address": address, "request_id": "req-9", "for_port": True},
    }


def bridge_task() -> dict[str, Any]:
    return {
        "instance": {"uuid": UUID, "name": "vm"},
        "port": {
            "id": "port-b",
            "mac_address": "fa:16:3e:00:00:0b",
            "vnic_type": "normal",
            "binding:vif_type": "bridge",
            "binding:vif_details": {"bridge_name": "brq12345678-ab", "network_type": "flat"},
        },
        "device": None,
    }


@pytest.fixture
def built(tmp_path: Path) -> XmlDriver:
    driver = XmlDriver(tmp_path / "domains")
    build(driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    return driver


def test_an_sriov_port_is_plugged_and_unplugged(built: XmlDriver) -> None:
    details = attach_interface(built, sriov_task(), LOCAL)
    assert details == {"port_id": "port-9", "device": VF2}
    xml = built.get_xml(UUID)
    assert "fa:16:3e:00:00:09" in xml and 'function="0x2"' in xml and 'id="200"' in xml
    # handed out again after an agent restart: done, the domain unchanged
    assert attach_interface(built, sriov_task(), LOCAL) == details
    assert built.get_xml(UUID) == xml
    detach_interface(built, sriov_task(), LOCAL)
    assert "fa:16:3e:00:00:09" not in built.get_xml(UUID)
    detach_interface(built, sriov_task(), LOCAL)  # gone already: done


def test_a_normal_port_becomes_a_bridge_interface(built: XmlDriver) -> None:
    attach_interface(built, bridge_task(), LOCAL)
    assert 'bridge="brq12345678-ab"' in built.get_xml(UUID)
    detach_interface(built, bridge_task(), LOCAL)
    assert "brq12345678-ab" not in built.get_xml(UUID)


def test_a_vf_not_on_this_host_or_taken_fails_the_task(built: XmlDriver) -> None:
    with pytest.raises(TaskFailed, match="not on this host"):
        attach_interface(built, sriov_task("0000:99:02.1"), LOCAL)
    # the VF the server booted with is in the domain already, under another MAC
    with pytest.raises(TaskFailed, match="already attached"):
        attach_interface(built, sriov_task("0000:3b:02.1"), LOCAL)


def test_a_malformed_task_names_the_field(built: XmlDriver) -> None:
    bad = sriov_task()
    bad["device"] = None
    with pytest.raises(TaskFailed, match="device"):
        attach_interface(built, bad, LOCAL)
    with pytest.raises(InvalidTask, match="request"):
        InterfaceTask.from_dict(sriov_task() | {"device": {"address": VF2, "request_id": "x"}})


def test_the_built_domain_keeps_root_ports_free_for_hot_plug(
    built: XmlDriver, tmp_path: Path
) -> None:
    validate = need_command("virt-xml-validate", "libvirt-clients")
    before = built.get_xml(UUID)
    # libvirt puts the devices it knows at define time on root ports first
    # (the disk, each NIC and hostdev, its own defaults): those come on top.
    placed = 1 + before.count("<interface ") + before.count("<hostdev ") + LIBVIRT_DEFAULT_DEVICES
    attach_interface(built, sriov_task(), LOCAL)
    xml = built.get_xml(UUID)
    assert xml.count('model="pcie-root-port"') == HOTPLUG_PORTS + placed
    assert xml.count('model="pcie-root"') == 1  # index 0, before the ports
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    done = subprocess.run([validate, str(path), "domain"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
