"""Image v2 (glance's subset): records with formats and free-form properties,
upload streamed to ``data_dir/images/<id>``, download, JSON-patch updates
(``pcifleet.api.image_patch``), lists filtered and sorted as glance does
(``pcifleet.api.image_list``)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import Field, ValidationError
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from pcifleet.api.catalog import base_url
from pcifleet.api.deps import (
    Context,
    ContextDep,
    SessionDep,
    SettingsDep,
    new_id,
    timestamp,
    utcnow,
)
from pcifleet.api.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from pcifleet.api.image_list import attribute_params, filter_images, sort_images, sort_order
from pcifleet.api.image_patch import READ_ONLY, apply_changes, is_reserved, parse_patch
from pcifleet.api.imagefiles import image_path
from pcifleet.api.listing import apply_filters, paginate
from pcifleet.api.paths import IMAGE as PREFIX
from pcifleet.compute.lookup import visible_image
from pcifleet.compute.schemas import Name, Strict, nul_path
from pcifleet.store.cloud import Image
from pcifleet.store.private import open_private, private_dir

router = APIRouter(tags=["image"])
DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
VISIBILITIES = ("public", "private", "shared", "community")
CORE = frozenset({"id", "name", "visibility", "disk_format", "container_format", "min_disk",
                  "min_ram", "protected", "tags", "owner", "os_hidden"})  # fmt: skip
MAX_PROPERTIES = 128
MAX_PROPERTY_LEN = 255
MAX_IMAGE_BYTES = 64 * 1024**3
CHUNK = 1024 * 1024


Tag = Annotated[str, Field(max_length=255)]


class ImageCore(Strict):
    id: Annotated[str, Field(min_length=1, max_length=36)] | None = None
    name: Name | None = None
    visibility: Literal["public", "private", "shared", "community"] = "shared"
    disk_format: Literal[DISK_FORMATS] | None = None  # type: ignore[valid-type]
    container_format: Literal[CONTAINER_FORMATS] | None = None  # type: ignore[valid-type]
    min_disk: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    min_ram: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    protected: bool = False
    tags: Annotated[list[Tag], Field(max_length=128)] = Field(default_factory=list)
    owner: Annotated[str, Field(max_length=36)] | None = None
    os_hidden: bool = False


def split_properties(body: Any) -> tuple[ImageCore, dict[str, str]]:
    """The core attributes (validated) and the additional string properties."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    core = {k: v for k, v in body.items() if k in CORE}
    extra = {k: v for k, v in body.items() if k not in CORE}
    for key in extra:
        if key in READ_ONLY:
            raise Forbidden(f"Attribute '{key[:64]}' is read-only.")
        if is_reserved(key):
            raise Forbidden(f"Attribute '{key[:64]}' is reserved.")
    props = check_properties(extra)
    try:
        return ImageCore.model_validate(core), props
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise BadRequest(f"Invalid input for field '{field}': {err['msg']}") from None


def check_properties(extra: dict[str, Any]) -> dict[str, str]:
    if len(extra) > MAX_PROPERTIES:
        raise BadRequest(f"at most {MAX_PROPERTIES} additional properties are allowed")
    props: dict[str, str] = {}
    for key, value in extra.items():
        if not key or len(key) > MAX_PROPERTY_LEN:
            raise BadRequest(f"property name {key[:64]!r} must be 1..{MAX_PROPERTY_LEN} characters")
        if not isinstance(value, str):
            raise BadRequest(f"Invalid input for field '{key[:64]}': property values are strings")
        if len(value) > MAX_PROPERTY_LEN:
            raise BadRequest(
                f"property {key[:64]!r}: value longer than {MAX_PROPERTY_LEN} characters"
            )
        props[key] = value
    return props


def image_view(img: Image) -> dict[str, Any]:
    view: dict[str, Any] = dict(img.properties)
    view.update(
        {
            "id": img.id,
            "name": img.name,
            "status": img.status,
            "visibility": img.visibility,
            "protected": img.protected,
            "os_hidden": img.os_hidden,
            "disk_format": img.disk_format,
            "container_format": img.container_format,
            "min_disk": img.min_disk,
            "min_ram": img.min_ram,
            "size": img.size,
            "virtual_size": None,
            "checksum": img.checksum,
            "os_hash_algo": img.os_hash_algo,
            "os_hash_value": img.os_hash_value,
            "owner": img.owner,
            "tags": img.tags,
            "created_at": timestamp(img.created_at),
            "updated_at": timestamp(img.updated_at),
            "self": f"/v2/images/{img.id}",
            "file": f"/v2/images/{img.id}/file",
            "schema": "/v2/schemas/image",
        }
    )
    return view


