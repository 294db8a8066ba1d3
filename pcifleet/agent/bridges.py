"""Host networking for normal ports: one Linux bridge per network, with its uplink.

This is the only module of pcifleet that changes a host's network interfaces,
and everything in ``LinuxBridges`` needs root (CAP_NET_ADMIN): it runs
iproute2's ``ip``. As Neutron's linuxbridge agent does, a network's bridge is
``brq`` + the network id's first 11 characters; its uplink is, on a ``vlan``
network, the VLAN subinterface ``<iface>.<vlan>`` of the physical network's
interface, on a ``flat`` network the interface itself, found through the
agent's ``physical_interface_mappings`` (``["physnet1:eth1"]``). A ``local``
network, or a physical network with no mapping, gets a bridge with no uplink.

Plugging is idempotent: a second server on a network finds its bridge and
uplink in place. Bridges and VLAN subinterfaces are never removed when a server
goes, because the network's other servers on this host share them.

``NoHostNetworking`` is the step for simulated hosts (the ``xml`` driver):
it touches nothing.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

from pcifleet.virt.tasks import BridgeBinding
from pcifleet.virt.validate import check_ifname

log = logging.getLogger(__name__)
IP_TIMEOUT = 30.0


class BridgeError(RuntimeError):
    """A bridge or its uplink cannot be made; the message says which and why."""


class HostNetworking(Protocol):
    """The agent's host networking step, run before a domain is defined."""

    def plug(self, binding: BridgeBinding) -> None:
        """Make sure the bridge of ``binding`` and its uplink exist and are up."""


class NoHostNetworking:
    """For simulated hosts: bridges are only named in the domain XML."""

    def plug(self, binding: BridgeBinding) -> None:
        return None


class LinuxBridges:
    """Linux bridges made with ``ip`` (needs root).

    ``command_prefix`` is put before each ``ip`` command, e.g. ``["ip", "netns",
    "exec", "test-ns"]`` to work inside a network namespace.
    """

    def __init__(self, mappings: Mapping[str, str], command_prefix: Sequence[str] = ()) -> None:
        self.mappings = dict(mappings)
        self.prefix = list(command_prefix)
        self._warned: set[str] = set()

    def plug(self, binding: BridgeBinding) -> None:
        bridge = binding.bridge_name
        if not self._exists(bridge):
            self._add(bridge, "type", "bridge")
        self._ip("link", "set", "dev", bridge, "up")
        uplink = self._uplink(binding)
        if uplink is None:
            return
        master = self._master(uplink)
        if master is not None and master != bridge:
            # Never take an interface away from a bridge someone else made.
            raise BridgeError(f"{uplink} is already a port of {master}, not of {bridge}")
        if master is None:
            self._ip("link", "set", "dev", uplink, "master", bridge)
        self._ip("link", "set", "dev", uplink, "up")

    def _uplink(self, binding: BridgeBinding) -> str | None:
        physnet = binding.physical_network
        if binding.network_type == "local" or physnet is None:
            return None
        iface = self.mappings.get(physnet)
        if iface is None:
            if physnet not in self._warned:
                self._warned.add(physnet)
                log.warning(
                    "physical network %s has no entry in physical_interface_mappings: "
                    "bridge %s has no uplink, its servers reach only this host",
                    physnet,
                    binding.bridge_name,
                )
            return None
        if not self._exists(iface):
            raise BridgeError(f"interface {iface} of physical network {physnet} does not exist")
        if binding.network_type != "vlan":
            return iface
        name = f"{iface}.{binding.segmentation_id}"
        try:
            check_ifname(name, "vlan interface")
        except ValueError:
            raise BridgeError(
                f"VLAN interface name {name} is longer than the kernel's 15 characters"
            ) from None
        if not self._exists(name):
            self._add(name, "link", iface, "type", "vlan", "id", str(binding.segmentation_id))
        return name

    def _add(self, name: str, *spec: str) -> None:
        done = self._ip("link", "add", "name", name, *spec, check=False)
        # Another build may have made it a moment ago: that is as good.
        if done.returncode != 0 and not self._exists(name):
            raise BridgeError(f"cannot add {name}: {done.stderr.strip() or done.returncode}")

    def _exists(self, name: str) -> bool:
        return self._ip("link", "show", "dev", name, check=False).returncode == 0

    def _master(self, name: str) -> str | None:
        out = self._ip("-j", "link", "show", "dev", name).stdout
        try:
            links = json.loads(out)
            master = links[0].get("master")
        except (ValueError, IndexError, AttributeError):
            raise BridgeError(f"cannot read `ip -j link show dev {name}`: {out[:200]!r}") from None
        return None if master is None else str(master)

    def _ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*self.prefix, "ip", *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BridgeError(f"{' '.join(command)}: {exc}") from None
        if check and done.returncode != 0:
            raise BridgeError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
        return done


def parse_mappings(entries: Sequence[str]) -> dict[str, str]:
    """``["physnet1:eth1", ...]`` as ``{"physnet1": "eth1"}``; ``ValueError``
    naming the entry when one is malformed or a physical network repeats."""
    out: dict[str, str] = {}
    for entry in entries:
        physnet, sep, iface = str(entry).partition(":")
        physnet, iface = physnet.strip(), iface.strip()
        if not sep or not physnet or not iface:
            raise ValueError(f"{entry!r} is not physical_network:interface like physnet1:eth1")
        check_ifname(iface, f"interface of {physnet}")
        if physnet in out:
            raise ValueError(f"physical network {physnet} is mapped twice")
        out[physnet] = iface
    return out
