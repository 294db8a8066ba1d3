"""Port binding: a normal port names its network's bridge and the bridge's uplink."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from pcifleet.compute.binding import bind_normal_port
from pcifleet.virt.tasks import BridgeBinding, TaskPort

NET = "5d1a8c2e-93f4-4b7e-8d21-0c6a9e4f7b13"


class OneNetwork:
    def __init__(self, network: Any) -> None:
        self.network = network

    def get(self, model: Any, key: str) -> Any:
        assert key == self.network.id
        return self.network


@pytest.mark.parametrize(
    ("kind", "physnet", "seg", "expected"),
    [
        ("vlan", "physnet1", 300, BridgeBinding("brq5d1a8c2e-93", "vlan", "physnet1", 300)),
        ("flat", "physnet2", None, BridgeBinding("brq5d1a8c2e-93", "flat", "physnet2")),
        ("local", None, None, BridgeBinding("brq5d1a8c2e-93", "local")),
    ],
)
def test_a_normal_port_is_bound_like_neutrons_linuxbridge(
    kind: str, physnet: str | None, seg: int | None, expected: BridgeBinding
) -> None:
    network = SimpleNamespace(
        id=NET, network_type=kind, physical_network=physnet, segmentation_id=seg
    )
    port = SimpleNamespace(id="p1", network_id=NET, vnic_type="normal")
    bind_normal_port(OneNetwork(network), port, host="host1")  # type: ignore[arg-type]
    assert (port.binding_host_id, port.vif_type) == ("host1", "bridge")
    assert port.vif_details == {
        "port_filter": False,
        "bridge_name": "brq5d1a8c2e-93",
        "network_type": kind,
        "physical_network": physnet,
        "segmentation_id": seg,
    }
    wire = {
        "id": "p1",
        "vnic_type": "normal",
        "mac_address": "fa:16:3e:00:00:01",
        "binding:vif_type": "bridge",
        "binding:vif_details": port.vif_details,
    }
    assert TaskPort.from_dict(wire).bridge == expected
