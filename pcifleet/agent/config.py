"""The agent's settings: the ``[agent]`` section of ``pcifleet.toml`` plus flags.

```toml
[agent]
controller = "http://controller:8774"
host = "compute-1"
credential_file = "/etc/pcifleet/credential"   # or credential = "..."
driver = "libvirt"                              # or "xml"
libvirt_uri = "qemu:///system"
state_dir = "/var/lib/pcifleet"
sysfs_root = "/sys"
report_interval = 60
console_dir = "/var/lib/pcifleet/console"       # default: <state_dir>/console
sweep_interval = 300                            # seconds; 0 turns the sweep off
plug_bridges = true                             # default: libvirt true (test:// false), xml false
physical_interface_mappings = ["physnet1:eth1"] # as Neutron's linuxbridge agent
live_migration_uri = "qemu+tls://%s/system"     # libvirt: where a live migration goes
live_migration_inbound_addr = "10.0.0.11"       # this host's address for migrations to it
```

Under ``state_dir`` the agent keeps ``images/<id>`` (each image, downloaded and
checked once per host) and ``disks/<server uuid>.qcow2`` (each server's own
overlay on its image; see ``pcifleet.agent.disks``).
``plug_bridges`` lets the agent make a Linux bridge per network for normal
ports (``pcifleet.agent.bridges``, needs root); a simulated host (the ``xml``
driver) leaves the host's interfaces alone unless it is set.

``console_dir`` is where each built server's serial console is logged
(``<uuid>.log``); with the libvirt driver, libvirt's log daemon (or qemu) writes
there, so a confined host (SELinux, AppArmor) must allow that directory, or
point this at one it already allows.

``live_migration_uri`` (Nova's ``[libvirt] live_migration_uri``) is the
destination hypervisor of a live migration, ``%s`` the destination's
``live_migration_inbound_addr`` (Nova's too: the address, on the migration
network, that this host's hypervisor and its guests' memory stream are
reached at), else its host name. Without it, or with the xml driver, the
agents carry the domain's XML from one host to the other instead
(``pcifleet.agent.live``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcifleet.agent.bridges import parse_mappings

DEFAULT_REPORT_INTERVAL = 60.0
DEFAULT_POLL_WAIT = 20.0
# How often pcifleet domains the controller no longer knows are removed.
DEFAULT_SWEEP_INTERVAL = 300.0


class AgentConfigError(ValueError):
    """A missing or malformed agent setting; the message names it."""


@dataclass(frozen=True)
class AgentConfig:
    controller: str
    host: str
    credential: str
    driver: str = "libvirt"
    libvirt_uri: str = "qemu:///system"
    state_dir: Path = Path("/var/lib/pcifleet")
    sysfs_root: Path = Path("/sys")
    nodedev_xml: Path | None = None
    report_interval: float = DEFAULT_REPORT_INTERVAL
    poll_wait: float = DEFAULT_POLL_WAIT
    vcpus: int | None = None
    memory_mb: int | None = None
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL
    console_dir_setting: Path | None = None
    plug_bridges_setting: bool | None = None
    physical_interface_mappings: tuple[tuple[str, str], ...] = ()
    # The name this agent marks its domains with (default: the host's name);
    # simulated hosts sharing one libvirtd each get their own.
    domain_owner: str | None = None
    # The VF netdevs are veths standing in for VFs (pcifleet up --virt libvirt).
    veth_vfs: bool = False
    # "%s" is the destination host; None: the agents carry the XML (see above)
    live_migration_uri: str | None = None
    # what "%s" is when another host migrates a guest here (default: the host name)
    live_migration_inbound_addr: str | None = None

    @property
    def owner(self) -> str:
        """Who this agent's domains belong to, as written in their pcifleet mark."""
        return self.domain_owner or self.host

    @property
    def plug_bridges(self) -> bool:
        """Whether builds make their networks' bridges on this host (default:
        only with the libvirt driver on a real hypervisor, so a simulated host —
        the xml driver, or libvirt's ``test://`` driver — changes nothing)."""
        if self.plug_bridges_setting is not None:
            return self.plug_bridges_setting
        return self.driver == "libvirt" and not self.libvirt_uri.startswith("test:")

    @property
    def console_dir(self) -> Path:
        """Where built servers log their serial console (default ``<state_dir>/console``,
        the same place the xml driver writes its console lines)."""
        return self.console_dir_setting or self.state_dir / "console"

    def driver_options(self) -> dict[str, Any]:
        if self.driver == "xml":
            return {"state_dir": self.state_dir}
        if self.driver == "libvirt":
            return {"uri": self.libvirt_uri}
        return {}

    @property
    def image_cache(self) -> Path:
        return self.state_dir / "images"


