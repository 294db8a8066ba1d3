"""Server states as data: Nova's vm_state, task_state and power_state, the status
the API shows for each, and which action may start from which state.

Every change of state is one compare-and-swap (``pcifleet.compute.transitions``)
that names the states it expects, so this table is also the list of races that
can be lost: an action whose CAS finds another state answers 409 naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from pcifleet.virt.tasks import PowerAction


class VmState(StrEnum):
    BUILDING = "building"
    ACTIVE = "active"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    # moved (migrated or resized) to another host, waiting for confirm or revert
    RESIZED = "resized"
    ERROR = "error"
    DELETED = "deleted"


class TaskState(StrEnum):
    SCHEDULING = "scheduling"
    # placed (devices claimed on a host), ports not bound yet, no build asked
    NETWORKING = "networking"
    # the host's agent was asked to build the domain
    SPAWNING = "spawning"
    DELETING = "deleting"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    # a port is being hot plugged into (or unplugged from) the server's domain
    INTERFACE_ATTACHING = "interface_attaching"
    INTERFACE_DETACHING = "interface_detaching"
    # a move: the destination is being chosen and claimed
    RESIZE_PREP = "resize_prep"
    # the source host is shutting the domain down
    RESIZE_MIGRATING = "resize_migrating"
    # the destination host is building the domain
    RESIZE_FINISH = "resize_finish"
    RESIZE_REVERTING = "resize_reverting"
    # a live migration, from the destination's claim until the guest runs there
    MIGRATING = "migrating"
    # a rebuild in place (the host makes a fresh disk), or an evacuation while
    # its new host is being chosen and claimed
    REBUILDING = "rebuilding"
    # the new host is building the evacuated server's domain
    REBUILD_SPAWNING = "rebuild_spawning"


class PowerState(IntEnum):
    """Nova's numbers, which the API shows as ``OS-EXT-STS:power_state``."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7

    @classmethod
    def from_name(cls, name: str | None) -> PowerState:
        """A driver's power state name (``running``, ``shutdown``...) as a number."""
        return _POWER_NAMES.get(name or "", cls.NOSTATE)


_POWER_NAMES = {p.name.lower(): p for p in PowerState}


# Nova's status for a vm_state; some task states show instead (REBOOT...).
_STATUS = {
    VmState.BUILDING: "BUILD",
    VmState.ACTIVE: "ACTIVE",
    VmState.STOPPED: "SHUTOFF",
    VmState.PAUSED: "PAUSED",
    VmState.SUSPENDED: "SUSPENDED",
    VmState.RESIZED: "VERIFY_RESIZE",
    VmState.ERROR: "ERROR",
    VmState.DELETED: "DELETED",
}
_TASK_STATUS = {
    TaskState.REBOOTING: "REBOOT",
    TaskState.REBOOTING_HARD: "HARD_REBOOT",
    TaskState.RESIZE_PREP: "RESIZE",
    TaskState.RESIZE_MIGRATING: "RESIZE",
    TaskState.RESIZE_FINISH: "RESIZE",
    TaskState.REBUILDING: "REBUILD",
    TaskState.REBUILD_SPAWNING: "REBUILD",
    TaskState.MIGRATING: "MIGRATING",
}
# A resized server shows these while a revert runs (Nova's REVERT_RESIZE).
_RESIZED_TASK_STATUS = {TaskState.RESIZE_REVERTING: "REVERT_RESIZE"}
# Nova's _STATE_MAP: a stopped server moving shows RESIZE, one being evacuated
# (stopped or in error) REBUILD.
_STOPPED_TASK_STATUS = {
    TaskState.RESIZE_PREP: "RESIZE",
    TaskState.RESIZE_MIGRATING: "RESIZE",
    TaskState.RESIZE_FINISH: "RESIZE",
    TaskState.REBUILDING: "REBUILD",
    TaskState.REBUILD_SPAWNING: "REBUILD",
}
_ERROR_TASK_STATUS = {
    TaskState.REBUILDING: "REBUILD",
    TaskState.REBUILD_SPAWNING: "REBUILD",
}


