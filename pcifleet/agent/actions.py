"""Server actions on this host: the ``power`` and ``console`` tasks.

Contract with the controller (payloads are JSON objects):

- ``power``: ``{"instance": {"uuid": U, "name": N}, "action": A, "timeout": S}``,
  A one of ``ACTIONS``, S seconds (optional, default 60, at most
  ``MAX_TIMEOUT``) that a clean stop or soft reboot waits for the guest.
  Done: ``{"power_state": <PowerState value after the action>}``. Failed: the
  message names the action and the driver's reason; details carry
  ``{"power_state": <state now>}`` when it can be read.
- ``console``: ``{"instance": {...}, "length": N or null}``. Done:
  ``{"output": <the last N lines (all when null)>}``, at most
  ``MAX_OUTPUT_BYTES`` of it (the newest part).

A task can be handed out twice (an agent restart between doing it and reporting
it), so an action whose target state already holds is done without touching
the domain: start on running, stop on shut off, pause on paused, unpause and
resume on running, suspend on suspended. Reboots have no target state and run
again, as a second reboot request would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from pcifleet.agent.tasks import TaskFailed
from pcifleet.virt import PowerState, VirtDriver, VirtDriverError
from pcifleet.virt.validate import check_uuid

log = logging.getLogger(__name__)
P = PowerState

DEFAULT_TIMEOUT = 60.0
# The agent runs tasks one at a time: a longer wait would hold up every other one.
MAX_TIMEOUT = 600.0
# What the controller stores and hands to `openstack console log show`.
MAX_OUTPUT_BYTES = 512 * 1024

Action = Callable[[VirtDriver, str, float], None]

# action -> (what it does, the state that means it is already done)
ACTIONS: dict[str, tuple[Action, PowerState | None]] = {
    "start": (lambda d, u, t: d.start(u), P.RUNNING),
    "stop": (lambda d, u, t: d.stop(u, t), P.SHUTDOWN),
    "reboot_soft": (lambda d, u, t: d.reboot(u, hard=False, timeout=t), None),
    "reboot_hard": (lambda d, u, t: d.reboot(u, hard=True, timeout=t), None),
    "pause": (lambda d, u, t: d.pause(u), P.PAUSED),
    "unpause": (lambda d, u, t: d.unpause(u), P.RUNNING),
    "suspend": (lambda d, u, t: d.suspend(u), P.SUSPENDED),
    "resume": (lambda d, u, t: d.resume(u), P.RUNNING),
}


def instance_uuid(payload: Any, kind: str) -> str:
    """The server UUID in a task payload, or ``TaskFailed`` saying what is wrong."""
    if not isinstance(payload, Mapping):
        raise TaskFailed(f"{kind}: the payload must be a JSON object, got {payload!r:.100}")
    instance = payload.get("instance")
    if not isinstance(instance, Mapping):
        raise TaskFailed(f"{kind}: payload.instance must be an object with the server's uuid")
    try:
        return check_uuid(instance.get("uuid"), "instance.uuid")
    except ValueError as exc:
        raise TaskFailed(f"{kind}: {exc}") from None


def _timeout(payload: Mapping[str, Any]) -> float:
    value = payload.get("timeout", DEFAULT_TIMEOUT)
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TaskFailed(f"power: timeout must be a number of seconds, got {value!r:.100}")
    if not 0 <= value <= MAX_TIMEOUT:
        raise TaskFailed(f"power: timeout must be 0..{MAX_TIMEOUT:.0f} seconds, got {value!r}")
    return float(value)


def _state_now(driver: VirtDriver, uuid: str) -> dict[str, Any]:
    try:
        return {"power_state": driver.power_state(uuid).value}
    except VirtDriverError:
        return {}  # gone or unreadable: the controller learns that from the message


def power(driver: VirtDriver, payload: Any) -> dict[str, Any]:
    """Run one power action; returns ``{"power_state": ...}`` or raises ``TaskFailed``."""
    uuid = instance_uuid(payload, "power")
    action = payload.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        known = ", ".join(ACTIONS)
        raise TaskFailed(f"power: unknown action {action!r:.100}; known: {known}")
    timeout = _timeout(payload)
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


def console(driver: VirtDriver, payload: Any) -> dict[str, Any]:
    """The tail of the server's console log, as ``{"output": text}``."""
    uuid = instance_uuid(payload, "console")
    length = payload.get("length")
    if length is not None and (
        isinstance(length, bool) or not isinstance(length, int) or length < 0
    ):
        raise TaskFailed(
            f"console: length must be a whole number >= 0 or null, got {length!r:.100}"
        )
    try:
        text = driver.console_output(uuid, length)
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
