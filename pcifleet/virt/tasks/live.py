"""The tasks of a live migration: ``live_prepare`` for the host the server
moves to, ``live_source`` for the host it runs on, ``live_dest`` for the host it
moves to again (and ``live_rollback``, the same shape, for the source when the
destination failed).

Wire shapes (JSON objects; unknown keys are ignored)::

    live_prepare: <BuildTask>                                  # the server as a build
    live_source: {"instance", "dest_host", "dest_uri": str|null,
                  "netdevs": {mac: destination VF netdev},     # macvtap ports
                  "hostdevs": [{"source", "dest"}],            # live-migratable devices
                  "unplug": [<InterfaceTask>],                 # direct ports, source VFs
                  "dest_files": {"disk", "console_log", "owner", "inbound_addr"}}
    live_dest:   {"instance", "domain_xml": str|null,
                  "plug": [<InterfaceTask>]}                   # direct ports, dest VFs

``live_prepare`` is Nova's pre_live_migration: the destination makes what the
guest will need there before the source sends it (the image in its cache, the
server's overlay disk, the bridges of its normal ports) and answers with
``dest_files``: where the disk and console log go there, its agent's name for
the mark, and the address its hypervisor takes migrations on (Nova's
``live_migration_inbound_addr``; null: its host name).

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


PATH_MAX = 4096


@dataclass(frozen=True, slots=True)
class DestFiles:
    """What ``live_prepare`` made on the destination, as ``live_source`` needs it."""

    disk: str | None = None
    console_log: str | None = None
    owner: str | None = None
    inbound_addr: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "disk": self.disk,
            "console_log": self.console_log,
            "owner": self.owner,
            "inbound_addr": self.inbound_addr,
        }

    @classmethod
    def from_dict(cls, data: Any, field_name: str = "dest_files") -> DestFiles:
        data = f.mapping(data or {}, field_name)
        return cls(
            disk=f.optional_text(data.get("disk"), f"{field_name}.disk", PATH_MAX),
            console_log=f.optional_text(
                data.get("console_log"), f"{field_name}.console_log", PATH_MAX
            ),
            owner=f.optional_text(data.get("owner"), f"{field_name}.owner"),
            inbound_addr=f.optional_text(data.get("inbound_addr"), f"{field_name}.inbound_addr"),
        )


@dataclass(frozen=True, slots=True)
class LiveSourceTask:
    instance: InstanceRef
    dest_host: str
    dest_uri: str | None = None
    netdevs: dict[str, str] = field(default_factory=dict)
    hostdevs: dict[PciAddress, PciAddress] = field(default_factory=dict)
    unplug: tuple[InterfaceTask, ...] = ()
    dest_files: DestFiles = field(default_factory=DestFiles)

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance.to_dict(),
            "dest_host": self.dest_host,
            "dest_uri": self.dest_uri,
            "netdevs": dict(self.netdevs),
            "hostdevs": [{"source": str(s), "dest": str(d)} for s, d in self.hostdevs.items()],
            "unplug": [t.to_dict() for t in self.unplug],
            "dest_files": self.dest_files.to_dict(),
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
            dest_files=DestFiles.from_dict(data.get("dest_files")),
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
