"""Running the controller's tasks on this host: build and delete a server's domain,
and sweep away pcifleet domains the controller no longer knows.

The controller has already claimed the devices and bound the ports; the build
task (``pcifleet.virt.tasks.BuildTask``, read with ``from_dict`` so a malformed
payload fails naming its field) carries both. Here the agent checks the devices
are really on this host (allocation), finds each SR-IOV port's device by its
request_id, turns the bound ports and alias devices into libvirt devices (a
normal port into a bridge interface, after the host networking step has made
its network's bridge), and defines and starts the domain.
Any failure undoes what this task did on the host, and the controller then
releases the claim and unbinds the ports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pcifleet.agent.bridges import BridgeError, HostNetworking, NoHostNetworking
from pcifleet.agent.disks import Disks
from pcifleet.agent.errors import TaskFailed as TaskFailed  # re-exported: its old home
from pcifleet.pci import PciAddress, PciDevice
from pcifleet.virt import (
    DomainInfo,
    DomainNotFound,
    DomainSpec,
    HostdevSpec,
    InterfaceSpec,
    SriovInterfaceSpec,
    VirtDriver,
    VirtDriverError,
    server_domain_spec,
)
from pcifleet.virt.tasks import (
    BridgeBinding,
    BuildTask,
    ConsoleTask,
    DeleteTask,
    InterfaceTask,
    InvalidTask,
    LiveDestTask,
    LiveSourceTask,
    MoveDisk,
    MoveSourceTask,
    PowerTask,
    TaskImage,
)
from pcifleet.virt.validate import IMAGE_FORMATS

log = logging.getLogger(__name__)
# Free PCIe root ports in every server's domain, for interfaces attached while it
# runs (``openstack server add port``); a guest with more must be rebuilt.
HOTPLUG_PORTS = 4
T = TypeVar(
    "T",
    BuildTask,
    DeleteTask,
    PowerTask,
    ConsoleTask,
    InterfaceTask,
    LiveSourceTask,
    LiveDestTask,
    MoveSourceTask,
)
S = TypeVar("S")
# (image id, the task's image description) -> (cached file, disk format)
FetchImage = Callable[[str, TaskImage | None], tuple[Path, str]]
# (a cold move's disk, the directory to put it in) -> the checked temporary file
FetchDisk = Callable[[MoveDisk, Path], Path]


@dataclass(frozen=True)
class BuildPlan:
    """The domain's devices: ``interfaces`` in the server's port order, and the
    bridges (one per network) the host must have before the domain starts."""

    hostdevs: tuple[HostdevSpec, ...]
    interfaces: tuple[InterfaceSpec, ...]
    bridges: tuple[BridgeBinding, ...] = ()


def parse(kind: str, model: type[T], payload: Any) -> T:
    """The task model of ``payload``; a payload that does not fit fails the task
    with the field at fault. An already typed task is taken as it is."""
    if isinstance(payload, model):
        return payload
    try:
        return model.from_dict(payload)
    except InvalidTask as exc:
        raise TaskFailed(f"{kind}: {exc}") from None


def plan_devices(
    task: BuildTask | Mapping[str, Any], local: Mapping[PciAddress, PciDevice]
) -> BuildPlan:
    """The libvirt devices of a build, checked against this host's inventory."""
    task = parse("build", BuildTask, task)
    by_request: dict[str, list[PciAddress]] = {}
    for dev in task.devices:
        if dev.address not in local:
            raise TaskFailed(f"claimed device {dev.address} is not on this host any more")
        by_request.setdefault(dev.request_id, []).append(dev.address)
    interfaces: list[InterfaceSpec] = []
    bridges: dict[str, BridgeBinding] = {}
    used: set[str] = set()
    for port in task.ports:
        if not port.sriov:
            if port.bridge is None:
                # An older controller names no bridge: as before, no NIC for it.
                log.warning("port %s: no bridge in its binding, not plugged", port.id)
                continue
            try:
                interfaces.append(port.bridge_interface())
            except ValueError as exc:
                raise TaskFailed(f"port {port.id}: {exc}") from None
            bridges.setdefault(port.bridge.bridge_name, port.bridge)
            continue
        request_id = port.pci_request_id
        claimed = [] if request_id is None else by_request.get(request_id, [])
        if request_id is None or len(claimed) != 1:
            raise TaskFailed(f"port {port.id}: {len(claimed)} devices claimed for its request")
        slot = port.vf_address
        if slot != claimed[0]:
            raise TaskFailed(f"port {port.id} is bound to {slot}, claimed was {claimed[0]}")
        try:
            interfaces.append(port.interface(vf_ifname=local[claimed[0]].ifname))
        except ValueError as exc:
            raise TaskFailed(f"port {port.id}: {exc}") from None
        used.add(request_id)
    hostdevs = tuple(
        HostdevSpec(address)
        for request_id, addresses in by_request.items()
        if request_id not in used
        for address in addresses
    )
    return BuildPlan(hostdevs, tuple(interfaces), tuple(bridges.values()))


