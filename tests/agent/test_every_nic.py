"""A server with a normal, a direct and a macvtap port gets all three NICs, in
port order, on the xml driver and on libvirt's test:///default (whose test
driver defines and starts a bridge interface whose bridge does not exist)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from pcifleet.agent.bridges import BridgeError
from pcifleet.agent.tasks import TaskFailed, build, plan_devices
from pcifleet.virt import BridgeInterfaceSpec, VirtDriver, get_driver
from pcifleet.virt.tasks import BridgeBinding
from tests.agent.test_tasks import LOCAL, UUID, fake_image, host_disks
from tests.system import unavailable
from tests.virt.conftest import fresh_test_host

DIRECT_VF = "0000:3b:02.1"
MACVTAP_VF = "0000:3b:02.2"
BRIDGE = BridgeBinding("brq5d1a8c2e-93", "vlan", "physnet1", 300)


def _sriov(port_id: str, vnic: str, mac: str, vf: str, request: str) -> dict[str, Any]:
    return {
        "id": port_id,
        "mac_address": mac,
        "vnic_type": vnic,
        "pci_request_id": request,
        "binding:profile": {"pci_vendor_info": "8086:154c", "pci_slot": vf},
        "binding:vif_type": "hw_veb",
        "binding:vif_details": {"vlan": "100", "port_filter": False},
    }


def every_nic(normal_details: dict[str, Any] | None = None) -> dict[str, Any]:
    normal = {
        "id": "7e3f1a2b-0c4d-4e5f-8a9b-1c2d3e4f5a6b",
        "mac_address": "fa:16:3e:00:00:0a",
        "vnic_type": "normal",
        "pci_request_id": None,
        "binding:vif_type": "bridge",
        "binding:vif_details": normal_details or BRIDGE.to_dict() | {"port_filter": False},
    }
    return {
        "instance": {"uuid": UUID, "name": "every-nic", "image_id": "img"},
        "ports": [
            normal,
            _sriov("p-direct", "direct", "fa:16:3e:00:00:0b", DIRECT_VF, "req-d"),
            _sriov("p-macvtap", "macvtap", "fa:16:3e:00:00:0c", MACVTAP_VF, "req-m"),
        ],
        "devices": [
            {"address": DIRECT_VF, "request_id": "req-d", "for_port": True},
            {"address": MACVTAP_VF, "request_id": "req-m", "for_port": True},
        ],
    }


class Recorder:
    """A host networking step that only notes what it was asked to plug."""

    def __init__(self, fail: bool = False) -> None:
        self.plugged: list[BridgeBinding] = []
        self.fail = fail

    def plug(self, binding: BridgeBinding) -> None:
        if self.fail:
            raise BridgeError("interface eth9 of physical network physnet1 does not exist")
        self.plugged.append(binding)


@pytest.fixture(params=["xml", "libvirt"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VirtDriver]:
    if request.param == "xml":
        drv = get_driver("xml", state_dir=tmp_path / "state")
    else:
        try:
            import libvirt  # noqa: F401
        except ImportError as exc:
            unavailable(f"libvirt-python does not import ({exc})")
        fresh_test_host()
        drv = get_driver("libvirt", uri="test:///default")
    with drv:
        yield drv


def test_the_plan_keeps_port_order_and_names_each_bridge_once() -> None:
    data = every_nic()
    data["ports"].append({**data["ports"][0], "id": "second", "mac_address": "fa:16:3e:00:00:0d"})
    plan = plan_devices(data, LOCAL)
    kinds = [
        "bridge" if isinstance(i, BridgeInterfaceSpec) else i.vnic_type for i in plan.interfaces
    ]
    assert kinds == ["bridge", "direct", "macvtap", "bridge"]
    assert plan.bridges == (BRIDGE,)
    assert plan.hostdevs == ()


def test_all_three_nics_in_port_order(driver: VirtDriver, tmp_path: Path) -> None:
    networking = Recorder()
    details = build(
        driver,
        every_nic(),
        LOCAL,
        fake_image(tmp_path),
        host_disks(tmp_path),
        networking=networking,
    )
    assert networking.plugged == [BRIDGE]
    assert details["bridges"] == ["brq5d1a8c2e-93"]
    assert details["interfaces"] == [DIRECT_VF, MACVTAP_VF]
    assert driver.info(UUID).running
    nics = etree.fromstring(driver.get_xml(UUID).encode()).findall("devices/interface")
    assert [(n.get("type"), n.find("mac").get("address")) for n in nics] == [
        ("bridge", "fa:16:3e:00:00:0a"),
        ("hostdev", "fa:16:3e:00:00:0b"),
        ("direct", "fa:16:3e:00:00:0c"),
    ]
    bridge = nics[0]
    assert bridge.find("source").get("bridge") == "brq5d1a8c2e-93"
    assert bridge.find("model").get("type") == "virtio"


def test_a_bridge_that_cannot_be_made_fails_the_build_before_any_domain(
    tmp_path: Path,
) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "state")
    with pytest.raises(TaskFailed, match="bridge brq5d1a8c2e-93: interface eth9"):
        build(
            driver,
            every_nic(),
            LOCAL,
            fake_image(tmp_path),
            host_disks(tmp_path),
            networking=Recorder(fail=True),
        )
    assert driver.list() == []


def test_a_normal_port_from_an_older_controller_gets_no_nic_as_before(tmp_path: Path) -> None:
    driver = get_driver("xml", state_dir=tmp_path / "state")
    details = build(
        driver, every_nic({"port_filter": False}), LOCAL, fake_image(tmp_path), host_disks(tmp_path)
    )
    assert details["bridges"] == []
    nics = etree.fromstring(driver.get_xml(UUID).encode()).findall("devices/interface")
    assert [n.get("type") for n in nics] == ["hostdev", "direct"]
