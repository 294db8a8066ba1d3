"""The small tasks that act on an existing server: ``delete``, ``power``, ``console``.

Wire shapes (JSON objects; unknown keys are ignored, so a newer controller may
add some):

- ``delete``: ``{"instance": {"uuid": U, "name": N}}``
- ``power``: ``{"instance": {...}, "action": A}`` plus ``"timeout": S`` when
  given — A one of ``POWER_ACTIONS``, S seconds (0..``MAX_TIMEOUT``) that a
  clean stop or soft reboot waits for the guest; absent or null: the agent's
  default.
- ``console``: ``{"instance": {...}, "length": N or null}`` — the last N lines,
  all of them when null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.tasks import fields as f

PowerAction = Literal[
    "start", "stop", "reboot_soft", "reboot_hard", "pause", "unpause", "suspend", "resume"
]
POWER_ACTIONS: tuple[str, ...] = get_args(PowerAction)
# The agent runs tasks one at a time: a longer wait would hold up every other one.
MAX_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """The server a task is about: its UUID (canonical form) and, for logs, its name."""

    uuid: str
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "name": self.name}

    @classmethod
    def from_dict(cls, data: Any, field: str = "instance") -> InstanceRef:
        data = f.mapping(data, field)
        return cls(
            uuid=f.uuid(f.required(data, "uuid", field), f.at(field, "uuid")),
            name=f.optional_text(data.get("name"), f.at(field, "name")),
        )


def _instance(data: Any) -> InstanceRef:
    data = f.mapping(data, "")
    return InstanceRef.from_dict(f.required(data, "instance", ""))


@dataclass(frozen=True, slots=True)
class DeleteTask:
    """Destroy and undefine the server's domain."""

    instance: InstanceRef

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> DeleteTask:
        return cls(instance=_instance(data))


@dataclass(frozen=True, slots=True)
class PowerTask:
    """One power action on the server's domain."""

    instance: InstanceRef
    action: PowerAction
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instance": self.instance.to_dict(), "action": self.action}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out

    @classmethod
    def from_dict(cls, data: Any) -> PowerTask:
        instance = _instance(data)
        return cls(
            instance=instance,
            action=power_action(data.get("action")),
            timeout=wait_seconds(data.get("timeout")),
        )


def power_action(value: Any, field: str = "action") -> PowerAction:
    """``value`` as a ``PowerAction``, or ``InvalidTask``."""
    if not isinstance(value, str) or value not in POWER_ACTIONS:
        known = ", ".join(POWER_ACTIONS)
        raise InvalidTask(field, f"{f.show(value)} is not a power action; known: {known}")
    return cast(PowerAction, value)


def wait_seconds(value: Any) -> float | None:
    """A task's ``timeout``: seconds a clean stop may wait, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTask("timeout", f"must be a number of seconds, got {f.show(value)}")
    # NaN fails this comparison too.
    if not 0 <= value <= MAX_TIMEOUT:
        raise InvalidTask("timeout", f"must be 0..{MAX_TIMEOUT:.0f} seconds, got {f.show(value)}")
    return float(value)


@dataclass(frozen=True, slots=True)
class ConsoleTask:
    """The tail of the server's serial console log."""

    instance: InstanceRef
    length: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"instance": self.instance.to_dict(), "length": self.length}

    @classmethod
    def from_dict(cls, data: Any) -> ConsoleTask:
        instance = _instance(data)
        length = data.get("length")
        if length is not None and (
            isinstance(length, bool) or not isinstance(length, int) or length < 0
        ):
            raise InvalidTask(
                "length", f"must be a whole number >= 0 or null, got {f.show(length)}"
            )
        return cls(instance=instance, length=length)