def owned_image(session: Session, ctx: Context, image_id: str) -> Image:
    img = visible_image(session, ctx, image_id)
    if not ctx.may_see(img.owner):
        raise Forbidden(f"You are not permitted to modify image {img.id}.")
    return img


@router.get("/image", status_code=300, responses={300: {"description": "The API versions"}})
def versions(request: Request, settings: SettingsDep) -> JSONResponse:
    href = f"{base_url(request, settings)}/image/v2/"
    values = [
        {
            "id": v,
            "status": "CURRENT" if v == "v2.9" else "SUPPORTED",
            "links": [{"rel": "self", "href": href}],
        }
        for v in ("v2.9", "v2.0")
    ]
    return JSONResponse({"versions": values}, status_code=300)


@router.get(PREFIX + "/schemas/{name}")
def schema(name: str, ctx: ContextDep) -> dict[str, Any]:
    properties = {
        "id": {"type": "string"},
        "name": {"type": ["null", "string"], "maxLength": 255},
        "status": {"type": "string", "readOnly": True},
        "visibility": {"type": "string", "enum": list(VISIBILITIES)},
        "disk_format": {"type": ["null", "string"], "enum": [None, *DISK_FORMATS]},
        "container_format": {"type": ["null", "string"], "enum": [None, *CONTAINER_FORMATS]},
        "min_disk": {"type": "integer"},
        "min_ram": {"type": "integer"},
        "protected": {"type": "boolean"},
        "size": {"type": ["null", "integer"], "readOnly": True},
        "checksum": {"type": ["null", "string"], "readOnly": True},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255}},
    }
    image = {
        "name": "image",
        "properties": properties,
        "additionalProperties": {"type": "string"},
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"}],
    }
    if name == "image":
        return image
    if name == "images":
        return {"name": "images", "properties": {"images": {"type": "array", "items": image}}}
    raise NotFound(f"No schema {name[:64]}")


@router.post(PREFIX + "/images", status_code=201)
async def create_image(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    body = await _json_body(request)
    core, props = split_properties(body)
    if core.visibility == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to complete publicize_image action.")
    owner = core.owner or ctx.project_id
    if owner != ctx.project_id and not ctx.is_admin:
        raise Forbidden("Only admins may create images owned by another project.")
    image_id = core.id or new_id()
    if not all(c.isalnum() or c == "-" for c in image_id):
        raise BadRequest("id must be a UUID")

    def create() -> dict[str, Any]:
        if session.get(Image, image_id) is not None:
            raise Conflict(f"Image with identifier {image_id} already exists!")
        now = utcnow()
        img = Image(
            id=image_id,
            name=core.name,
            owner=owner,
            status="queued",
            visibility=core.visibility,
            disk_format=core.disk_format,
            container_format=core.container_format,
            min_disk=core.min_disk,
            min_ram=core.min_ram,
            protected=core.protected,
            os_hidden=core.os_hidden,
            properties=props,
            tags=list(dict.fromkeys(core.tags)),
            created_at=now,
            updated_at=now,
        )
        session.add(img)
        session.commit()
        return image_view(img)

    return await run_in_threadpool(create)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"Malformed request body: {str(exc)[:200]}") from None
    where = nul_path(body)
    if where is not None:
        raise BadRequest(f"Invalid input for field '{where[:128]}': holds a NUL character")
    return body


def _with_visibility(query: Select[Image], asked: str | None, ctx: Context) -> Select[Image]:
    """Glance's ``visibility`` filter: one visibility, or ``all``; without it a
    list leaves out community images other projects own (they are for those
    who look for them, not for everyone's default list)."""
    if asked is None:
        return query.where((Image.visibility != "community") | (Image.owner == ctx.project_id))
    if asked == "all":
        return query
    if asked not in VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {asked[:64]}")
    return query.where(Image.visibility == asked)


