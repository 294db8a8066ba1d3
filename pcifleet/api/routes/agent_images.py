"""Image files for agents: ``GET /pcifleet/v1/hosts/{host}/images/{id}/file``.

An agent holds a host credential, not a keystone token, so it cannot use the
Image API; this gives it the file of an active image a server on its host (or
moving to it) was booted from, and no other: a host credential reads no
project's private image by guessing its id. The
disk format travels in ``X-Image-Disk-Format`` so the domain's disk driver can
be chosen without another call.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from pcifleet.api.agents import CallerDep
from pcifleet.api.deps import SessionDep, SettingsDep
from pcifleet.api.errors import Conflict, NotFound
from pcifleet.api.imagefiles import image_path
from pcifleet.compute.lookup import image_needed_on
from pcifleet.store.cloud import Image

router = APIRouter(prefix="/pcifleet/v1", tags=["pcifleet"])


@router.get("/hosts/{host}/images/{image_id}/file", response_model=None)
def image_file_for_agent(
    host: str, image_id: str, session: SessionDep, settings: SettingsDep, caller: CallerDep
) -> FileResponse:
    caller.require_host(host)
    image = session.get(Image, image_id[:64])
    if image is not None and not caller.admin and not image_needed_on(session, image.id, host):
        image = None  # as unknown: the id tells an agent nothing it has no use for
    if image is None:
        raise NotFound(f"image {image_id[:64]} is not known", kind="pcifleet.image_not_found")
    path = image_path(settings.data_dir, image.id)
    if image.status != "active" or not path.exists():
        raise Conflict(
            f"image {image.id} has no data (status {image.status})",
            kind="pcifleet.image_not_active",
        )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={"X-Image-Disk-Format": image.disk_format or "raw"},
    )
