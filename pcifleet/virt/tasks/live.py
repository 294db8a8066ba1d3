"""The tasks of a live migration: ``live_source`` for the host the server runs
on, ``live_dest`` for the host it moves to (and ``live_rollback``, the same
shape, for the source when the destination failed).

Wire shapes (JSON objects; unknown keys are ignored)::

    live_source: {"instance", "dest_host", "dest_uri": str|null,
                  "netdevs": {mac: destination VF netdev},     # macvtap ports
                  "hostdevs": [{"source", "dest"}],            # live-migratable devices
                  "unplug": [<InterfaceTask>]}                 # direct ports, source VFs
    live_dest:   {"instance", "domain_xml": str|null,
                  "plug": [<InterfaceTask>]}                   # direct ports, dest VFs

As Nova does it: a macvtap port's interface moves with the guest onto the
destination's VF netdev, written into the XML the destination runs; a direct
(hostdev) port cannot migrate, so it is unplugged before and the
destination's VF plugged after. ``dest_uri`` is the destination hypervisor
for a driver that migrates itself (libvirt); without it the source reports the
XML (``domain_xml``) and the destination defines it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pcifleet.pci.address import PciAddress
from pcifleet.virt.errors import InvalidTask
from pcifleet.virt.tasks import fields as f
from pcifleet.virt.tasks.interface import InterfaceTask
from pcifleet.virt.tasks.server import InstanceRef

# A domain's XML is far longer than a name; a megabyte is far more than any.
XML_MAX = 1024 * 1024


def _interfaces(data: Any, name: str) -> tuple[InterfaceTask, ...]:
    out = []
    for i, item in enumerate(f.items(data, name)):
        try:
            out.append(InterfaceTask.from_dict(item))
        except ValueError as exc:
            raise InvalidTask(f"{name}[{i}]", str(exc)) from None
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LiveSourceTask:
    instance: InstanceRef
    dest_host: str
    dest_uri: str | None = None
    netdevs: dict[str, str] = field(default_factory=dict)
    hostdevs: dict[PciAddress, PciAddress] = field(default_factory=dict)
    unplug: tuple[InterfaceTask, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance.to_dict(),
            "dest_host": self.dest_host,
            "dest_uri": self.dest_uri,
            "netdevs": dict(self.netdevs),
            "hostdevs": [{"source": str(s), "dest": str(d)} for s, d in self.hostdevs.items()],
            "unplug": [t.to_dict() for t in self.unplug],
        }

    @classmethod
    def from_dict(cls, data: Any) -> LiveSourceTask:
        data = f.mapping(data, "")
        netdevs = f.mapping(data.get("netdevs") or {}, "netdevs")
        pairs = f.items(data.get("hostdevs"), "hostdevs")
        hostdevs = {}
        for i, pair in enumerate(pairs):
            pair = f.mapping(pair, f"hostdevs[{i}]")
            source = f.address(
                f.required(pair, "source", f"hostdevs[{i}]"), f"hostdevs[{i}].source"
            )
            hostdevs[source] = f.address(f.required(pair, "dest", f"hostdevs[{i}]"),
                                         f"hostdevs[{i}].dest")  # fmt: skip
        return cls(
            instance=InstanceRef.from_dict(f.required(data, "instance", "")),
            dest_host=f.identifier(f.required(data, "dest_host", ""), "dest_host"),
            dest_uri=f.optional_text(data.get("dest_uri"), "dest_uri"),
            netdevs={
                f.text(mac, "netdevs", 17).lower(): f.identifier(dev, f"netdevs.{mac}")
                for mac, dev in netdevs.items()
            },
            hostdevs=hostdevs,
            unplug=_interfaces(data.get("unplug"), "unplug"),
        )


@dataclass(frozen=True, slots=True)
class LiveDestTask:
    instance: InstanceRef
    domain_xml: str | None = None
    plug: tuple[InterfaceTask, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance.to_dict(),
            "domain_xml": self.domain_xml,
            "plug": [t.to_dict() for t in self.plug],
        }

    @classmethod
    def from_dict(cls, data: Any) -> LiveDestTask:
        data = f.mapping(data, "")
        return cls(
            instance=InstanceRef.from_dict(f.required(data, "instance", "")),
            domain_xml=f.optional_text(data.get("domain_xml"), "domain_xml", XML_MAX),
            plug=_interfaces(data.get("plug"), "plug"),
        )
