"""Hot plug on this host: the ``attach_interface`` and ``detach_interface`` tasks.

The controller has claimed the VF (for an SR-IOV port) and bound the port
before it asks; here the agent checks the VF is on this host, turns the port
into its libvirt device (``<interface type='hostdev'>``, macvtap, or a bridge
interface for a normal port, whose bridge is made first) and hands it to the
driver, which changes the running guest and the persistent config together.

A task may be handed out twice (an agent restart between doing and reporting
it), so each is done once its target holds: an attach whose device is in the
domain already, or a detach whose device is gone, reports done without
touching the domain. A failed attach leaves the domain as it was; the
controller then releases the VF and unbinds the port.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pcifleet.agent.bridges import BridgeError, HostNetworking, NoHostNetworking
from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.tasks import on_veth, parse
from pcifleet.pci import PciAddress, PciDevice
from pcifleet.virt import (
    DeviceExists,
    DeviceNotFound,
    DeviceSpec,
    VirtDriver,
    VirtDriverError,
    domain_edit,
)
from pcifleet.virt.tasks import InterfaceTask

log = logging.getLogger(__name__)


def interface_spec(
    task: InterfaceTask, local: Mapping[PciAddress, PciDevice], veth_vfs: bool = False
) -> DeviceSpec:
    """The libvirt device of the task's port, checked against this host's devices
    (``veth_vfs``: the VF netdevs are veth stand-ins, see ``tasks.on_veth``)."""
    spec = _interface_spec(task, local)
    return on_veth(spec) if veth_vfs else spec


def _interface_spec(task: InterfaceTask, local: Mapping[PciAddress, PciDevice]) -> DeviceSpec:
    port = task.port
    try:
        if not port.sriov:
            return port.bridge_interface()
        assert task.device is not None  # the task model requires it
        address = task.device.address
        if address not in local:
            raise TaskFailed(f"claimed device {address} is not on this host any more")
        if port.vf_address != address:
            raise TaskFailed(f"port {port.id} is bound to {port.vf_address}, claimed was {address}")
        return port.interface(vf_ifname=local[address].ifname)
    except ValueError as exc:
        raise TaskFailed(f"port {port.id}: {exc}") from None


def _present(driver: VirtDriver, uuid: str, spec: DeviceSpec) -> bool:
    root = domain_edit.read_domain(driver.get_xml(uuid))
    return domain_edit.find_device(root, spec) is not None


def attach_interface(
    driver: VirtDriver,
    task: InterfaceTask | Any,
    local: Mapping[PciAddress, PciDevice],
    networking: HostNetworking | None = None,
    veth_vfs: bool = False,
) -> dict[str, Any]:
    """Plug the task's port into the server's domain; details for the controller."""
    task = parse("attach_interface", InterfaceTask, task)
    uuid = task.instance.uuid
    spec = interface_spec(task, local, veth_vfs)
    if task.port.bridge is not None:
        try:
            (networking or NoHostNetworking()).plug(task.port.bridge)
        except BridgeError as exc:
            raise TaskFailed(f"bridge {task.port.bridge.bridge_name}: {exc}") from None
    try:
        driver.attach_interface(uuid, spec)
    except DeviceExists as exc:
        if not _present(driver, uuid, spec):
            raise TaskFailed(f"attach of port {task.port.id}: {exc}") from None
        log.info("server %s: port %s is attached already", uuid, task.port.id)
    except VirtDriverError as exc:
        raise TaskFailed(
            f"{driver.describe().name} driver: attach of port {task.port.id}: {exc}"
        ) from None
    return _details(task)


def detach_interface(
    driver: VirtDriver,
    task: InterfaceTask | Any,
    local: Mapping[PciAddress, PciDevice],
    veth_vfs: bool = False,
) -> dict[str, Any]:
    """Unplug the task's port from the server's domain (gone already is fine)."""
    task = parse("detach_interface", InterfaceTask, task)
    uuid = task.instance.uuid
    port = task.port
    try:
        # The VF may have left the inventory meanwhile; the domain still names it.
        spec = (
            port.bridge_interface()
            if not port.sriov
            else port.interface(vf_ifname=_ifname(task, local))
        )
    except ValueError as exc:
        raise TaskFailed(f"port {port.id}: {exc}") from None
    if veth_vfs:
        spec = on_veth(spec)
    try:
        driver.detach_interface(uuid, spec)
    except DeviceNotFound:
        log.info("server %s: port %s is not attached (any more)", uuid, port.id)
    except VirtDriverError as exc:
        raise TaskFailed(
            f"{driver.describe().name} driver: detach of port {port.id}: {exc}"
        ) from None
    return _details(task)


def _ifname(task: InterfaceTask, local: Mapping[PciAddress, PciDevice]) -> str | None:
    if task.device is None:
        return None
    found = local.get(task.device.address)
    return None if found is None else found.ifname


def _details(task: InterfaceTask) -> dict[str, Any]:
    return {
        "port_id": task.port.id,
        "device": None if task.device is None else str(task.device.address),
    }
