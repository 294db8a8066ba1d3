"""A domain's power state, in the words Nova uses, and which actions each allows.

The values are what the agent reports to the controller, so they never change:
``running``, ``paused`` (vCPUs stopped, memory kept), ``shutdown`` (defined, shut
off), ``suspended`` (shut off with a managed-save image: ``start`` restores it),
``crashed`` and ``nostate`` (the hypervisor cannot say).
"""

from __future__ import annotations

from enum import StrEnum

from pcifleet.virt.errors import DomainStateError, InvalidVirtSpec


class PowerState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    SUSPENDED = "suspended"
    CRASHED = "crashed"
    NOSTATE = "nostate"

    @property
    def active(self) -> bool:
        """Whether the domain has a live guest (running or with paused vCPUs)."""
        return self in (PowerState.RUNNING, PowerState.PAUSED)

    @property
    def words(self) -> str:
        """The state as ``virsh domstate`` says it, for people."""
        return _WORDS[self]


_WORDS = {
    PowerState.RUNNING: "running",
    PowerState.PAUSED: "paused",
    PowerState.SHUTDOWN: "shut off",
    PowerState.SUSPENDED: "shut off (saved)",
    PowerState.CRASHED: "crashed",
    PowerState.NOSTATE: "no state",
}


def require(action: str, uuid: str, state: PowerState, *allowed: PowerState) -> None:
    """Raise ``DomainStateError`` unless ``state`` is one that ``action`` works from."""
    if state not in allowed:
        needs = " or ".join(s.value for s in allowed)
        raise DomainStateError(
            f"cannot {action} domain {uuid}: it is {state.value} ({action} needs {needs})"
        )


def check_timeout(timeout: object) -> float:
    """A shutdown wait in seconds: a non-negative number (0: power off at once)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise InvalidVirtSpec("timeout", f"must be a number of seconds, got {timeout!r}")
    if not 0 <= timeout < float("inf"):
        raise InvalidVirtSpec("timeout", f"must be 0 or more seconds, got {timeout!r}")
    return float(timeout)
