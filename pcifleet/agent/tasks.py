"""Running the controller's tasks on this host: build and delete a server's domain,
and sweep away pcifleet domains the controller no longer knows.

The controller has already claimed the devices and bound the ports; the build
task carries both. Here the agent checks the devices are really on this host
(allocation), finds each SR-IOV port's device by its request_id, turns the bound
ports and alias devices into libvirt devices, and defines and starts the domain.
Any failure undoes what this task did on the host, and the controller then
releases the claim and unbinds the ports.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcifleet.pci import SRIOV_VNIC_TYPES, PciAddress, PciDevice
from pcifleet.virt import (
    DomainInfo,
    DomainNotFound,
    DomainSpec,
    HostdevSpec,
    SriovInterfaceSpec,
    VirtDriver,
    VirtDriverError,
    interface_from_port,
    server_domain_spec,
)
from pcifleet.virt.validate import IMAGE_FORMATS

log = logging.getLogger(__name__)


class TaskFailed(Exception):
    """The task cannot be done on this host; the message goes to the server's fault.

    ``details`` go to the controller with the failure (e.g. the power state now).
    """

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})


@dataclass(frozen=True)
class BuildPlan:
    hostdevs: tuple[HostdevSpec, ...]
    interfaces: tuple[SriovInterfaceSpec, ...]


def _address(text: Any, what: str) -> PciAddress:
    try:
        return PciAddress.parse(text)
    except ValueError as exc:
        raise TaskFailed(f"{what}: {exc}") from None


def plan_devices(payload: Mapping[str, Any], local: Mapping[PciAddress, PciDevice]) -> BuildPlan:
    """The libvirt devices of a build, checked against this host's inventory."""
    devices = payload.get("devices") or []
    by_request: dict[str, list[PciAddress]] = {}
    for i, dev in enumerate(devices):
        address = _address(dev.get("address"), f"devices[{i}].address")
        if address not in local:
            raise TaskFailed(f"claimed device {address} is not on this host any more")
        by_request.setdefault(str(dev.get("request_id")), []).append(address)
    interfaces: list[SriovInterfaceSpec] = []
    used: set[str] = set()
    for port in payload.get("ports") or []:
        if port.get("vnic_type") not in SRIOV_VNIC_TYPES:
            continue  # a normal port is plugged by the network backend, not passed through
        request_id = str(port.get("pci_request_id"))
        claimed = by_request.get(request_id, [])
        if len(claimed) != 1:
            raise TaskFailed(
                f"port {port.get('id')}: {len(claimed)} devices claimed for its request"
            )
        profile = port.get("binding:profile") or {}
        slot = _address(profile.get("pci_slot"), f"port {port.get('id')} binding:profile.pci_slot")
        if slot != claimed[0]:
            raise TaskFailed(f"port {port.get('id')} is bound to {slot}, claimed was {claimed[0]}")
        try:
            bound = {**port, "binding:vnic_type": port.get("vnic_type")}
            interfaces.append(interface_from_port(bound, vf_ifname=local[slot].ifname))
        except ValueError as exc:
            raise TaskFailed(f"port {port.get('id')}: {exc}") from None
        used.add(request_id)
    hostdevs = tuple(
        HostdevSpec(address)
        for request_id, addresses in by_request.items()
        if request_id not in used
        for address in addresses
    )
    return BuildPlan(hostdevs, tuple(interfaces))


def build(
    driver: VirtDriver,
    payload: Mapping[str, Any],
    local: Mapping[PciAddress, PciDevice],
    fetch_image: Callable[[str], tuple[Path, str]],
    console_dir: Path | None = None,
) -> dict[str, Any]:
    """Define and start the server's domain; returns details for the controller.

    The domain carries pcifleet's mark (so a sweep may remove it once orphaned)
    and, given ``console_dir``, logs its serial console to ``<uuid>.log`` there.
    """
    instance = payload.get("instance") or {}
    uuid = str(instance.get("uuid"))
    console_log = None if console_dir is None else str(Path(console_dir) / f"{uuid}.log")
    plan = plan_devices(payload, local)
    image_path, image_format = fetch_image(str(instance.get("image_id")))
    if image_format not in IMAGE_FORMATS:
        known = ", ".join(IMAGE_FORMATS)
        raise TaskFailed(f"image disk format {image_format!r} cannot boot here ({known})")
    try:
        spec = server_domain_spec(
            uuid,
            str(instance.get("name") or uuid),
            int(instance.get("vcpus") or 1),
            int(instance.get("memory_mb") or 512),
            str(image_path),
            hostdevs=plan.hostdevs,
            interfaces=plan.interfaces,
            image_format=image_format,
            console_log=console_log,
            managed=True,
        )
    except (ValueError, TypeError) as exc:
        raise TaskFailed(f"domain description: {exc}") from None
    # A build handed out again after an agent restart finds its domain already
    # up: the task is done, and tearing the domain down would lose the server.
    info = driver.info(uuid) if _running(driver, uuid) else _define_and_start(driver, spec)
    return {
        "domain": info.name,
        "hostdevs": [str(h.address) for h in plan.hostdevs],
        "interfaces": [str(i.address) for i in plan.interfaces if i.address is not None],
    }


def _running(driver: VirtDriver, uuid: str) -> bool:
    try:
        return driver.info(uuid).running
    except DomainNotFound:
        return False


def _define_and_start(driver: VirtDriver, spec: DomainSpec) -> DomainInfo:
    uuid = spec.uuid
    defined = False
    try:
        info = driver.define(spec)
        defined = True
        driver.start(info.uuid)
    except VirtDriverError as exc:
        if defined:
            _remove(driver, uuid)
        raise TaskFailed(f"{driver.describe().name} driver: {exc}") from None
    return info


def _remove(driver: VirtDriver, uuid: str) -> None:
    with contextlib.suppress(DomainNotFound):
        driver.destroy(uuid)
    with contextlib.suppress(DomainNotFound):
        driver.undefine(uuid)


def delete(driver: VirtDriver, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Destroy and undefine the domain; a domain already gone is fine."""
    uuid = str((payload.get("instance") or {}).get("uuid"))
    try:
        _remove(driver, uuid)
    except VirtDriverError as exc:
        raise TaskFailed(f"{driver.describe().name} driver: {exc}") from None
    return {"domain_removed": uuid}


def sweep_orphans(driver: VirtDriver, expected: set[str]) -> list[str]:
    """Destroy and undefine every pcifleet-made domain whose server is not in
    ``expected``; domains without pcifleet's mark are never touched.

    Returns the UUIDs removed. A domain that cannot be removed is logged and
    left for the next sweep.
    """
    keep = {str(u).lower() for u in expected}
    removed: list[str] = []
    for info in driver.list():
        if not info.managed or info.uuid.lower() in keep:
            continue
        log.warning(
            "removing orphan domain %s (%s, %s): the controller expects no such server here",
            info.name,
            info.uuid,
            info.state,
        )
        try:
            _remove(driver, info.uuid)
        except VirtDriverError as exc:
            log.warning("orphan domain %s stays for now: %s", info.uuid, exc)
            continue
        removed.append(info.uuid)
    return removed
