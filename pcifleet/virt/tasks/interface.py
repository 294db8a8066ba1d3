"""The ``attach_interface`` and ``detach_interface`` tasks: hot plug or unplug one
port of a running (or stopped) server's domain.

Wire shape (a JSON object; unknown keys are ignored)::

    {"instance": {"uuid", "name"},
     "port": <TaskPort>,
     "device": {"address", "vendor_id", ..., "request_id", "for_port": true} or null}

``port`` is bound already (an SR-IOV port to the VF the controller claimed on
this host, a normal port to its network's bridge); ``device`` is that VF, so
the agent checks it is on this host before touching the domain. A normal port
has no device. The detach task carries the same shape, so the agent can name
the device to remove without reading the domain back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.tasks import fields as f
from pcifleet.virt.tasks.build import TaskDevice
from pcifleet.virt.tasks.ports import TaskPort
from pcifleet.virt.tasks.server import InstanceRef


@dataclass(frozen=True, slots=True)
class InterfaceTask:
    """Plug (or unplug) one port of the server's domain."""

    instance: InstanceRef
    port: TaskPort
    device: TaskDevice | None = None

    def __post_init__(self) -> None:
        if self.port.sriov and self.device is None:
            raise InvalidTask("device", f"SR-IOV port {self.port.id} needs its claimed device")
        if self.device is not None and self.device.request_id != self.port.pci_request_id:
            raise InvalidTask(
                "device.request_id",
                f"{f.show(self.device.request_id)} is not the request of port {self.port.id}",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance.to_dict(),
            "port": self.port.to_dict(),
            "device": None if self.device is None else self.device.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> InterfaceTask:
        data = f.mapping(data, "")
        device = data.get("device")
        return cls(
            instance=InstanceRef.from_dict(f.required(data, "instance", "")),
            port=TaskPort.from_dict(f.required(data, "port", ""), "port"),
            device=None if device is None else TaskDevice.from_dict(device, "device"),
        )