def _get(section: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = section.get(key, default)
    if value is None:
        return None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise AgentConfigError(f"[agent] {key} must be a {kind.__name__}, got {value!r}")
    return value


def _bool(section: Mapping[str, Any], key: str) -> bool | None:
    value = section.get(key)
    if value is not None and not isinstance(value, bool):
        raise AgentConfigError(f"[agent] {key} must be true or false, got {value!r}")
    return value


def _mappings(section: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    entries = section.get("physical_interface_mappings", [])
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise AgentConfigError(
            "[agent] physical_interface_mappings must be a list of strings like "
            f'"physnet1:eth1", got {entries!r}'
        )
    try:
        return tuple(parse_mappings(entries).items())
    except ValueError as exc:
        raise AgentConfigError(f"[agent] physical_interface_mappings: {exc}") from None


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def agent_config(raw: Mapping[str, Any], **overrides: Any) -> AgentConfig:
    """Build the config from the TOML document's ``[agent]`` and non-None overrides."""
    section = raw.get("agent", {})
    if not isinstance(section, Mapping):
        raise AgentConfigError("[agent] must be a table")
    values: dict[str, Any] = {
        "controller": _get(section, "controller", str, None),
        "host": _get(section, "host", str, None) or socket.gethostname(),
        "driver": _get(section, "driver", str, "libvirt"),
        "libvirt_uri": _get(section, "libvirt_uri", str, "qemu:///system"),
        "state_dir": Path(_get(section, "state_dir", str, "/var/lib/pcifleet")),
        "sysfs_root": Path(_get(section, "sysfs_root", str, "/sys")),
        "report_interval": _get(section, "report_interval", float, DEFAULT_REPORT_INTERVAL),
        "vcpus": _get(section, "vcpus", int, None),
        "memory_mb": _get(section, "memory_mb", int, None),
        "sweep_interval": _get(section, "sweep_interval", float, DEFAULT_SWEEP_INTERVAL),
        "console_dir_setting": _path(_get(section, "console_dir", str, None)),
        "plug_bridges_setting": _bool(section, "plug_bridges"),
        "physical_interface_mappings": _mappings(section),
        "live_migration_uri": _get(section, "live_migration_uri", str, None),
        "live_migration_inbound_addr": _get(section, "live_migration_inbound_addr", str, None),
    }
    credential = _get(section, "credential", str, None)
    credential_file = _get(section, "credential_file", str, None)
    for key, value in overrides.items():
        if value is not None:
            if key == "credential_file":
                credential_file = str(value)
            elif key == "credential":
                credential = value
            elif key == "console_dir":
                values["console_dir_setting"] = Path(value)
            else:
                values[key] = value
    if credential is None and credential_file is not None:
        try:
            credential = Path(credential_file).read_text().strip()
        except OSError as exc:
            raise AgentConfigError(f"credential_file {credential_file}: {exc.strerror}") from None
    credential = credential or os.environ.get("PCIFLEET_AGENT_CREDENTIAL")
    if not values["controller"]:
        raise AgentConfigError("controller URL is not set ([agent] controller or --controller)")
    if not credential:
        raise AgentConfigError(
            "no host credential: set [agent] credential_file, --credential-file or "
            "PCIFLEET_AGENT_CREDENTIAL (an admin makes one with `pcifleet host credential HOST`)"
        )
    if values["driver"] not in ("xml", "libvirt"):
        raise AgentConfigError(
            f"[agent] driver must be 'xml' or 'libvirt', got {values['driver']!r}"
        )
    if values["report_interval"] is not None and values["report_interval"] <= 0:
        raise AgentConfigError("[agent] report_interval must be positive")
    if values["sweep_interval"] is None or values["sweep_interval"] < 0:
        raise AgentConfigError("[agent] sweep_interval must be 0 (off) or more seconds")
    console_dir = values["console_dir_setting"]
    if console_dir is not None and not console_dir.is_absolute():
        raise AgentConfigError(f"[agent] console_dir must be an absolute path, got {console_dir}")
    return AgentConfig(credential=credential, **values)
