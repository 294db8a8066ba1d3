"""Server actions on this host: the ``power`` and ``console`` tasks.

The payloads are ``PowerTask`` and ``ConsoleTask`` (``pcifleet.virt.tasks``),
read with their ``from_dict``; one that does not fit fails the task naming the
field. What the agent answers:

- ``power``: without a timeout a clean stop or soft reboot waits
  ``DEFAULT_TIMEOUT`` seconds for the guest. Done:
  ``{"power_state": <PowerState value after the action>}``. Failed: the
  message names the action and the driver's reason; details carry
  ``{"power_state": <state now>}`` when it can be read.
- ``console``: done: ``{"output": <the last N lines (all when null)>}``, at
  most ``MAX_OUTPUT_BYTES`` of it (the newest part).

A task can be handed out twice (an agent restart between doing it and reporting
it), so an action whose target state already holds is done without touching
the domain: start on running, stop on shut off, pause on paused, unpause and
resume on running, suspend on suspended. Reboots have no target state and run
again, as a second reboot request would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.tasks import parse
from pcifleet.virt import PowerState, VirtDriver, VirtDriverError
from pcifleet.virt.tasks import MAX_TIMEOUT, ConsoleTask, PowerAction, PowerTask

# MAX_TIMEOUT is part of the task contract (virt.tasks); kept importable from here.
__all__ = [
    "ACTIONS",
    "DEFAULT_TIMEOUT",
    "MAX_OUTPUT_BYTES",
    "MAX_TIMEOUT",
    "console",
    "newest",
    "power",
]

log = logging.getLogger(__name__)
P = PowerState

DEFAULT_TIMEOUT = 60.0
# What the controller stores and hands to `openstack console log show`.
MAX_OUTPUT_BYTES = 512 * 1024

Action = Callable[[VirtDriver, str, float], None]

# action -> (what it does, the state that means it is already done)
ACTIONS: dict[PowerAction, tuple[Action, PowerState | None]] = {
    "start": (lambda d, u, t: d.start(u), P.RUNNING),
    "stop": (lambda d, u, t: d.stop(u, t), P.SHUTDOWN),
    "reboot_soft": (lambda d, u, t: d.reboot(u, hard=False, timeout=t), None),
    "reboot_hard": (lambda d, u, t: d.reboot(u, hard=True, timeout=t), None),
    "pause": (lambda d, u, t: d.pause(u), P.PAUSED),
    "unpause": (lambda d, u, t: d.unpause(u), P.RUNNING),
    "suspend": (lambda d, u, t: d.suspend(u), P.SUSPENDED),
    "resume": (lambda d, u, t: d.resume(u), P.RUNNING),
}


def _state_now(driver: VirtDriver, uuid: str) -> dict[str, Any]:
    try:
        return {"power_state": driver.power_state(uuid).value}
    except VirtDriverError:
        return {}  # gone or unreadable: the controller learns that from the message


def power(driver: VirtDriver, task: PowerTask | Any) -> dict[str, Any]:
    """Run one power action; returns ``{"power_state": ...}`` or raises ``TaskFailed``."""
    task = parse("power", PowerTask, task)
    uuid, action = task.instance.uuid, task.action
    timeout = DEFAULT_TIMEOUT if task.timeout is None else task.timeout
    do, target = ACTIONS[action]
    try:
        before = driver.power_state(uuid)
        if before is target:
            log.info("server %s: %s: already %s", uuid, action, before.value)
            return {"power_state": before.value}
        do(driver, uuid, timeout)
        after = driver.power_state(uuid)
    except (VirtDriverError, ValueError) as exc:
        raise TaskFailed(
            f"power action {action} on server {uuid} failed: {exc}", _state_now(driver, uuid)
        ) from None
    return {"power_state": after.value}


def console(driver: VirtDriver, task: ConsoleTask | Any) -> dict[str, Any]:
    """The tail of the server's console log, as ``{"output": text}``."""
    task = parse("console", ConsoleTask, task)
    uuid = task.instance.uuid
    try:
        text = driver.console_output(uuid, task.length)
    except (VirtDriverError, ValueError) as exc:
        raise TaskFailed(f"console output of server {uuid}: {exc}") from None
    return {"output": newest(text, MAX_OUTPUT_BYTES)}


def newest(text: str, limit: int) -> str:
    """The end of ``text`` in at most ``limit`` UTF-8 bytes, starting on a whole line."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    tail = data[-limit:]
    newline = tail.find(b"\n")
    if 0 <= newline < len(tail) - 1:
        tail = tail[newline + 1 :]
    # A cut inside a multi-byte character leaves a broken first byte or two: drop them.
    return tail.decode("utf-8", errors="ignore")
