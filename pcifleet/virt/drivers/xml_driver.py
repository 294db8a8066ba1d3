"""The ``xml`` driver: domains as files in a state directory, no hypervisor.

Layout under ``<state_dir>``:
- ``domains/<uuid>.xml``: each domain's XML;
- ``power/<uuid>``: its power state (a ``PowerState`` value; absent: shut off);
- ``console/<uuid>.log``: its serial console. With no guest to print anything,
  the driver writes a line there for every power change, as a hypervisor's log
  would show them, so ``console_output`` has something true to return.

Every file but the console log goes to a temporary file in the same directory
and is renamed into place, so a reader (or a crash) never sees half a domain or
half a state. File names come only from canonical UUIDs, so no input can name a
path outside the state directory. One driver instance is safe across threads;
separate processes must not share a state directory.

State directories from before the ``power/`` files kept an empty
``running/<uuid>`` marker for a started domain; it is still read as running,
and dropped on the domain's next power change.
"""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from pcifleet.virt import domain_edit
from pcifleet.virt.console import append_line, check_length, read_tail
from pcifleet.virt.domain_xml import domain_xml
from pcifleet.virt.drivers.base import DEFAULT_SHUTDOWN_TIMEOUT, DomainInfo, DriverInfo, VirtDriver
from pcifleet.virt.errors import DomainExists, DomainNotFound, DomainStateError, VirtDriverError
from pcifleet.virt.interface_xml import DeviceSpec
from pcifleet.virt.marker import marked_owner, marked_uuid
from pcifleet.virt.model import DomainSpec
from pcifleet.virt.power import PowerState, check_timeout, require
from pcifleet.virt.validate import check_uuid

