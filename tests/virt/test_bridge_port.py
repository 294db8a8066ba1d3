"""Normal ports bound to a Linux bridge: their typed binding on the wire, the
interface they become, and payloads from before bridges were named."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from pcifleet.virt import BridgeInterfaceSpec, DomainSpec, InvalidVirtSpec, interface_xml
from pcifleet.virt.tasks import BridgeBinding, BuildTask, InvalidTask, TaskPort, bridge_name_for
from tests.virt.test_tasks import BUILD, UUID

NET = "5d1a8c2e-93f4-4b7e-8d21-0c6a9e4f7b13"


def _normal(details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "7e3f1a2b-0c4d-4e5f-8a9b-1c2d3e4f5a6b",
        "mac_address": "fa:16:3e:00:00:09",
        "vnic_type": "normal",
        "network_id": NET,
        "pci_request_id": None,
        "binding:profile": {},
        "binding:vif_type": "bridge",
        "binding:vif_details": details,
    }


def test_bridge_name_is_neutrons_linuxbridge_name() -> None:
    assert bridge_name_for(NET) == "brq5d1a8c2e-93"
    assert len(bridge_name_for(NET)) == 14


def test_a_bridge_port_reads_typed_and_round_trips() -> None:
    task = BuildTask.from_dict(BUILD)
    normal = task.ports[1]
    assert normal.bridge == BridgeBinding("brqnet-2", "vlan", "physnet2", 300)
    assert normal.vif_details.extra == {"port_filter": False}
    assert task.to_dict() == BUILD


def test_a_bridge_port_becomes_a_virtio_interface_on_its_bridge() -> None:
    details = BridgeBinding(bridge_name_for(NET), "flat", "physnet1").to_dict()
    port = TaskPort.from_dict(_normal(details))
    spec = port.bridge_interface()
    assert spec == BridgeInterfaceSpec("fa:16:3e:00:00:09", "brq5d1a8c2e-93", "tap7e3f1a2b-0c")
    assert interface_xml(spec) == (
        '<interface type="bridge">\n'
        '  <mac address="fa:16:3e:00:00:09"/>\n'
        '  <source bridge="brq5d1a8c2e-93"/>\n'
        '  <target dev="tap7e3f1a2b-0c"/>\n'
        '  <model type="virtio"/>\n'
        "</interface>\n"
    )


def test_an_older_payload_without_a_bridge_name_still_reads() -> None:
    old = _normal({"port_filter": False})
    port = TaskPort.from_dict(old)
    assert port.bridge is None
    assert port.to_dict() == old
    with pytest.raises(InvalidVirtSpec, match="no bridge"):
        port.bridge_interface()


def test_a_port_id_that_makes_no_tap_name_lets_libvirt_pick_one() -> None:
    data = _normal(BridgeBinding("brqx").to_dict())
    data["id"] = "port with spaces"
    assert TaskPort.from_dict(data).bridge_interface().target_dev is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("bridge_name", "a-bridge-name-too-long", "bridge_name: is longer than 15"),
        ("bridge_name", "bad/name", "bridge_name"),
        ("network_type", "vxlan", "network_type: 'vxlan' is not one of"),
        ("segmentation_id", 4095, "segmentation_id: "),
        ("segmentation_id", "300", "segmentation_id: must be a whole number"),
        ("physical_network", None, "physical_network: a vlan network needs one"),
    ],
)
def test_bad_bridge_fields_are_named(key: str, value: Any, message: str) -> None:
    details = BridgeBinding("brqnet", "vlan", "physnet1", 100).to_dict() | {key: value}
    with pytest.raises(InvalidTask, match=re.escape(f"ports[0].binding:vif_details.{message}")):
        BuildTask.from_dict({"instance": BUILD["instance"], "ports": [_normal(details)]})


def test_a_flat_network_has_no_segmentation_id() -> None:
    details = BridgeBinding("brqnet", "flat", "physnet1").to_dict() | {"segmentation_id": 5}
    with pytest.raises(InvalidTask, match="segmentation_id: a flat network has none"):
        TaskPort.from_dict(_normal(details))


def test_a_domain_refuses_two_interfaces_with_one_mac() -> None:
    one = BridgeInterfaceSpec("fa:16:3e:00:00:01", "brqa")
    with pytest.raises(InvalidVirtSpec, match=r"interfaces\[1\]\.mac"):
        DomainSpec("d", UUID, 512, 1, "/i", interfaces=(one, copy.copy(one)))
