"""The task models: today's wire shapes round-trip exactly, and bad fields are named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pcifleet.pci import DevType, PciAddress
from pcifleet.virt import InvalidVirtSpec
from pcifleet.virt.tasks import (
    POWER_ACTIONS,
    BuildTask,
    ConsoleTask,
    DeleteTask,
    InstanceRef,
    InvalidTask,
    MoveDisk,
    MoveSourceTask,
    PowerTask,
)

UUID = "6f1c8d2e-4b7a-4c3e-9d5f-0a1b2c3d4e5f"
VF = "0000:3b:02.1"
GPU = "0000:5e:00.0"

# Exactly what compute.placement.build_payload writes for a server with one
# SR-IOV port, one normal port and a GPU (the previous version's shape, plus the
# image's os_hash and the instance's root_gb, project_id and flavor_name).
BUILD: dict[str, Any] = {
    "image": {
        "id": "0d1e2f3a-0000-4000-8000-000000000001",
        "disk_format": "qcow2",
        "size": 1048576,
        "checksum": "d41d8cd98f00b204e9800998ecf8427e",
        "os_hash_algo": "sha512",
        "os_hash_value": "cf83e1357eefb8bd" + "0" * 112,
        "file": "/pcifleet/v1/hosts/host1/images/0d1e2f3a-0000-4000-8000-000000000001/file",
    },
    "instance": {
        "uuid": UUID,
        "name": "vm <1>",
        "vcpus": 2,
        "memory_mb": 2048,
        "image_id": "0d1e2f3a-0000-4000-8000-000000000001",
        "numa_cells": [0],
        "root_gb": 20,
        "project_id": "9a8b7c6d5e4f40312233445566778899",
        "flavor_name": "m1.sriov",
    },
    "ports": [
        {
            "id": "port-1",
            "mac_address": "fa:16:3e:00:00:01",
            "vnic_type": "direct",
            "network_id": "net-1",
            "pci_request_id": "req-port",
            "binding:profile": {
                "pci_vendor_info": "8086:154c",
                "pci_slot": VF,
                "physical_network": "physnet1",
            },
            "binding:vif_type": "hw_veb",
            "binding:vif_details": {"port_filter": False, "vlan": "100"},
        },
        {
            "id": "port-2",
            "mac_address": "fa:16:3e:00:00:02",
            "vnic_type": "normal",
            "network_id": "net-2",
            "pci_request_id": None,
            "binding:profile": {"anything": ["an", "admin", {"set": 1}]},
            "binding:vif_type": "bridge",
            "binding:vif_details": {
                "port_filter": False,
                "bridge_name": "brqnet-2",
                "network_type": "vlan",
                "physical_network": "physnet2",
                "segmentation_id": 300,
            },
        },
    ],
    "devices": [
        {
            "address": VF,
            "vendor_id": "8086",
            "product_id": "154c",
            "dev_type": "type-VF",
            "parent_addr": "0000:3b:00.0",
            "request_id": "req-port",
            "for_port": True,
        },
        {
            "address": GPU,
            "vendor_id": "10de",
            "product_id": "1db4",
            "dev_type": "type-PCI",
            "parent_addr": None,
            "request_id": "req-gpu",
            "for_port": False,
        },
    ],
}


def changed(path: str, value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of ``data`` (BUILD) with the value at ``a.b[1].c`` set (or removed: ...)."""
    out = copy.deepcopy(BUILD if data is None else data)
    node: Any = out
    keys: list[Any] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        keys.append(name)
        if index:
            keys.append(int(index.rstrip("]")))
    for key in keys[:-1]:
        node = node[key]
    if value is ...:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


def test_the_build_payload_round_trips_exactly() -> None:
    task = BuildTask.from_dict(BUILD)
    assert task.to_dict() == BUILD
    assert BuildTask.from_dict(task.to_dict()) == task


def test_typed_fields_of_a_build() -> None:
    task = BuildTask.from_dict(BUILD)
    sriov, normal = task.ports
    assert sriov.sriov and not normal.sriov
    assert sriov.vf_address == PciAddress.parse(VF)
    assert (sriov.vif_details.vlan, sriov.profile.physical_network) == (100, "physnet1")
    assert normal.profile.pci_slot is None  # a normal port's binding stays plain JSON
    assert task.devices[0].dev_type is DevType.VF
    assert task.instance.numa_cells == (0,)
    iface = sriov.interface()
    assert (str(iface.address), iface.vlan, iface.vif_type) == (VF, 100, "hw_veb")


def test_an_older_sparse_payload_still_reads() -> None:
    # What the agent tolerated before: informational keys may be absent.
    data = {
        "instance": {"uuid": UUID.upper()},
        "ports": [{"id": "p", "vnic_type": "normal"}],
        "devices": [{"address": GPU.upper(), "request_id": "r"}],
    }
    task = BuildTask.from_dict(data)
    assert task.instance.uuid == UUID and task.image is None
    assert str(task.devices[0].address) == GPU and task.devices[0].for_port is False