P = PowerState


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once (temp file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class XmlDriver(VirtDriver):
    """Writes each domain's XML to ``state_dir``; power changes only rewrite a state file."""

    name = "xml"

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self._domains = self.state_dir / "domains"
        self._power = self.state_dir / "power"
        self._console = self.state_dir / "console"
        self._legacy_running = self.state_dir / "running"
        for folder in (self._domains, self._power, self._console):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        self._names: dict[str, str] | None = None

    def describe(self) -> DriverInfo:
        return DriverInfo(
            name=self.name,
            description="domain XML written to files; no hypervisor (simulated hosts)",
            location=str(self.state_dir),
            live_attach=True,
        )

    def path_of(self, uuid: str) -> Path:
        """Where the XML of domain ``uuid`` lives (whether or not it exists)."""
        return self._domains / f"{check_uuid(uuid)}.xml"

    def console_log_path(self, uuid: str) -> Path:
        """Where the driver writes domain ``uuid``'s console lines."""
        return self._console / f"{check_uuid(uuid)}.log"

    def _read(self, uuid: str) -> str:
        path = self.path_of(uuid)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DomainNotFound(f"no domain with UUID {uuid}") from None

    # -- power state files --------------------------------------------------------

    def _state(self, uuid: str) -> PowerState:
        uuid = check_uuid(uuid)
        try:
            text = (self._power / uuid).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            legacy = (self._legacy_running / uuid).exists()
            return P.RUNNING if legacy else P.SHUTDOWN
        try:
            return P(text)
        except ValueError:
            # Someone wrote this file by hand: say we cannot tell rather than guess.
            return P.NOSTATE

    def _set_state(self, uuid: str, state: PowerState, *events: str) -> None:
        uuid = check_uuid(uuid)
        atomic_write(self._power / uuid, state.value + "\n")
        (self._legacy_running / uuid).unlink(missing_ok=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for event in events:
            append_line(self.console_log_path(uuid), f"[{stamp}] pcifleet xml driver: {event}")

    def _info(self, text: str, uuid: str) -> DomainInfo:
        try:
            root = domain_edit.read_domain(text)
        except VirtDriverError as exc:
            raise VirtDriverError(f"{self.path_of(uuid)}: {exc}") from None
        ident = domain_edit.identity(root)
        managed = marked_uuid(root) is not None
        return DomainInfo(
            ident.uuid, ident.name, ident.title, self._state(uuid), managed, marked_owner(root)
        )

    # -- definition -----------------------------------------------------------------

    def _name_index(self) -> dict[str, str]:
        # name -> uuid of every domain, read once: checking a new name against
        # every file on each define made a host of n domains pay n parses.
        # Only this driver writes its state directory, so the index stays true.
        if self._names is None:
            self._names = {d.name: d.uuid for d in self.list()}
        return self._names

    def define(self, spec: DomainSpec) -> DomainInfo:
        with self._lock:
            names = self._name_index()
            other = names.get(spec.name)
            if other is not None and other != spec.uuid:
                raise DomainExists(f"domain {spec.name!r} already exists with UUID {other}")
            text = domain_xml(spec)
            atomic_write(self.path_of(spec.uuid), text)
            info = self._info(text, spec.uuid)
            for name, uuid in list(names.items()):
                if uuid == info.uuid:
                    del names[name]  # a redefine may rename the domain
            names[info.name] = info.uuid
            return info

    def define_xml(self, xml: str, name: str, uuid: str) -> DomainInfo:
        """Define domain XML as it is: a live migration's, written by the source
        (``domain_edit.retarget``); it must name ``uuid``."""
        root = domain_edit.read_domain(xml)
        found = domain_edit.identity(root)
        if found.uuid != check_uuid(uuid) or found.name != name:
            raise VirtDriverError(f"the XML describes {found.name!r} ({found.uuid}), not {uuid}")
        with self._lock:
            names = self._name_index()
            other = names.get(name)
            if other is not None and other != found.uuid:
                raise DomainExists(f"domain {name!r} already exists with UUID {other}")
            atomic_write(self.path_of(found.uuid), xml)
            names[name] = found.uuid
            return self._info(xml, found.uuid)

    def undefine(self, uuid: str) -> None:
        with self._lock:
            self._read(uuid)
            if self._state(uuid).active:
                raise DomainStateError(f"domain {uuid} is running; destroy it first")
            # As libvirt's undefine with VIR_DOMAIN_UNDEFINE_MANAGED_SAVE: a saved
            # image goes with its domain. The console log stays, as qemu's logs do.
            (self._power / check_uuid(uuid)).unlink(missing_ok=True)
            (self._legacy_running / check_uuid(uuid)).unlink(missing_ok=True)
            self.path_of(uuid).unlink()
            if self._names is not None:
                self._names = {n: u for n, u in self._names.items() if u != uuid}

    def attach_interface(self, uuid: str, device: DeviceSpec) -> None:
        with self._lock:
            atomic_write(self.path_of(uuid), domain_edit.add_device(self._read(uuid), device))

    def detach_interface(self, uuid: str, device: DeviceSpec) -> None:
        with self._lock:
            atomic_write(self.path_of(uuid), domain_edit.remove_device(self._read(uuid), device))

    def list(self) -> list[DomainInfo]:
        with self._lock:
            found = []
            for path in sorted(self._domains.glob("*.xml")):
                found.append(self._info(path.read_text(encoding="utf-8"), path.stem))
            return found

    def info(self, uuid: str) -> DomainInfo:
        with self._lock:
            return self._info(self._read(uuid), uuid)

    def get_xml(self, uuid: str) -> str:
        with self._lock:
            return self._read(uuid)

    # -- power ------------------------------------------------------------------------

    def power_state(self, uuid: str) -> PowerState:
        with self._lock:
            self._read(uuid)
            return self._state(uuid)

    def start(self, uuid: str) -> None:
        with self._lock:
            state = self.power_state(uuid)
            if state.active:
                raise DomainStateError(f"domain {uuid} is already running")
            if state is P.SUSPENDED:
                self._set_state(uuid, P.RUNNING, "domain restored from its saved image")
            else:
                self._set_state(uuid, P.RUNNING, "domain started")

    def destroy(self, uuid: str) -> None:
        with self._lock:
            if self.power_state(uuid) in (P.RUNNING, P.PAUSED, P.CRASHED, P.NOSTATE):
                self._set_state(uuid, P.SHUTDOWN, "domain powered off (destroyed)")

    def stop(self, uuid: str, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        timeout = check_timeout(timeout)
        with self._lock:
            state = self.power_state(uuid)
            if state is P.SHUTDOWN:
                return
            require("stop", uuid, state, P.RUNNING, P.PAUSED, P.CRASHED, P.NOSTATE)
            if state is P.RUNNING and timeout > 0:
                # No guest here: it always honours the power button at once.
                self._set_state(
                    uuid, P.SHUTDOWN, "ACPI power button pressed", "guest shut down cleanly"
                )
            else:
                self._set_state(uuid, P.SHUTDOWN, "domain powered off (destroyed)")

    def reboot(self, uuid: str, hard: bool, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
        timeout = check_timeout(timeout)
        with self._lock:
            state = self.power_state(uuid)
            if hard:
                events = ["domain reset (hard reboot)"]
                if state is P.SUSPENDED:
                    events.insert(0, "saved image discarded")
                self._set_state(uuid, P.RUNNING, *events)
                return
            require("soft reboot", uuid, state, P.RUNNING)
            self._set_state(uuid, P.RUNNING, "ACPI reboot requested", "guest rebooted")

    def pause(self, uuid: str) -> None:
        with self._lock:
            require("pause", uuid, self.power_state(uuid), P.RUNNING)
            self._set_state(uuid, P.PAUSED, "domain paused (vCPUs stopped)")

    def unpause(self, uuid: str) -> None:
        with self._lock:
            require("unpause", uuid, self.power_state(uuid), P.PAUSED)
            self._set_state(uuid, P.RUNNING, "domain resumed (vCPUs running)")

    def suspend(self, uuid: str) -> None:
        with self._lock:
            require("suspend", uuid, self.power_state(uuid), P.RUNNING, P.PAUSED)
            self._set_state(uuid, P.SUSPENDED, "domain memory saved to disk; domain stopped")

    def resume(self, uuid: str) -> None:
        with self._lock:
            require("resume", uuid, self.power_state(uuid), P.SUSPENDED)
            self._set_state(uuid, P.RUNNING, "domain restored from its saved image")

    def console_output(self, uuid: str, length: int | None = None) -> str:
        length = check_length(length)
        with self._lock:
            self._read(uuid)
            try:
                return read_tail(self.console_log_path(uuid), length)
            except FileNotFoundError:
                return ""  # never powered on: nothing printed yet
            except OSError as exc:
                raise VirtDriverError(f"console log of domain {uuid}: {exc}") from None
