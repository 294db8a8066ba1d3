"""A cold move's disk through the controller (``pcifleet.compute.move_disks``):

- ``PUT /pcifleet/v1/hosts/{host}/migrations/{migration_uuid}/disk`` -- the
  source's agent hands over the server's overlay once it has stopped the
  guest. The body streams to a part file (never held in memory), at most
  ``move_disk_max_bytes`` (413 past it), and its SHA-256 must be the one the
  agent names in ``X-Disk-Sha256`` (400 ``pcifleet.checksum_mismatch``).
- ``GET`` the same path -- the destination's agent takes it, with its
  ``X-Disk-Sha256`` to check.

Only the migration's own source may hand a disk over and only its
destination may take it (an agent of another host gets 404, as for an
unknown migration: the id tells it nothing it has a use for).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from pcifleet.api.agents import CallerDep
from pcifleet.api.deps import SessionDep, SettingsDep
from pcifleet.api.errors import BadRequest, TooLarge
from pcifleet.api.input_check import id_number
from pcifleet.compute.move_disks import copy_path, download_source, record_disk, upload_target
from pcifleet.store.private import FILE_MODE, private_dir

router = APIRouter(prefix="/pcifleet/v1", tags=["pcifleet"])
SHA_HEADER = "X-Disk-Sha256"
PATH = "/hosts/{host}/migrations/{migration_uuid}/disk"
CHUNK = 1 << 20


def _finish(out: BinaryIO, rest: bytes) -> None:
    out.write(rest)
    out.flush()
    os.fsync(out.fileno())


def _claimed_sha256(value: str | None) -> str:
    text = (value or "").strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise BadRequest(
            f"{SHA_HEADER}: give the disk's SHA-256 as 64 hex digits, got {text[:80]!r}",
            kind="pcifleet.bad_checksum",
        )
    return text


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the disk is larger than the controller takes ({limit} bytes, "
        "the setting move_disk_max_bytes)",
        kind="pcifleet.disk_too_large",
    )


@router.put(PATH, status_code=204)
async def hand_over_disk(
    host: str,
    migration_uuid: str,
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> Response:
    caller.require_host(host)
    claimed = _claimed_sha256(request.headers.get(SHA_HEADER))
    limit = settings.move_disk_max_bytes
    length = request.headers.get("content-length", "")
    if id_number(length) is not None and int(length) > limit:
        raise _too_large(limit)
    migration = await run_in_threadpool(upload_target, session, migration_uuid, host)
    final = copy_path(settings.data_dir, migration)
    private_dir(final.parent.parent)  # move-disks/ itself: tenants' data below
    private_dir(final.parent)
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".part")
    part = Path(name)
    try:
        os.fchmod(fd, FILE_MODE)
        digest, size, waiting = hashlib.sha256(), 0, bytearray()
        with os.fdopen(fd, "wb") as out:
            # Writes and the final fsync of a disk of many GB go to a worker
            # thread a megabyte at a time, so the event loop (and every agent's
            # long-poll on it) never waits on the file system.
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                digest.update(chunk)
                waiting += chunk
                if len(waiting) >= CHUNK:
                    data = bytes(waiting)
                    waiting.clear()
                    await run_in_threadpool(out.write, data)
            await run_in_threadpool(_finish, out, bytes(waiting))
        if digest.hexdigest() != claimed:
            raise BadRequest(
                f"the disk's SHA-256 is {digest.hexdigest()}, not {claimed} as "
                f"{SHA_HEADER} says: it was damaged on the way; nothing was kept",
                kind="pcifleet.checksum_mismatch",
            )

        def accept() -> None:
            record_disk(session, migration, claimed, size)
            session.commit()

        await run_in_threadpool(accept)
        # Recorded first: a crash before this rename leaves a recorded disk with
        # no file, which the destination reports as such, never a wrong disk.
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)
    return Response(status_code=204)


@router.get(PATH, response_model=None)
def take_disk(
    host: str, migration_uuid: str, session: SessionDep, caller: CallerDep, settings: SettingsDep
) -> FileResponse:
    caller.require_host(host)
    path, sha256 = download_source(session, settings.data_dir, migration_uuid, host)
    return FileResponse(path, media_type="application/octet-stream", headers={SHA_HEADER: sha256})