@router.get(PREFIX + "/images")
def list_images(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    query = select(Image)
    if not ctx.is_admin:
        query = query.where(
            (Image.owner == ctx.project_id) | Image.visibility.in_(("public", "community"))
        )
    params = request.query_params
    query = _with_visibility(query, params.get("visibility"), ctx)
    order = sort_order(params)
    views = filter_images([image_view(i) for i in session.scalars(query)], params)
    views = sort_images(apply_filters(views, attribute_params(params)), order)
    return {
        "images": paginate(views, params),
        "first": "/v2/images",
        "schema": "/v2/schemas/images",
    }


@router.get(PREFIX + "/images/{image_id}")
def show_image(image_id: str, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    return image_view(visible_image(session, ctx, image_id))


@router.patch(
    PREFIX + "/images/{image_id}",
    responses={415: {"description": "Not application/openstack-images-v2.1-json-patch"}},
)
async def update_image(
    image_id: str, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    changes = parse_patch(request.headers.get("content-type"), await _json_body(request))

    def update() -> dict[str, Any]:
        img = owned_image(session, ctx, image_id)
        view = {k: v for k, v in image_view(img).items() if k in CORE or k in img.properties}
        apply_changes(view, changes, CORE)
        core, props = split_properties(view)
        if core.visibility == "public" and img.visibility != "public" and not ctx.is_admin:
            raise Forbidden("You are not authorized to complete publicize_image action.")
        if core.id != img.id or (core.owner != img.owner and not ctx.is_admin):
            raise Forbidden("Attribute 'id' and 'owner' cannot be changed.")
        for field in ("name", "visibility", "disk_format", "container_format", "min_disk",
                      "min_ram", "protected", "owner", "os_hidden"):  # fmt: skip
            setattr(img, field, getattr(core, field))
        img.tags = list(dict.fromkeys(core.tags))
        img.properties = props
        img.updated_at = utcnow()
        session.commit()
        return image_view(img)

    return await run_in_threadpool(update)


@router.delete(PREFIX + "/images/{image_id}", status_code=204)
def delete_image(
    image_id: str, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> Response:
    img = owned_image(session, ctx, image_id)
    if img.protected:
        raise Forbidden(f"Image {img.id} is protected and cannot be deleted.")
    session.delete(img)
    session.commit()
    image_path(settings.data_dir, img.id).unlink(missing_ok=True)
    return Response(status_code=204)


@router.put(PREFIX + "/images/{image_id}/file", status_code=204)
async def upload_image(
    image_id: str, request: Request, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> Response:
    def start() -> Image:
        img = owned_image(session, ctx, image_id)
        if img.status != "queued":
            raise Conflict(
                f"Image {img.id} is {img.status}; data can be uploaded to a queued image only."
            )
        img.status = "saving"
        img.updated_at = utcnow()
        session.commit()
        return img

    img = await run_in_threadpool(start)
    final = image_path(settings.data_dir, img.id)
    private_dir(final.parent)
    part = final.with_name(final.name + ".part")
    md5, sha512, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
    try:
        with os.fdopen(open_private(part), "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_IMAGE_BYTES:
                    raise TooLarge(f"Image exceeds the limit of {MAX_IMAGE_BYTES} bytes")
                md5.update(chunk)
                sha512.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, final)
    except BaseException:
        part.unlink(missing_ok=True)

        def back_to_queued() -> None:
            session.execute(
                update(Image)
                .where(Image.id == img.id, Image.status == "saving")
                .values(status="queued")
            )
            session.commit()

        await run_in_threadpool(back_to_queued)
        raise

    def finish() -> bool:
        # Compare and swap: the image may have been deleted while its data came in.
        done = session.execute(
            update(Image)
            .where(Image.id == img.id, Image.status == "saving")
            .values(
                status="active",
                size=size,
                checksum=md5.hexdigest(),
                os_hash_algo="sha512",
                os_hash_value=sha512.hexdigest(),
                updated_at=utcnow(),
            )
        )
        session.commit()
        return bool(getattr(done, "rowcount", 0) == 1)

    if not await run_in_threadpool(finish):
        final.unlink(missing_ok=True)
        raise Conflict(f"Image {img.id} was deleted during the upload; its data is discarded.")
    return Response(status_code=204)


@router.get(PREFIX + "/images/{image_id}/file", response_model=None)
def download_image(
    image_id: str, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> Response:
    img = visible_image(session, ctx, image_id)
    path = image_path(settings.data_dir, img.id)
    if img.status != "active" or not path.exists():
        return Response(status_code=204)
    return FileResponse(
        path, media_type="application/octet-stream", headers={"Content-MD5": img.checksum or ""}
    )
