"""The flavors and images a caller may use: looked up with the visibility rules
the compute and image APIs apply, for their routes and for boot."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from pcifleet.compute.context import Context
from pcifleet.compute.errors import NotFound
from pcifleet.compute.moves import CLOSED
from pcifleet.store.cloud import Flavor, Image
from pcifleet.store.models import Instance, Migration


def specs_of(f: Flavor) -> dict[str, str]:
    return {s.key: s.value for s in f.extra_specs}


def may_use_flavor(ctx: Context, flavor: Flavor) -> bool:
    """Public flavors, any flavor for admins, a private one for the projects
    it was shared with (os-flavor-access)."""
    return (
        flavor.is_public
        or ctx.is_admin
        or any(a.project_id == ctx.project_id for a in flavor.access)
    )


def visible_flavor(session: Session, ctx: Context, flavor_id: str) -> Flavor:
    # a public flavor's access list is never read: load it only when asked
    flavor = session.get(Flavor, flavor_id, options=[lazyload(Flavor.access)])
    if flavor is None or not may_use_flavor(ctx, flavor):
        raise NotFound(f"Flavor {flavor_id[:64]} could not be found.")
    return flavor


def may_see_image(ctx: Context, img: Image) -> bool:
    return img.visibility in ("public", "community") or ctx.may_see(img.owner)


def visible_image(session: Session, ctx: Context, image_id: str) -> Image:
    img = session.get(Image, image_id)
    if img is None or not may_see_image(ctx, img):
        raise NotFound(f"No image found with ID {image_id[:64]}")
    return img


def flavor_snapshot(flavor: Flavor) -> dict[str, Any]:
    """The flavor as a server keeps it (Nova's embedded flavor): what it was when
    the server was made or resized, whatever happens to the flavor later."""
    return {
        "id": flavor.id,
        "original_name": flavor.name,
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "ephemeral": flavor.ephemeral,
        "swap": flavor.swap,
        "extra_specs": specs_of(flavor),
    }


def image_needed_on(session: Session, image_id: str, host: str) -> bool:
    """Whether ``host``'s agent has a reason to read ``image_id``: a live server of
    that image is on the host, or is moving to it (a cold move or evacuation
    builds the destination's disk from the image)."""
    live = (Instance.image_id == image_id) & (Instance.status != "DELETED")
    here = session.scalar(select(Instance.uuid).where(live, Instance.host == host).limit(1))
    if here is not None:
        return True
    moving = session.scalar(
        select(Migration.id)
        .join(Instance, Instance.uuid == Migration.instance_uuid)
        .where(live, Migration.dest_compute == host, Migration.status.not_in(CLOSED))
        .limit(1)
    )
    return moving is not None
