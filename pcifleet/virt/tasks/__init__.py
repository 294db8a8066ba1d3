"""The tasks the controller sends a host's agent, as typed models.

Both sides share this one contract: the controller builds a model and sends
``to_dict()`` (JSON), the agent reads the payload with ``from_dict()`` and works
on typed fields. ``from_dict`` raises ``InvalidTask`` (a ``ValueError``) naming
the field at fault — ``ports[1].binding:profile.pci_slot: ...`` — whatever it is
given, and ignores keys it does not know, so a controller and an agent one
version apart still understand each other.

- ``BuildTask``: define and start a server's domain (``build.py``, ``ports.py``).
- ``DeleteTask``, ``PowerTask``, ``ConsoleTask``: act on it (``server.py``).
- ``InterfaceTask``: hot plug or unplug one port (``interface.py``).
- ``MoveSourceTask``, ``MoveDisk``: a cold move's disk, handed from its source
  to its destination through the controller (``moves.py``).
- ``LiveSourceTask``, ``LiveDestTask``, ``DestFiles``: a live migration's two ends and
  what the destination prepared for it (``live.py``).
"""

from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.tasks.build import BuildTask, TaskDevice, TaskImage, TaskInstance
from pcifleet.virt.tasks.interface import InterfaceTask
from pcifleet.virt.tasks.live import DestFiles, LiveDestTask, LiveSourceTask
from pcifleet.virt.tasks.moves import MoveDisk, MoveSourceTask
from pcifleet.virt.tasks.ports import (
    PORT_VNIC_TYPES,
    BindingProfile,
    BridgeBinding,
    PortVnicType,
    TaskPort,
    VifDetails,
    bridge_name_for,
)
from pcifleet.virt.tasks.server import (
    MAX_TIMEOUT,
    POWER_ACTIONS,
    ConsoleTask,
    DeleteTask,
    InstanceRef,
    PowerAction,
    PowerTask,
    power_action,
)

__all__ = [
    "MAX_TIMEOUT",
    "PORT_VNIC_TYPES",
    "POWER_ACTIONS",
    "BindingProfile",
    "BridgeBinding",
    "BuildTask",
    "ConsoleTask",
    "DeleteTask",
    "DestFiles",
    "InstanceRef",
    "InterfaceTask",
    "InvalidTask",
    "LiveDestTask",
    "LiveSourceTask",
    "MoveDisk",
    "MoveSourceTask",
    "PortVnicType",
    "PowerAction",
    "PowerTask",
    "TaskDevice",
    "TaskImage",
    "TaskInstance",
    "TaskPort",
    "VifDetails",
    "bridge_name_for",
    "power_action",
]
