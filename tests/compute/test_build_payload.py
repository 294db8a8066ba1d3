"""The controller's build payload, now made by ``BuildTask``, keeps its wire shape."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pcifleet.compute.placement import build_payload
from pcifleet.store import claims
from pcifleet.store.cloud import ServerDetails
from pcifleet.virt.tasks import BuildTask
from tests.virt.test_tasks import BUILD, GPU, UUID, VF

IMAGE = BUILD["image"]


class FakeSession:
    def get(self, model: Any, key: str) -> Any:
        if model is ServerDetails:
            assert key == UUID
            # The flavor snapshot taken at boot (servers.flavor_snapshot's keys).
            return SimpleNamespace(flavor={"disk": 20, "original_name": "m1.sriov", "vcpus": 2})
        assert key == IMAGE["id"]
        return SimpleNamespace(**{k: v for k, v in IMAGE.items() if k != "file"})


def _port(wire: dict[str, Any]) -> Any:
    return SimpleNamespace(
        id=wire["id"],
        mac_address=wire["mac_address"],
        vnic_type=wire["vnic_type"],
        network_id=wire["network_id"],
        pci_request_id=wire["pci_request_id"],
        binding_profile=wire["binding:profile"],
        vif_type=wire["binding:vif_type"],
        vif_details=wire["binding:vif_details"],
    )


def _device(wire: dict[str, Any]) -> claims.ClaimedDevice:
    return claims.ClaimedDevice(
        address=wire["address"],
        request_id=wire["request_id"],
        vendor_id=wire["vendor_id"],
        product_id=wire["product_id"],
        dev_type=wire["dev_type"],
        parent_addr=wire["parent_addr"],
        numa_node=0,
        ifname=None,
        tags={"physical_network": "physnet1"},
        extra={},
    )


def test_build_payload_is_the_shape_agents_have_always_read() -> None:
    instance = SimpleNamespace(**BUILD["instance"])
    payload = build_payload(
        FakeSession(),  # type: ignore[arg-type]
        instance,  # type: ignore[arg-type]
        "host1",
        [_port(p) for p in BUILD["ports"]],
        [_device(d) for d in BUILD["devices"]],
    )
    assert payload == BUILD
    task = BuildTask.from_dict(payload)
    assert (task.instance.uuid, str(task.ports[0].vf_address)) == (UUID, VF)
    assert [str(d.address) for d in task.devices] == [VF, GPU]


def test_a_server_without_a_flavor_snapshot_gets_the_image_sized_disk() -> None:
    class NoDetails(FakeSession):
        def get(self, model: Any, key: str) -> Any:
            return None if model is ServerDetails else super().get(model, key)

    instance = SimpleNamespace(**BUILD["instance"])
    payload = build_payload(
        NoDetails(),  # type: ignore[arg-type]
        instance,  # type: ignore[arg-type]
        "host1",
        [_port(p) for p in BUILD["ports"]],
        [_device(d) for d in BUILD["devices"]],
    )
    assert (payload["instance"]["root_gb"], payload["instance"]["flavor_name"]) == (None, None)