def build(
    driver: VirtDriver,
    task: BuildTask | Mapping[str, Any],
    local: Mapping[PciAddress, PciDevice],
    fetch_image: FetchImage,
    disks: Disks,
    console_dir: Path | None = None,
    networking: HostNetworking | None = None,
    owner: str | None = None,
    veth_vfs: bool = False,
    fetch_disk: FetchDisk | None = None,
) -> dict[str, Any]:
    """Define and start the server's domain (define only, when the task's
    ``start`` is False: a stopped server moved here); returns details for the
    controller.

    The image is fetched (checked against its checksums) into the host's cache,
    and the server gets its own qcow2 overlay on it from ``disks``, sized from
    the flavor's root disk; the domain's disk is that overlay. The domain carries
    pcifleet's mark (so a sweep may remove it once orphaned) and, given
    ``console_dir``, logs its serial console to ``<uuid>.log`` there.
    ``networking`` makes the bridges of the normal ports first (default: none,
    the domain only names them). ``owner`` (the agent's name for itself) goes
    into the mark, so only this agent's sweeps ever touch the domain.
    ``veth_vfs`` says the VF netdevs are veths standing in for VFs (a simulated
    host on a real libvirtd): libvirt tags only real VFs, so their macvtap
    interfaces go without their network's VLAN. A cold move's build
    (the task's ``disk``) takes the overlay its source handed over through
    ``fetch_disk`` instead of a fresh one. A failed
    build removes the domain and the overlay it made, and leaves the bridges:
    they are the network's, shared with its other servers here.
    """
    task = parse("build", BuildTask, task)
    instance = task.instance
    uuid = instance.uuid
    console_log = console_log_path(console_dir, uuid)
    plan = plan_devices(task, local)
    if veth_vfs:
        plan = _untagged_macvtaps(plan)
    # A build handed out again after an agent restart finds its domain already
    # up: the task is done, and tearing the domain (or its disk) down would lose
    # the server.
    if _running(driver, uuid) or (not task.start and _defined(driver, uuid)):
        return _details(driver.info(uuid), plan, disks.path_of(uuid))
    disk = prepare_host(task, plan, fetch_image, disks, networking, fetch_disk)
    try:
        vcpus, memory_mb = instance.vcpus or 1, instance.memory_mb or 512
        spec = server_domain_spec(
            uuid,
            instance.name or uuid,
            vcpus,
            memory_mb,
            str(disk),
            hostdevs=plan.hostdevs,
            interfaces=plan.interfaces,
            image_format="qcow2",
            console_log=console_log,
            managed=True,
            domain_type=driver.domain_type(),
            project_id=instance.project_id,
            flavor_name=instance.flavor_name,
            owner=owner,
            hotplug_ports=HOTPLUG_PORTS,
            numa_cells=instance.guest_numa_cells(vcpus, memory_mb),
        )
        info = _define_and_start(driver, spec, start=task.start)
    except (ValueError, TypeError) as exc:
        disks.remove(uuid)
        raise TaskFailed(f"domain description: {exc}") from None
    except (TaskFailed, VirtDriverError) as exc:
        disks.remove(uuid)
        if isinstance(exc, TaskFailed):
            raise
        raise TaskFailed(f"{driver.describe().name} driver: {exc}") from None
    return _details(info, plan, disk)


