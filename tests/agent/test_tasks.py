import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from pcifleet.agent.disks import Disks
from pcifleet.agent.tasks import TaskFailed, build, delete, plan_devices
from pcifleet.virt import DomainNotFound, DomainStateError, XmlDriver, get_driver
from pcifleet.virt.tasks import TaskImage
from tests.pci.sample import sample_layout
from tests.system import need_command

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
    def fetch(image_id: str, expect: TaskImage | None = None) -> tuple[Path, str]:
        path = tmp_path / f"{image_id}.img"
        path.write_bytes(b"\0" * 512)
        return path, disk_format

    return fetch


def host_disks(tmp_path: Path) -> Disks:
    """The agent's disks under ``tmp_path``: real overlays when qemu-img is here."""
    return Disks(tmp_path / "disks", shutil.which("qemu-img"))


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
    details = build(driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    assert details["interfaces"] == [VF]
    info = driver.info(UUID)
    assert info.running
    doc = etree.fromstring(driver.get_xml(UUID).encode())
    assert doc.findtext("title") == "vm <1>"
    assert doc.find("devices/interface[@type='hostdev']/vlan/tag").get("id") == "100"
    assert doc.find("devices/hostdev/source/address").get("bus") == "0x5e"


def test_a_build_told_not_to_start_only_defines_and_keeps_it_when_handed_out_again(
    tmp_path: Path,
) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    task = {**payload(), "start": False}  # a stopped server moved here
    first = build(driver, task, LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    assert not driver.info(UUID).running
    assert build(driver, task, LOCAL, fake_image(tmp_path), host_disks(tmp_path)) == first
    assert not driver.info(UUID).running
    with pytest.raises(TaskFailed, match="start"):
        build(driver, {**payload(), "start": "no"}, LOCAL, fake_image(tmp_path),
              host_disks(tmp_path))  # fmt: skip


def test_unsupported_image_format_fails_before_anything_is_defined(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    with pytest.raises(TaskFailed, match="vmdk"):
        build(driver, payload(), LOCAL, fake_image(tmp_path, "vmdk"), host_disks(tmp_path))
    assert driver.list() == []


def test_delete_removes_the_domain_and_tolerates_a_missing_one(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    build(driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    delete(driver, payload(), host_disks(tmp_path))
    with pytest.raises(DomainNotFound):
        driver.info(UUID)
    assert delete(driver, payload(), host_disks(tmp_path)) == {"domain_removed": UUID}


def test_build_handed_out_again_keeps_the_running_domain(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    first = build(driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    again = build(driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    assert again == first
    assert driver.info(UUID).running


def test_failed_start_leaves_no_domain_behind(tmp_path: Path) -> None:
    class StartFails(XmlDriver):
        def start(self, uuid: str) -> None:
            raise DomainStateError("cannot start")

    driver = StartFails(tmp_path / "domains")
    with pytest.raises(TaskFailed, match="cannot start"):
        build(driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path))
    assert driver.list() == []


# -- the server's own disk -------------------------------------------------------------


def test_the_domain_boots_from_its_own_overlay(tmp_path: Path) -> None:
    qemu_img = need_command("qemu-img", "qemu-utils")
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    disks = Disks(tmp_path / "disks", qemu_img)
    data = payload()
    data["instance"].update(root_gb=2, project_id="proj-1", flavor_name="m1.sriov")
    details = build(driver, data, LOCAL, fake_image(tmp_path), disks)
    overlay = tmp_path / "disks" / f"{UUID}.qcow2"
    assert details["disk"] == str(overlay)
    doc = etree.fromstring(driver.get_xml(UUID).encode())
    disk = doc.find("devices/disk")
    assert disk.find("source").get("file") == str(overlay)
    assert disk.find("driver").get("type") == "qcow2"
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    assert doc.find("os/type").get("machine") == "q35"
    mark = doc.find("metadata/{https://pcifleet.dev/xmlns/domain/1.0}instance")
    assert (mark.get("project_id"), mark.get("flavor_name")) == ("proj-1", "m1.sriov")
    info = disks.info(overlay, "qcow2")
    assert info["full-backing-filename"] == str((tmp_path / "img.img").resolve())
    assert info["virtual-size"] == 2 << 30


def test_two_servers_never_share_a_disk(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    disks = host_disks(tmp_path)
    other = payload()
    other["instance"]["uuid"] = "00000000-0000-4000-8000-0000000000bb"
    other["devices"] = []
    other["ports"] = []
    build(driver, payload(), LOCAL, fake_image(tmp_path), disks)
    build(driver, other, LOCAL, fake_image(tmp_path), disks)
    sources = {
        etree.fromstring(driver.get_xml(u).encode()).find("devices/disk/source").get("file")
        for u in (UUID, other["instance"]["uuid"])
    }
    assert len(sources) == 2 and disks.servers() == {UUID, other["instance"]["uuid"]}


def test_delete_removes_the_overlay(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    disks = host_disks(tmp_path)
    build(driver, payload(), LOCAL, fake_image(tmp_path), disks)
    assert disks.servers() == {UUID}
    delete(driver, payload(), disks)
    assert disks.servers() == set()
    assert (tmp_path / "img.img").exists()  # the cached image stays for the next server


def test_a_failed_start_removes_the_overlay_too(tmp_path: Path) -> None:
    class StartFails(XmlDriver):
        def start(self, uuid: str) -> None:
            raise DomainStateError("cannot start")

    disks = host_disks(tmp_path)
    with pytest.raises(TaskFailed, match="cannot start"):
        build(StartFails(tmp_path / "domains"), payload(), LOCAL, fake_image(tmp_path), disks)
    assert disks.servers() == set()


def test_a_bad_domain_description_removes_the_overlay(tmp_path: Path) -> None:
    data = payload()
    data["instance"]["flavor_name"] = "bad\x01name"
    disks = host_disks(tmp_path)
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    with pytest.raises(TaskFailed, match=r"domain description: .*flavor_name"):
        build(driver, data, LOCAL, fake_image(tmp_path), disks)
    assert disks.servers() == set() and driver.list() == []


def test_a_flavor_disk_smaller_than_the_image_fails_before_any_domain(tmp_path: Path) -> None:
    qemu_img = need_command("qemu-img", "qemu-utils")

    def big_image(image_id: str, expect: TaskImage | None = None) -> tuple[Path, str]:
        path = tmp_path / "big.qcow2"
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), "3G"], check=True)
        return path, "qcow2"

    data = payload()
    data["instance"]["root_gb"] = 1
    driver = get_driver("xml", state_dir=tmp_path / "domains")
    disks = Disks(tmp_path / "disks", qemu_img)
    with pytest.raises(TaskFailed, match=r"root disk 1 GB is smaller than image big\.qcow2"):
        build(driver, data, LOCAL, big_image, disks)
    assert driver.list() == [] and disks.servers() == set()
