"""What a cold move (migrate, resize) asks of each host about the server's disk.

The source stops the guest and hands its overlay to the controller; the
destination's build takes that overlay instead of making a fresh one. Hosts
never talk to each other, so the controller holds the file in between.

Wire shapes (JSON objects; unknown keys are ignored):

- ``move_source``: ``{"instance": {"uuid", "name"}, "action": "stop",
  "migration": M}`` -- stop the domain, then upload its overlay for migration
  M (``PUT /pcifleet/v1/hosts/<this host>/migrations/M/disk``). ``action`` is
  there so an agent that knows only power tasks still stops the guest; the
  controller then finds no disk and fails the move, naming the cause.
- ``MoveDisk``, the ``disk`` of a ``move_dest`` build: ``{"migration": M,
  "sha256": hex, "size": bytes}`` -- download migration M's overlay
  (``GET .../hosts/<this host>/migrations/M/disk``), check it is exactly
  ``size`` bytes with that SHA-256, and make it the server's disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.tasks import fields as f
from pcifleet.virt.tasks.server import InstanceRef, wait_seconds

# A disk's size as the controller records it (a signed 64-bit column).
DISK_SIZE_MAX = 2**63 - 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(value: Any, field: str) -> str:
    """A SHA-256 digest as 64 lower-case hex digits."""
    found = f.text(value, field, 64).lower()
    if _SHA256_RE.fullmatch(found) is None:
        raise InvalidTask(field, f"{f.show(found)} is not a SHA-256 hex digest")
    return found


@dataclass(frozen=True, slots=True)
class MoveDisk:
    """The overlay a cold move's source handed over, for its destination to take."""

    migration: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"migration": self.migration, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, data: Any, field: str = "disk") -> MoveDisk:
        data = f.mapping(data, field)
        return cls(
            migration=f.uuid(f.required(data, "migration", field), f.at(field, "migration")),
            sha256=sha256_hex(f.required(data, "sha256", field), f.at(field, "sha256")),
            size=f.integer(f.required(data, "size", field), f.at(field, "size"), 0,
                           DISK_SIZE_MAX),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MoveSourceTask:
    """Stop the server's domain and hand its overlay over for ``migration``.

    ``timeout`` is the clean stop's wait, as a power task's (None: the
    agent's default)."""

    instance: InstanceRef
    migration: str
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "instance": self.instance.to_dict(),
            "action": "stop",
            "migration": self.migration,
        }
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out

    @classmethod
    def from_dict(cls, data: Any) -> MoveSourceTask:
        data = f.mapping(data, "")
        return cls(
            instance=InstanceRef.from_dict(f.required(data, "instance", "")),
            migration=f.uuid(f.required(data, "migration", ""), "migration"),
            timeout=wait_seconds(data.get("timeout")),
        )
