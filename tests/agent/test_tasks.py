from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from pcifleet.agent.tasks import TaskFailed, build, delete, plan_devices
from pcifleet.virt import DomainNotFound, DomainStateError, XmlDriver, get_driver
from tests.pci.sample import sample_layout

UUID = "6f1c8d2e-4b7a-4c3e-9d5f-0a1b2c3d4e5f"
VF = "0000:3b:02.1"
GPU = "0000:5e:00.0"
LOCAL = {d.address: d for d in sample_layout().devices()}


def payload(vnic_type: str = "direct", **port_changes: Any) -> dict[str, Any]:
    port = {
        "id": "port-1",
        "mac_address": "fa:16:3e:00:00:01",
        "vnic_type": vnic_type,
        "pci_request_id": "req-port",
        "binding:profile": {
            "pci_vendor_info": "8086:154c",
            "pci_slot": VF,
            "physical_network": "physnet1",
        },
        "binding:vif_type": "hw_veb",
        "binding:vif_details": {"vlan": "100", "port_filter": False},
    }
    port.update(port_changes)
    return {
        "instance": {
            "uuid": UUID,
            "name": "vm <1>",
            "vcpus": 2,
            "memory_mb": 2048,
            "image_id": "img",
        },
        "ports": [port, {"id": "port-2", "vnic_type": "normal", "pci_request_id": None}],
        "devices": [
            {"address": VF, "request_id": "req-port", "for_port": True},
            {"address": GPU, "request_id": "req-gpu", "for_port": False},
        ],
    }


def fake_image(tmp_path: Path, disk_format: str = "raw"):  # type: ignore[no-untyped-def]
    def fetch(image_id: str) -> tuple[Path, str]:
        path = tmp_path / f"{image_id}.img"
        path.write_bytes(b"\0" * 512)
        return path, disk_format

    return fetch


def test_plan_maps_ports_to_their_vf_and_the_rest_to_hostdevs() -> None:
    plan = plan_devices(payload(), LOCAL)
    assert [str(h.address) for h in plan.hostdevs] == [GPU]
    (iface,) = plan.interfaces
    assert (str(iface.address), iface.vlan, iface.mac) == (VF, 100, "fa:16:3e:00:00:01")


def test_macvtap_port_uses_the_vf_netdev() -> None:
    plan = plan_devices(payload("macvtap"), LOCAL)
    assert plan.interfaces[0].vf_ifname == LOCAL[plan.interfaces[0].address].ifname  # type: ignore[index]


def test_device_missing_from_host_fails_the_build() -> None:
    data = payload()
    data["devices"][1]["address"] = "0000:99:00.0"
    with pytest.raises(TaskFailed, match=r"0000:99:00\.0 is not on this host"):
        plan_devices(data, LOCAL)


def test_port_bound_to_another_device_than_claimed_fails() -> None:
    data = payload(**{"binding:profile": {"pci_slot": "0000:3b:02.2"}})
    with pytest.raises(TaskFailed, match=r"bound to 0000:3b:02\.2"):
        plan_devices(data, LOCAL)


def test_port_without_its_device_fails() -> None:
    data = payload(pci_request_id="other")
    with pytest.raises(TaskFailed, match="0 devices claimed"):
        plan_devices(data, LOCAL)


def test_build_defines_and_starts_the_domain(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    details = build(driver, payload(), LOCAL, fake_image(tmp_path))
    assert details["interfaces"] == [VF]
    info = driver.info(UUID)
    assert info.running
    doc = etree.fromstring(driver.get_xml(UUID).encode())
    assert doc.findtext("title") == "vm <1>"
    assert doc.find("devices/interface[@type='hostdev']/vlan/tag").get("id") == "100"
    assert doc.find("devices/hostdev/source/address").get("bus") == "0x5e"


def test_unsupported_image_format_fails_before_anything_is_defined(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    with pytest.raises(TaskFailed, match="vmdk"):
        build(driver, payload(), LOCAL, fake_image(tmp_path, "vmdk"))
    assert driver.list() == []


def test_delete_removes_the_domain_and_tolerates_a_missing_one(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    build(driver, payload(), LOCAL, fake_image(tmp_path))
    delete(driver, payload())
    with pytest.raises(DomainNotFound):
        driver.info(UUID)
    assert delete(driver, payload()) == {"domain_removed": UUID}


def test_build_handed_out_again_keeps_the_running_domain(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    first = build(driver, payload(), LOCAL, fake_image(tmp_path))
    again = build(driver, payload(), LOCAL, fake_image(tmp_path))
    assert again == first
    assert driver.info(UUID).running


def test_failed_start_leaves_no_domain_behind(tmp_path: Path) -> None:
    class StartFails(XmlDriver):
        def start(self, uuid: str) -> None:
            raise DomainStateError("cannot start")

    driver = StartFails(tmp_path / "domains")
    with pytest.raises(TaskFailed, match="cannot start"):
        build(driver, payload(), LOCAL, fake_image(tmp_path))
    assert driver.list() == []