def test_a_payload_from_before_root_gb_reads_with_the_image_sized_disk() -> None:
    data = copy.deepcopy(BUILD)
    for key in ("root_gb", "project_id", "flavor_name"):
        del data["instance"][key]
    for key in ("os_hash_algo", "os_hash_value"):
        del data["image"][key]
    task = BuildTask.from_dict(data)
    assert (task.instance.root_gb, task.instance.project_id, task.instance.flavor_name) == (
        None,
        None,
        None,
    )
    assert task.image is not None and task.image.os_hash_value is None
    assert BuildTask.from_dict(task.to_dict()) == task


def test_digests_are_kept_lower_case() -> None:
    task = BuildTask.from_dict(changed("image.checksum", "D41D8CD98F00B204E9800998ECF8427E"))
    assert task.image is not None and task.image.checksum == BUILD["image"]["checksum"]


def test_a_flat_network_keeps_its_vlan_zero_on_the_wire_but_tags_nothing() -> None:
    data = changed("ports[0].binding:vif_details.vlan", "0")
    task = BuildTask.from_dict(data)
    assert task.to_dict() == data
    assert task.ports[0].interface().vlan is None


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "ports[0].binding:profile.pci_slot",
            "0000:zz:02.1",
            "ports[0].binding:profile.pci_slot: ",
        ),
        (
            "ports[0].binding:profile.pci_slot",
            ...,
            "ports[0].binding:profile.pci_slot: is required",
        ),
        ("ports[0].binding:profile.pci_vendor_info", "8086", "ports[0].binding:profile.pci_vend"),
        ("ports[0].binding:vif_details.vlan", "4095", "ports[0].binding:vif_details.vlan: 4095"),
        ("ports[0].binding:vif_details.vlan", "1e3", "ports[0].binding:vif_details.vlan: '1e3' is"),
        ("ports[0].mac_address", ..., "ports[0].mac_address: is required for an SR-IOV port"),
        ("ports[1].vnic_type", "smartnic", "ports[1].vnic_type: 'smartnic' is not one of"),
        ("ports[1].binding:profile", [1], "ports[1].binding:profile: must be a JSON object"),
        ("ports[1].id", "x" * 10_000, "ports[1].id: is longer than 255 characters"),
        ("ports", {"a": 1}, "ports: must be a list"),
        ("devices[1].address", 5, "devices[1].address: PCI address must be a string"),
        ("devices[1].request_id", ..., "devices[1].request_id: is required"),
        ("devices[1].vendor_id", "10dex", "devices[1].vendor_id: "),
        ("devices[1].dev_type", "type-GPU", "devices[1].dev_type: 'type-GPU' is not one of"),
        ("devices[1].for_port", "yes", "devices[1].for_port: must be true or false"),
        ("instance.uuid", "../../etc", "instance.uuid: '../../etc' is not a UUID"),
        ("instance.uuid", "a" * 1_000_000, "instance.uuid: 'aaaa"),
        ("instance.vcpus", -1, "instance.vcpus: -1 is outside 0..4096"),
        ("instance.memory_mb", True, "instance.memory_mb: must be a whole number, got True"),
        ("instance.image_id", "../secrets", "instance.image_id: '../secrets' is not an id"),
        ("instance.numa_cells", [0, -3], r"instance.numa_cells[1]: -3 is outside"),
        ("image.size", -1, "image.size: -1 is outside 0.."),
        ("instance.root_gb", -1, "instance.root_gb: -1 is outside 0..65536"),
        ("instance.root_gb", 10**15, "instance.root_gb: 1000000000000000 is outside 0..65536"),
        ("instance.root_gb", "20", "instance.root_gb: must be a whole number, got '20'"),
        ("instance.root_gb", 1.5, "instance.root_gb: must be a whole number, got 1.5"),
        ("instance.project_id", "p" * 65, "instance.project_id: is longer than 64 characters"),
        ("instance.flavor_name", 7, "instance.flavor_name: must be a string, got 7"),
        ("image.checksum", "not-hex!", "image.checksum: 'not-hex!' is not a hex digest"),
        ("image.os_hash_algo", "crc32", "image.os_hash_algo: 'crc32' is not one of"),
        ("image.os_hash_value", "z" * 128, "image.os_hash_value: 'zzzz"),
        ("image.file", "http://elsewhere/x", "image.file: 'http://elsewhere/x' must be a path"),
        ("instance", ..., "instance: is required"),
        ("disk", "x", "disk: must be a JSON object"),
        ("disk", {"migration": "../x", "sha256": "a" * 64, "size": 1},
         "disk.migration: '../x' is not a UUID"),
        ("disk", {"migration": UUID, "sha256": "z" * 64, "size": 1}, "disk.sha256: 'zzzz"),
        ("disk", {"migration": UUID, "sha256": "a" * 63, "size": 1}, "disk.sha256: 'aaaa"),
        ("disk", {"migration": UUID, "sha256": 7, "size": 1}, "disk.sha256: must be a string"),
        ("disk", {"migration": UUID, "sha256": "a" * 64, "size": -1}, "disk.size: -1 is outside"),
        ("disk", {"migration": UUID, "sha256": "a" * 64}, "disk.size: is required"),
        ("disk", {"sha256": "a" * 64, "size": 1}, "disk.migration: is required"),
    ],
)  # fmt: skip
def test_a_bad_field_is_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidTask) as excinfo:
        BuildTask.from_dict(changed(path, value))
    assert str(excinfo.value).startswith(message)
    assert len(str(excinfo.value)) < 400  # a huge value is never echoed whole


