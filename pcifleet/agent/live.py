"""A live migration on this host: the ``live_prepare``, ``live_source``,
``live_dest`` and ``live_rollback`` tasks (``pcifleet.virt.tasks.live``).

Prepare (destination, first): the server's image cached, its overlay disk made
on it, its normal ports' bridges up, as for a build but nothing defined; the
answer says where the disk and console log are here, this agent's name for
the mark and the address this host takes migrations on.

Source: the direct ports are unplugged (a hostdev cannot migrate with the
guest), the domain's XML is rewritten for the destination (macvtap ports on
its VF netdevs, live-migratable devices on its addresses, its disk, console log
and owner), then either the driver migrates the domain there itself (libvirt:
``migrate``, virDomainMigrateToURI3 with that XML, copying the disk into the
prepared overlay unless it is the same file), or the XML is reported for the
destination to define (the xml driver's simulated hosts). Any failure plugs
back what was unplugged: the guest runs on as it did.

Destination: the reported XML is defined and started (unless the driver
migrated it here already), then the direct ports' VFs of this host are
plugged. A failure removes what this host made for the server (domain and
disk), so the controller can roll back to the source (``live_rollback``: the
source's direct ports plugged again).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcifleet.agent.bridges import HostNetworking
from pcifleet.agent.disks import Disks
from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.interfaces import attach_interface, detach_interface
from pcifleet.agent.tasks import FetchImage, console_log_path, parse, plan_devices, prepare_host
from pcifleet.pci import PciAddress, PciDevice
from pcifleet.virt import DomainNotFound, VirtDriver, VirtDriverError, domain_edit
from pcifleet.virt.tasks import BuildTask, DestFiles, LiveDestTask, LiveSourceTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostFiles:
    """What a destination needs to prepare for a guest: the agent's own ways."""

    fetch_image: FetchImage
    disks: Disks
    console_dir: Path | None = None
    networking: HostNetworking | None = None
    owner: str | None = None
    inbound_addr: str | None = None


def live_prepare(
    task: BuildTask | Any, local: Mapping[PciAddress, PciDevice], host: HostFiles
) -> dict[str, Any]:
    """Make room here for a guest about to arrive; the ``DestFiles`` it gets."""
    task = parse("live_prepare", BuildTask, task)
    uuid = task.instance.uuid
    plan = plan_devices(task, local)  # the claimed devices are really here
    disk = prepare_host(task, plan, host.fetch_image, host.disks, host.networking)
    try:
        console_log = console_log_path(host.console_dir, uuid)
    except TaskFailed:
        host.disks.remove(uuid)
        raise
    files = DestFiles(str(disk), console_log, host.owner, host.inbound_addr)
    return {"dest_files": files.to_dict()}


def live_source(
    driver: VirtDriver,
    task: LiveSourceTask | Any,
    local: Mapping[PciAddress, PciDevice],
    uri_template: str | None = None,
) -> dict[str, Any]:
    """Send the domain on its way; ``{"domain_xml": ...}`` when the destination
    must define it, ``{"migrated": true}`` when the driver moved it (to the
    task's ``dest_uri``, else ``uri_template`` with the destination's inbound
    address, else its name, for ``%s``: Nova's ``live_migration_uri``)."""
    task = parse("live_source", LiveSourceTask, task)
    uuid = task.instance.uuid
    files = task.dest_files
    peer = _in_uri(files.inbound_addr or task.dest_host)
    dest_uri = task.dest_uri or (uri_template.replace("%s", peer) if uri_template else None)
    if dest_uri is None and driver.can_migrate():
        # Carrying the XML over would restart the guest, not move it running.
        raise TaskFailed(
            f"live migration of {uuid}: this host has no [agent] live_migration_uri to "
            f"reach {task.dest_host}'s hypervisor with"
        )
    unplugged = []
    try:
        for port in task.unplug:
            detach_interface(driver, port, local)
            unplugged.append(port)
        current = driver.migratable_xml(uuid)
        xml = domain_edit.retarget(
            current,
            task.netdevs,
            task.hostdevs,
            disk=files.disk,
            console_log=files.console_log,
            owner=files.owner,
        )
        if dest_uri is not None and driver.can_migrate():
            driver.migrate(
                uuid,
                dest_uri,
                xml,
                migrate_uri=_migrate_uri(files.inbound_addr),
                copy_storage=files.disk is not None and files.disk != _disk_of(current),
            )
            return {"migrated": True}
        return {"domain_xml": xml}
    except (TaskFailed, VirtDriverError) as exc:
        for port in reversed(unplugged):
            with contextlib.suppress(TaskFailed):
                attach_interface(driver, port, local)
        raise TaskFailed(f"live migration of {uuid} to {task.dest_host}: {exc}") from None


def live_dest(
    driver: VirtDriver,
    task: LiveDestTask | Any,
    local: Mapping[PciAddress, PciDevice],
    disks: Disks | None = None,
) -> dict[str, Any]:
    """Run the migrated domain here and plug the direct ports' VFs. A failure
    before the guest runs here removes its domain and, given ``disks``, the
    disk ``live_prepare`` made."""
    task = parse("live_dest", LiveDestTask, task)
    uuid = task.instance.uuid
    defined = False
    try:
        if task.domain_xml is not None and not _running(driver, uuid):
            # The domain keeps the name the source gave it (pcifleet-<uuid>).
            name = domain_edit.identity(domain_edit.read_domain(task.domain_xml)).name
            driver.define_xml(task.domain_xml, name, uuid)
            defined = True
            driver.start(uuid)
        for port in task.plug:
            attach_interface(driver, port, local)
    except (TaskFailed, VirtDriverError) as exc:
        if defined:
            _remove(driver, uuid)
            if disks is not None:
                disks.remove(uuid)
        raise TaskFailed(f"live migration of {uuid} here: {exc}") from None
    return {"domain": uuid, "plugged": [p.port.id for p in task.plug]}


def live_rollback(
    driver: VirtDriver, task: LiveDestTask | Any, local: Mapping[PciAddress, PciDevice]
) -> dict[str, Any]:
    """The destination failed: plug the source's direct ports back."""
    task = parse("live_rollback", LiveDestTask, task)
    for port in task.plug:
        attach_interface(driver, port, local)
    return {"plugged": [p.port.id for p in task.plug]}


def _running(driver: VirtDriver, uuid: str) -> bool:
    try:
        return driver.info(uuid).running
    except DomainNotFound:
        return False


def _remove(driver: VirtDriver, uuid: str) -> None:
    for step in (driver.destroy, driver.undefine):
        try:
            step(uuid)
        except VirtDriverError as exc:
            log.warning("server %s: cleaning up a failed migration: %s", uuid, exc)


def _disk_of(xml: str) -> str | None:
    found = domain_edit.read_domain(xml).find("devices/disk[@device='disk']/source")
    return None if found is None else found.get("file")


def _migrate_uri(addr: str | None) -> str | None:
    """Where the guest's memory goes: the destination's inbound address, else
    wherever its hypervisor says (its host name)."""
    return None if addr is None else f"tcp://{_in_uri(addr)}"


def _in_uri(addr: str) -> str:
    # an IPv6 address in a URI goes in brackets
    return f"[{addr}]" if ":" in addr and not addr.startswith("[") else addr
