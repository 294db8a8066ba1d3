"""The ``xml`` driver: domains as files in a state directory, no hypervisor.

Layout: ``<state_dir>/domains/<uuid>.xml`` holds each domain's XML, and an empty
``<state_dir>/running/<uuid>`` marks a started one. Every write goes to a
temporary file in the same directory and is renamed into place, so a reader (or
a crash) never sees half a domain. File names come only from canonical UUIDs,
so no input can name a path outside the state directory. One driver instance is
safe across threads; separate processes must not share a state directory.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from pcifleet.virt import domain_edit
from pcifleet.virt.domain_xml import domain_xml
from pcifleet.virt.drivers.base import DomainInfo, DriverInfo, VirtDriver
from pcifleet.virt.errors import DomainExists, DomainNotFound, DomainStateError, VirtDriverError
from pcifleet.virt.interface_xml import DeviceSpec
from pcifleet.virt.model import DomainSpec
from pcifleet.virt.validate import check_uuid


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
    """Writes each domain's XML to ``state_dir``; start/stop only flip a marker."""

    name = "xml"

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.state_dir = Path(state_dir)
        self._domains = self.state_dir / "domains"
        self._running = self.state_dir / "running"
        self._domains.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._running.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()

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

    def _read(self, uuid: str) -> str:
        path = self.path_of(uuid)
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DomainNotFound(f"no domain with UUID {uuid}") from None

    def _is_running(self, uuid: str) -> bool:
        return (self._running / check_uuid(uuid)).exists()

    def _info(self, text: str, uuid: str) -> DomainInfo:
        try:
            root = domain_edit.read_domain(text)
        except VirtDriverError as exc:
            raise VirtDriverError(f"{self.path_of(uuid)}: {exc}") from None
        ident = domain_edit.identity(root)
        return DomainInfo(ident.uuid, ident.name, ident.title, self._is_running(uuid))

    def define(self, spec: DomainSpec) -> DomainInfo:
        with self._lock:
            for other in self.list():
                if other.name == spec.name and other.uuid != spec.uuid:
                    raise DomainExists(
                        f"domain {spec.name!r} already exists with UUID {other.uuid}"
                    )
            text = domain_xml(spec)
            atomic_write(self.path_of(spec.uuid), text)
            return self._info(text, spec.uuid)

    def start(self, uuid: str) -> None:
        with self._lock:
            self._read(uuid)
            if self._is_running(uuid):
                raise DomainStateError(f"domain {uuid} is already running")
            (self._running / check_uuid(uuid)).touch()

    def destroy(self, uuid: str) -> None:
        with self._lock:
            self._read(uuid)
            (self._running / check_uuid(uuid)).unlink(missing_ok=True)

    def undefine(self, uuid: str) -> None:
        with self._lock:
            self._read(uuid)
            if self._is_running(uuid):
                raise DomainStateError(f"domain {uuid} is running; destroy it first")
            self.path_of(uuid).unlink()

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
