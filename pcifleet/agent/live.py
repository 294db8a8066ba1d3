"""A live migration on this host: the ``live_source``, ``live_dest`` and
``live_rollback`` tasks (``pcifleet.virt.tasks.live``).

Source: the direct ports are unplugged (a hostdev cannot migrate with the
guest), the domain's XML is rewritten for the destination (macvtap ports on
its VF netdevs, live-migratable devices on its addresses), then either the
driver migrates the domain there itself (libvirt, given the destination's
URI: ``migrate``, virDomainMigrateToURI3 with that XML), or the XML is reported
for the destination to define (the xml driver's simulated hosts). Any failure
plugs back what was unplugged: the guest runs on as it did.

Destination: the reported XML is defined and started (unless the driver
migrated it here already), then the direct ports' VFs of this host are
plugged. A failure removes what this task defined, so the controller can roll
back to the source (``live_rollback``: the source's direct ports plugged
again).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.interfaces import attach_interface, detach_interface
from pcifleet.agent.tasks import parse
from pcifleet.pci import PciAddress, PciDevice
from pcifleet.virt import DomainNotFound, VirtDriver, VirtDriverError, domain_edit
from pcifleet.virt.tasks import LiveDestTask, LiveSourceTask

log = logging.getLogger(__name__)


def live_source(
    driver: VirtDriver,
    task: LiveSourceTask | Any,
    local: Mapping[PciAddress, PciDevice],
    uri_template: str | None = None,
) -> dict[str, Any]:
    """Send the domain on its way; ``{"domain_xml": ...}`` when the destination
    must define it, ``{"migrated": true}`` when the driver moved it (to the
    task's ``dest_uri``, else ``uri_template`` with the destination's name)."""
    task = parse("live_source", LiveSourceTask, task)
    uuid = task.instance.uuid
    dest_uri = task.dest_uri or (
        uri_template.replace("%s", task.dest_host) if uri_template else None
    )
    unplugged = []
    try:
        for port in task.unplug:
            detach_interface(driver, port, local)
            unplugged.append(port)
        xml = domain_edit.retarget(driver.get_xml(uuid), task.netdevs, task.hostdevs)
        if dest_uri and driver.can_migrate():
            driver.migrate(uuid, dest_uri, xml)
            return {"migrated": True}
        return {"domain_xml": xml}
    except (TaskFailed, VirtDriverError) as exc:
        for port in reversed(unplugged):
            with contextlib.suppress(TaskFailed):
                attach_interface(driver, port, local)
        raise TaskFailed(f"live migration of {uuid} to {task.dest_host}: {exc}") from None


def live_dest(
    driver: VirtDriver, task: LiveDestTask | Any, local: Mapping[PciAddress, PciDevice]
) -> dict[str, Any]:
    """Run the migrated domain here and plug the direct ports' VFs."""
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