def test_interface_errors_name_the_port_field() -> None:
    task = BuildTask.from_dict(changed("ports[0].binding:vif_type", "ovs"))
    with pytest.raises(InvalidVirtSpec, match=r"^binding:vif_type: 'ovs' is not one of"):
        task.ports[0].interface()
    task = BuildTask.from_dict(changed("ports[0].mac_address", "01:00:5e:00:00:01"))
    with pytest.raises(InvalidVirtSpec, match=r"^mac_address: .* multicast"):
        task.ports[0].interface()


# -- the small tasks -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"instance": {"uuid": UUID, "name": "vm"}},
        {"instance": {"uuid": UUID, "name": None}},
    ],
)
def test_delete_round_trips(data: dict[str, Any]) -> None:
    assert DeleteTask.from_dict(data).to_dict() == data


@pytest.mark.parametrize("action", POWER_ACTIONS)
def test_power_round_trips_with_and_without_a_timeout(action: str) -> None:
    bare = {"instance": {"uuid": UUID, "name": "vm"}, "action": action}
    assert PowerTask.from_dict(bare).to_dict() == bare
    timed = {**bare, "timeout": 30.0}
    assert PowerTask.from_dict(timed).to_dict() == timed
    assert PowerTask.from_dict({**bare, "timeout": None}).timeout is None


def test_the_models_build_the_payloads_the_controller_always_sent() -> None:
    ref = InstanceRef(UUID, "vm")
    assert PowerTask(ref, "stop").to_dict() == {
        "instance": {"uuid": UUID, "name": "vm"},
        "action": "stop",
    }
    assert ConsoleTask(ref, None).to_dict() == {
        "instance": {"uuid": UUID, "name": "vm"},
        "length": None,
    }
    assert DeleteTask(ref).to_dict() == {"instance": {"uuid": UUID, "name": "vm"}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"instance": {"uuid": UUID}, "length": -1}, "length: must be a whole number >= 0"),
        ({"instance": {"uuid": 7}, "length": 1}, "instance.uuid: must be a UUID string"),
        ({"instance": None}, "instance: is required"),
        ("console", "payload: must be a JSON object"),
    ],
)
def test_console_names_the_bad_field(data: Any, message: str) -> None:
    with pytest.raises(InvalidTask, match=message):
        ConsoleTask.from_dict(data)


def test_a_moves_disk_round_trips_and_only_a_move_writes_it() -> None:
    assert "disk" not in BuildTask.from_dict(BUILD).to_dict()  # a boot's payload as always
    disk = {"migration": UUID, "sha256": "AB" * 32, "size": 4096}
    task = BuildTask.from_dict({**BUILD, "disk": disk})
    assert task.disk == MoveDisk(UUID, "ab" * 32, 4096)
    assert BuildTask.from_dict(task.to_dict()) == task


def test_a_move_source_task_still_reads_as_a_stop() -> None:
    task = MoveSourceTask(InstanceRef(UUID, "vm"), UUID.upper(), 30.0)
    data = task.to_dict()
    assert MoveSourceTask.from_dict(data) == MoveSourceTask(InstanceRef(UUID, "vm"), UUID, 30.0)
    # an agent that knows only power tasks stops the guest, as before
    assert PowerTask.from_dict(data) == PowerTask(InstanceRef(UUID, "vm"), "stop", 30.0)
    with pytest.raises(InvalidTask, match="migration: 'x' is not a UUID"):
        MoveSourceTask.from_dict({**data, "migration": "x"})
    with pytest.raises(InvalidTask, match="migration: is required"):
        MoveSourceTask.from_dict({"instance": {"uuid": UUID}, "action": "stop"})


def test_the_agent_has_a_handler_for_every_power_action() -> None:
    from pcifleet.agent.actions import ACTIONS

    assert set(ACTIONS) == set(POWER_ACTIONS)


def test_opaque_json_is_bounded_in_depth_and_size() -> None:
    deep: Any = "x"
    for _ in range(5000):  # deeper than Python's recursion limit
        deep = [deep]
    with pytest.raises(InvalidTask, match=r"^ports\[1\]\.binding:profile\.a.* nested deeper"):
        BuildTask.from_dict(changed("ports[1].binding:profile", {"a": deep}))
    wide = {str(i): list(range(10)) for i in range(200)}
    with pytest.raises(InvalidTask, match="holds more than 1024 values"):
        BuildTask.from_dict(changed("ports[1].binding:profile", wide))
