"""The disks cold moves carry: a server's overlay, handed by its source host to
the controller and taken from there by its destination (hosts never talk to
each other).

Each copy is ``<data_dir>/move-disks/<server uuid>/<migration uuid>``; its
SHA-256 and size are recorded on the migration, in the same compare and swap
that accepts it, so the destination's build names exactly what it must get.

- The source may hand it over while the migration is ``migrating`` (it has
  stopped the guest), once: a second upload is accepted only if it is the same
  file (an agent retrying after a lost answer).
- The destination may read it once it is recorded, while the move is open.
- A copy lives as long as its migration is open and goes once the move is
  confirmed, reverted or failed (``sweep_copies``: after a result, and at
  every reconciler pass for what a crash or a delete left behind).

Names from a request never reach a path: the copy's place is made from the
migration row's own ids.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid as uuid_mod
from pathlib import Path

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from pcifleet.compute.errors import Conflict, NotFound
from pcifleet.compute.moves import CLOSED
from pcifleet.store.models import Migration
from pcifleet.store.models import migrations_table as M

log = logging.getLogger(__name__)

COPIES_DIR = "move-disks"
# An upload writes its part file chunk by chunk: one untouched this long died.
PART_GRACE_SECONDS = 600.0
# the migrations whose disk travels (evacuations rebuild, live ones copy live)
COLD = ("migration", "resize")


def copies_root(data_dir: Path) -> Path:
    return Path(data_dir) / COPIES_DIR


def copy_path(data_dir: Path, migration: Migration) -> Path:
    """Where the controller keeps ``migration``'s disk (whether or not it is there)."""
    return copies_root(data_dir) / migration.instance_uuid / migration.uuid


def _find(session: Session, migration_uuid: str) -> Migration | None:
    try:
        canonical = str(uuid_mod.UUID(migration_uuid))
    except ValueError:
        return None
    return session.scalar(select(Migration).where(Migration.uuid == canonical))


def upload_target(session: Session, migration_uuid: str, host: str) -> Migration:
    """The cold move whose source ``host`` may hand over the server's disk now."""
    found = _find(session, migration_uuid[:64])
    if found is None or found.source_compute != host or found.migration_type not in COLD:
        raise NotFound(
            f"migration {migration_uuid[:64]} has no disk to hand over from host {host[:64]}",
            kind="pcifleet.migration_not_found",
        )
    if found.status != "migrating":
        raise Conflict(
            f"migration {found.uuid} is {found.status}: its source hands over the disk "
            "only while it is migrating",
            kind="pcifleet.migration_state",
        )
    return found


def record_disk(session: Session, migration: Migration, sha256: str, size: int) -> None:
    """Accept the disk as ``migration``'s (compare and swap: still migrating,
    and no other disk recorded); ``Conflict`` otherwise."""
    done = session.execute(
        update(M)
        .where(
            M.c.id == migration.id,
            M.c.status == "migrating",
            or_(
                M.c.disk_sha256.is_(None),
                (M.c.disk_sha256 == sha256) & (M.c.disk_size == size),
            ),
        )
        .values(disk_sha256=sha256, disk_size=size)
    )
    if getattr(done, "rowcount", 0) != 1:
        raise Conflict(
            f"migration {migration.uuid} moved on, or has another disk already",
            kind="pcifleet.migration_state",
        )


def download_source(
    session: Session, data_dir: Path, migration_uuid: str, host: str
) -> tuple[Path, str]:
    """The disk the destination ``host`` of an open cold move may take, and its
    SHA-256."""
    found = _find(session, migration_uuid[:64])
    if (
        found is None
        or found.dest_compute != host
        or found.disk_sha256 is None
        or found.status in CLOSED
    ):
        raise NotFound(
            f"migration {migration_uuid[:64]} has no disk for host {host[:64]}",
            kind="pcifleet.migration_not_found",
        )
    path = copy_path(data_dir, found)
    if not path.is_file():
        raise Conflict(
            f"the disk of migration {found.uuid} is recorded but its file is gone",
            kind="pcifleet.disk_missing",
        )
    return path, found.disk_sha256


def sweep_copies(
    engine: Engine,
    data_dir: Path,
    server_uuid: str | None = None,
    part_grace: float = PART_GRACE_SECONDS,
) -> int:
    """Remove the copies whose move is over (or unknown), and part files no
    upload has written for ``part_grace`` seconds; of one server, or all.
    Returns how many files went."""
    root = copies_root(data_dir)
    if server_uuid is None:
        dirs = _children(root)
    else:
        try:
            dirs = [root / str(uuid_mod.UUID(server_uuid))]
        except ValueError:
            return 0  # no server's copies are kept under a name that is not a UUID
    removed = 0
    now = time.time()
    for folder in dirs:
        files = _children(folder)
        done = [p for p in files if not p.name.startswith(".")]
        if done:
            with Session(engine) as session:
                status = dict(
                    session.execute(
                        select(Migration.uuid, Migration.status).where(
                            Migration.uuid.in_([p.name for p in done])
                        )
                    ).all()
                )
            for path in done:
                if status.get(path.name, "gone") in (*CLOSED, "gone"):
                    removed += _unlink(path)
        for path in files:
            if path.name.startswith(".") and _idle(path, now) > part_grace:
                removed += _unlink(path)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
    return removed


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _idle(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except OSError:
        return 0.0


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("move disk %s stays for now: %s", path, exc)
        return 0
    log.info("removed move disk %s: its move is over", path)
    return 1
