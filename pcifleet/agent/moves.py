"""A cold move's source on this host: the ``move_source`` task
(``pcifleet.virt.tasks.MoveSourceTask``).

The guest is stopped (a clean shutdown, as a power ``stop``), then its overlay
is handed to the controller for the destination to take: only the overlay,
the guest's own writes, since the destination has the image already. The
disk stays here as it is: a revert starts the guest on it again, a confirm
removes it.

If the disk cannot be handed over, the guest is started again when it was
running before, so the task undoes what it did and the server runs on where
it was; the controller then ends the move with the message.

Done: ``{"power_state": ..., "disk": {"sha256": ..., "size": ...}}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pcifleet.agent.actions import power
from pcifleet.agent.client import ControllerError
from pcifleet.agent.disks import Disks
from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.tasks import parse
from pcifleet.virt import PowerState, VirtDriver, VirtDriverError
from pcifleet.virt.tasks import MoveSourceTask, PowerTask

log = logging.getLogger(__name__)
# (migration uuid, the disk's path) -> its SHA-256 and size, once the controller has it
HandOver = Callable[[str, Path], tuple[str, int]]


def move_source(
    driver: VirtDriver, task: MoveSourceTask | Any, disks: Disks, hand_over: HandOver
) -> dict[str, Any]:
    """Stop the guest and hand its disk over; see the module's doc."""
    task = parse("move_source", MoveSourceTask, task)
    uuid = task.instance.uuid
    try:
        was_running = driver.power_state(uuid) is PowerState.RUNNING
    except VirtDriverError as exc:
        raise TaskFailed(f"move of server {uuid}: {exc}") from None
    details = power(driver, PowerTask(task.instance, "stop", task.timeout))
    path = disks.path_of(uuid)
    try:
        if details.get("power_state") != PowerState.SHUTDOWN.value:
            # A disk copied while the guest writes to it would not be one disk.
            raise TaskFailed(f"server {uuid} did not stop ({details.get('power_state')})")
        if not path.is_file():
            raise TaskFailed(f"server {uuid} has no disk on this host ({path})")
        try:
            sha256, size = hand_over(task.migration, path)
        except (ControllerError, OSError) as exc:
            raise TaskFailed(
                f"handing the disk of server {uuid} to the controller: {exc}"
            ) from None
    except TaskFailed:
        if was_running:
            _restart(driver, uuid)
        raise
    return {**details, "disk": {"sha256": sha256, "size": size}}


def _restart(driver: VirtDriver, uuid: str) -> None:
    try:
        driver.start(uuid)
    except VirtDriverError as exc:
        # The controller's power sync sees it off and marks the server SHUTOFF.
        log.warning("server %s: could not start it again after a failed move: %s", uuid, exc)