def rebuild_in_place(
    driver: VirtDriver,
    task: BuildTask | Mapping[str, Any],
    local: Mapping[PciAddress, PciDevice],
    fetch_image: FetchImage,
    disks: Disks,
    *build_options: Any,
) -> dict[str, Any]:
    """Rebuild the server where it is (Nova's rebuild): its domain destroyed and
    undefined, a fresh overlay on the task's image, the domain defined again
    with the same devices, and started unless the task says not to (a stopped
    server stays stopped).

    The image is fetched and the devices checked first, so a bad image or a
    missing device fails the task with the old domain untouched. After that a
    failure leaves the server without a domain (the build removes what it
    made); the controller puts it in ERROR, from which it can be rebuilt again.
    Run twice (a task handed out again), it rebuilds twice: the same server.
    ``build_options`` are ``build``'s after ``disks`` (console_dir, networking...).
    """
    task = parse("rebuild", BuildTask, task)
    uuid = task.instance.uuid
    plan_devices(task, local)
    fetch_image(str(task.instance.image_id), task.image)
    # From here the old domain is going: a failure reports no power state.
    gone = {"power_state": "nostate"}
    try:
        _remove(driver, uuid)
        disks.remove(uuid)
        return build(driver, task, local, fetch_image, disks, *build_options)
    except TaskFailed as exc:
        raise TaskFailed(str(exc), {**gone, **exc.details}) from None
    except VirtDriverError as exc:
        raise TaskFailed(f"{driver.describe().name} driver: {exc}", gone) from None


def prepare_host(
    task: BuildTask,
    plan: BuildPlan,
    fetch_image: FetchImage,
    disks: Disks,
    networking: HostNetworking | None,
    fetch_disk: FetchDisk | None = None,
) -> Path:
    """What a server's domain needs on this host before it can run here: its
    image in the cache, the bridges of its normal ports, and its own overlay
    disk (the path returned): a fresh one, or for a cold move the one its
    source handed over (``fetch_disk``). A build does this, and so does a live
    migration's destination before the guest is sent (``live_prepare``)."""
    instance = task.instance
    image_path, image_format = fetch_image(str(instance.image_id), task.image)
    if image_format not in IMAGE_FORMATS:
        known = ", ".join(IMAGE_FORMATS)
        raise TaskFailed(f"image disk format {image_format!r} cannot boot here ({known})")
    plug = networking or NoHostNetworking()
    for bridge in plan.bridges:
        try:
            plug.plug(bridge)
        except BridgeError as exc:
            raise TaskFailed(f"bridge {bridge.bridge_name}: {exc}") from None
    root_gb = instance.root_gb or 0
    if task.disk is None:
        return disks.create(instance.uuid, image_path, image_format, root_gb)
    if fetch_disk is None:
        raise TaskFailed(f"this task cannot take the disk of migration {task.disk.migration}")
    handed = fetch_disk(task.disk, disks.ready_dir())
    return disks.adopt(instance.uuid, handed, image_path, image_format, root_gb)


def console_log_path(console_dir: Path | None, uuid: str) -> str | None:
    """Where the server's serial console is logged here (the directory made:
    the hypervisor opens the log, but only in a directory that exists)."""
    if console_dir is None:
        return None
    return str(_ensure_dir(Path(console_dir)) / f"{uuid}.log")


def on_veth(spec: S) -> S:
    """``spec`` as it goes onto a veth standing in for a VF: a macvtap without
    its VLAN (libvirt tags only real VFs); anything else as it is."""
    if isinstance(spec, SriovInterfaceSpec) and spec.vnic_type == "macvtap" and spec.vlan:
        log.info("%s: veth stands in for a VF, VLAN %s left out", spec.vf_ifname, spec.vlan)
        return dataclasses.replace(spec, vlan=None)
    return spec