def status_of(vm_state: VmState | str, task_state: TaskState | str | None) -> str:
    """The ``status`` the compute API shows."""
    vm = VmState(vm_state)
    if vm is VmState.ACTIVE and task_state is not None:
        shown = _TASK_STATUS.get(TaskState(task_state))
        if shown:
            return shown
    by_task = {
        VmState.PAUSED: {TaskState.MIGRATING: "MIGRATING"},
        VmState.RESIZED: _RESIZED_TASK_STATUS,
        VmState.STOPPED: _STOPPED_TASK_STATUS,
        VmState.ERROR: _ERROR_TASK_STATUS,
    }.get(vm)
    if by_task is not None and task_state is not None:
        shown = by_task.get(TaskState(task_state))
        if shown:
            return shown
    return _STATUS[vm]


@dataclass(frozen=True)
class Action:
    """A server action: where it may start, what it shows meanwhile, where it ends.

    ``agent`` is the power action the host's agent performs (see
    ``pcifleet.agent.tasks``); ``name`` is the one ``server event list`` shows.
    """

    name: str
    agent: PowerAction
    allowed: frozenset[VmState]
    task_state: TaskState
    done: VmState
    power: PowerState


def _action(
    name: str,
    agent: PowerAction,
    allowed: set[VmState],
    task: TaskState,
    done: VmState,
    power: PowerState,
) -> Action:
    return Action(name, agent, frozenset(allowed), task, done, power)


V, T, P = VmState, TaskState, PowerState
# The body key of POST /servers/{id}/action -> the action (as Nova allows them).
ACTIONS: dict[str, Action] = {
    "os-start": _action("start", "start", {V.STOPPED}, T.POWERING_ON, V.ACTIVE, P.RUNNING),
    "os-stop": _action("stop", "stop", {V.ACTIVE, V.ERROR}, T.POWERING_OFF, V.STOPPED, P.SHUTDOWN),
    "reboot:SOFT": _action("reboot", "reboot_soft", {V.ACTIVE}, T.REBOOTING, V.ACTIVE, P.RUNNING),
    "reboot:HARD": _action(
        "reboot",
        "reboot_hard",
        {V.ACTIVE, V.STOPPED, V.PAUSED, V.SUSPENDED, V.ERROR},
        T.REBOOTING_HARD,
        V.ACTIVE,
        P.RUNNING,
    ),
    "pause": _action("pause", "pause", {V.ACTIVE}, T.PAUSING, V.PAUSED, P.PAUSED),
    "unpause": _action("unpause", "unpause", {V.PAUSED}, T.UNPAUSING, V.ACTIVE, P.RUNNING),
    "suspend": _action(
        "suspend", "suspend", {V.ACTIVE, V.PAUSED}, T.SUSPENDING, V.SUSPENDED, P.SUSPENDED
    ),
    "resume": _action("resume", "resume", {V.SUSPENDED}, T.RESUMING, V.ACTIVE, P.RUNNING),
}
del V, T, P

# vm_states a server may be deleted from: all but deleted itself.
DELETABLE = frozenset(VmState) - {VmState.DELETED}
# Server actions Nova has that pcifleet does not (yet): a 400 naming them, not a 404.
UNSUPPORTED_ACTIONS = frozenset(
    {
        "createImage",
        "createBackup",
        "shelve",
        "shelveOffload",
        "unshelve",
        "rescue",
        "unrescue",
        "addFixedIp",
        "removeFixedIp",
        "addSecurityGroup",
        "removeSecurityGroup",
        "changePassword",
        "restore",
        "trigger_crash_dump",
        "injectNetworkInfo",
        "resetNetwork",
        "os-getVNCConsole",
        "os-getSPICEConsole",
        "os-getSerialConsole",
        "os-getRDPConsole",
    }
)
