"""One ``pcifleet up`` per data directory, and what ``pcifleet down`` reads back.

``up`` holds an exclusive lock on ``DATA_DIR/up.lock`` while it runs (the
kernel drops it when the process ends, however it ends), so a second ``up`` on
the same directory, or a ``down`` while it runs, is refused instead of two
controllers sharing one store. The lock file also names the process.

Each host whose agent runs real domains (``--virt libvirt``, ``--local``)
records in ``hosts/NAME/libvirt.json`` its daemon's URI, the owner name its
domains are marked with and its disks' directory, so ``down`` finds them
later without the options ``up`` was started with.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pcifleet.cli.errors import CliError

LOCK_FILE = "up.lock"
RECORD_FILE = "libvirt.json"


def hold_lock(data_dir: Path, what: str) -> IO[str]:
    """Take the data directory's lock for ``what`` (``up``, ``down``); the open
    file holds it until it is closed or the process ends. CliError naming the
    holder when another process has it."""
    path = data_dir / LOCK_FILE
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise CliError(
            f"{data_dir} is in use by {holder}: stop it first (one `pcifleet up` per data "
            "directory)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pcifleet {what} (pid {os.getpid()})\n")
    handle.flush()
    return handle


@dataclass(frozen=True)
class DomainRecord:
    """Where one host's real domains are: the daemon, their owner, their disks."""

    uri: str
    owner: str
    disks_dir: Path


def record_domains(host_dir: Path, record: DomainRecord) -> None:
    host_dir.mkdir(parents=True, exist_ok=True)
    data = {"uri": record.uri, "owner": record.owner, "disks_dir": str(record.disks_dir)}
    (host_dir / RECORD_FILE).write_text(json.dumps(data) + "\n", encoding="utf-8")


def recorded_domains(host_dir: Path) -> DomainRecord | None:
    """The host's record, or None when it has none (an ``xml`` host) or it is unreadable."""
    try:
        data = json.loads((host_dir / RECORD_FILE).read_text(encoding="utf-8"))
        return DomainRecord(str(data["uri"]), str(data["owner"]), Path(data["disks_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