def _untagged_macvtaps(plan: BuildPlan) -> BuildPlan:
    return dataclasses.replace(plan, interfaces=tuple(on_veth(i) for i in plan.interfaces))


def _ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaskFailed(f"console directory {path}: {exc.strerror or exc}") from None
    return path


def _details(info: DomainInfo, plan: BuildPlan, disk: Path) -> dict[str, Any]:
    return {
        "domain": info.name,
        "disk": str(disk),
        "hostdevs": [str(h.address) for h in plan.hostdevs],
        "interfaces": [
            str(i.address)
            for i in plan.interfaces
            if isinstance(i, SriovInterfaceSpec) and i.address is not None
        ],
        "bridges": [b.bridge_name for b in plan.bridges],
    }


def _running(driver: VirtDriver, uuid: str) -> bool:
    try:
        return driver.info(uuid).running
    except DomainNotFound:
        return False


def _defined(driver: VirtDriver, uuid: str) -> bool:
    try:
        driver.info(uuid)
    except DomainNotFound:
        return False
    return True


def _define_and_start(driver: VirtDriver, spec: DomainSpec, *, start: bool = True) -> DomainInfo:
    uuid = spec.uuid
    defined = False
    try:
        info = driver.define(spec)
        defined = True
        if start:
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


def delete(
    driver: VirtDriver, task: DeleteTask | Mapping[str, Any], disks: Disks
) -> dict[str, Any]:
    """Destroy and undefine the domain and remove its disk; either already gone is fine."""
    uuid = parse("delete", DeleteTask, task).instance.uuid
    try:
        _remove(driver, uuid)
    except VirtDriverError as exc:
        raise TaskFailed(f"{driver.describe().name} driver: {exc}") from None
    disks.remove(uuid)
    return {"domain_removed": uuid}


def sweep_orphans(
    driver: VirtDriver, expected: set[str], disks: Disks, owner: str | None = None
) -> list[str]:
    """Destroy and undefine every pcifleet-made domain whose server is not in
    ``expected``, and remove every server disk in ``disks`` whose server is not
    expected and has no domain (left by a build that crashed half-way); domains
    without pcifleet's mark are never touched, nor their disks. Given
    ``owner``, domains another agent marked as its own are left alone too (they
    share this libvirtd; see ``pcifleet.virt.marker``). Part files a crash
    left in the disks' directory go too, once nothing has written them for an
    hour.

    Returns the UUIDs whose domain or disk was removed. A domain that cannot be
    removed is logged and left, with its disk, for the next sweep.
    """
    keep = {str(u).lower() for u in expected}
    removed: list[str] = []
    domains = driver.list()
    for info in domains:
        mine = info.managed if owner is None else info.owned_by(owner)
        if not mine or info.uuid.lower() in keep:
            continue
        log.warning(
            "removing orphan domain %s (%s, %s): the controller expects no such server here",
            info.name,
            info.uuid,
            info.state,
        )
        try:
            _remove(driver, info.uuid)
            disks.remove(info.uuid)
        except (VirtDriverError, TaskFailed) as exc:
            log.warning("orphan domain %s stays for now: %s", info.uuid, exc)
            continue
        removed.append(info.uuid)
    # A disk of a domain still defined (an operator's, or one that would not go)
    # stays: it may be in use.
    for name in disks.remove_stale_parts():
        log.warning("removed %s: a disk half made or half downloaded before a crash", name)
    defined = {info.uuid.lower() for info in domains} - {u.lower() for u in removed}
    for uuid in sorted(disks.servers() - keep - defined):
        log.warning("removing orphan disk of server %s: no domain, not expected here", uuid)
        try:
            disks.remove(uuid)
        except TaskFailed as exc:
            log.warning("orphan disk of %s stays for now: %s", uuid, exc)
            continue
        removed.append(uuid)
    return removed
