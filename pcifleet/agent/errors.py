"""The agent's one failure type: a task that cannot be done on this host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class TaskFailed(Exception):
    """The task cannot be done on this host; the message goes to the server's fault.

    ``details`` go to the controller with the failure (e.g. the power state now).
    """

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})
