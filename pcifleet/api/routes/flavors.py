"""Compute flavors and their extra specs; ``pci_passthrough:alias`` must name
configured aliases (a 400 naming the alias otherwise)."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import Field, RootModel, StrictInt
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.catalog import base_url
from pcifleet.api.deps import Context, ContextDep, MicroversionDep, SessionDep, SettingsDep, utcnow
from pcifleet.api.errors import BadRequest, Conflict, NotFound
from pcifleet.api.input_check import INT32_MAX, InvalidInput, whole_number
from pcifleet.api.listing import paginate
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.api.paths import flavor_links
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.lookup import specs_of, visible_flavor
from pcifleet.compute.schemas import Strict
from pcifleet.pci import (
    InvalidAlias,
    InvalidNumaRequest,
    InvalidPciRequest,
    instance_numa,
    requests_from_flavor,
)
from pcifleet.store.cloud import Flavor, FlavorAccess, FlavorExtraSpec

router = APIRouter(tags=["compute"])
INT32 = 2**31 - 1
KEY_RE = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
ID_RE = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
SORT_KEYS = {
    "flavorid": Flavor.id,
    "id": Flavor.id,
    "name": Flavor.name,
    "memory_mb": Flavor.ram,
    "ram": Flavor.ram,
    "vcpus": Flavor.vcpus,
    "root_gb": Flavor.disk,
    "disk": Flavor.disk,
}
SpecValue = Annotated[str, Field(max_length=255)] | int | float | bool


class FlavorCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    ram: Annotated[int, Field(ge=1, le=INT32)]
    vcpus: Annotated[int, Field(ge=1, le=INT32)]
    disk: Annotated[int, Field(ge=0, le=INT32)]
    # Nova takes a string or a number (stored as its text: 123456 -> "123456")
    id: Annotated[str, Field(min_length=1, max_length=255)] | StrictInt | None = None
    ephemeral: Annotated[int, Field(ge=0, le=INT32, alias="OS-FLV-EXT-DATA:ephemeral")] = 0
    swap: Annotated[int, Field(ge=0, le=INT32)] = 0
    rxtx_factor: Annotated[float, Field(gt=0, le=3.40282e38)] = 1.0
    is_public: Annotated[bool, Field(alias="os-flavor-access:is_public")] = True
    description: Annotated[str | None, Field(max_length=65535)] = None


class FlavorCreateRequest(Strict):
    flavor: FlavorCreate


class FlavorUpdate(Strict):
    description: Annotated[str | None, Field(max_length=65535)]


class FlavorUpdateRequest(Strict):
    flavor: FlavorUpdate


class ExtraSpecs(RootModel[dict[str, SpecValue]]):
    pass


class ExtraSpecsRequest(Strict):
    extra_specs: Annotated[dict[str, SpecValue], Field(max_length=64)]


def flavor_view(
    f: Flavor, mv: tuple[int, int], base: str, *, detail: bool = True
) -> dict[str, Any]:
    view: dict[str, Any] = {"id": f.id, "name": f.name, "links": flavor_links(base, f.id)}
    if mv >= (2, 55):
        view["description"] = f.description
    if not detail:
        return view
    view.update(
        {
            "ram": f.ram,
            "disk": f.disk,
            "vcpus": f.vcpus,
            "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
            "OS-FLV-DISABLED:disabled": False,
            # before 2.75 a zero swap was shown as ""
            "swap": f.swap if f.swap or mv >= (2, 75) else "",
            "rxtx_factor": f.rxtx_factor,
            "os-flavor-access:is_public": f.is_public,
        }
    )
    if mv >= (2, 61):
        view["extra_specs"] = specs_of(f)
    return view


def check_extra_specs(specs: dict[str, str], settings: ApiSettings) -> None:
    """Keys as Nova allows them; ``pci_passthrough:alias`` must resolve."""
    for key in specs:
        if not KEY_RE.match(key):
            raise BadRequest(f"extra_specs: key {key[:64]!r} must match [a-zA-Z0-9-_:. ]{{1,255}}")
    try:
        requests_from_flavor(specs, settings.aliases, source=settings.alias_source)
        instance_numa(specs)
    except (InvalidAlias, InvalidPciRequest, InvalidNumaRequest) as exc:
        raise BadRequest(f"Invalid extra_specs: {exc}") from None


def spec_text(value: SpecValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@router.post(PREFIX + "/flavors")
def create_flavor(
    body: FlavorCreateRequest,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-flavor-manage:create")
    spec = body.flavor
    if spec.description is not None and mv < (2, 55):
        raise BadRequest("Additional properties are not allowed ('description' was unexpected)")
    flavor_id = str(spec.id) if spec.id not in (None, "auto") else str(uuid.uuid4())
    if not ID_RE.match(flavor_id):
        raise BadRequest(
            f"Invalid input for field 'flavor.id': {flavor_id[:64]!r} has invalid characters"
        )
    if session.get(Flavor, flavor_id) is not None:
        raise Conflict(f"Flavor with ID {flavor_id} already exists.")
    if session.scalar(select(Flavor.id).where(Flavor.name == spec.name)) is not None:
        raise Conflict(f"Flavor with name {spec.name} already exists.")
    flavor = Flavor(
        id=flavor_id,
        name=spec.name,
        description=spec.description,
        vcpus=spec.vcpus,
        ram=spec.ram,
        disk=spec.disk,
        ephemeral=spec.ephemeral,
        swap=spec.swap,
        rxtx_factor=spec.rxtx_factor,
        is_public=spec.is_public,
        created_at=utcnow(),
    )
    session.add(flavor)
    session.commit()
    return {"flavor": flavor_view(flavor, mv, base_url(request, settings))}


def _list(
    request: Request,
    session: Session,
    ctx: Context,
    mv: tuple[int, int],
    settings: ApiSettings,
    detail: bool,
) -> list[dict[str, Any]]:
    params = request.query_params
    query = select(Flavor)
    is_public = params.get("is_public", "true").lower()
    # As Nova: "public" also takes in the private flavors shared with the caller's
    # project; only admins may ask for private ones (or all, with any other value).
    shared_with_me = Flavor.access.any(FlavorAccess.project_id == ctx.project_id)
    if not ctx.is_admin or is_public in ("true", "1", "yes", "t", "on"):
        query = query.where(Flavor.is_public | shared_with_me)
    elif is_public in ("false", "0", "no", "f", "off"):
        query = query.where(Flavor.is_public.is_(False))
    for key, column in (("minRam", Flavor.ram), ("minDisk", Flavor.disk)):
        if key in params:
            try:
                query = query.where(column >= whole_number(params[key], key, INT32_MAX))
            except InvalidInput as exc:
                raise BadRequest(str(exc)) from None
    sort_key = params.get("sort_key", "flavorid")
    if sort_key not in SORT_KEYS:
        raise BadRequest(f"Invalid sort_key {sort_key[:32]!r}")
    sort_column: Any = SORT_KEYS[sort_key]
    order = sort_column.desc() if params.get("sort_dir", "asc") == "desc" else sort_column.asc()
    base = base_url(request, settings)
    views = [
        flavor_view(f, mv, base, detail=detail) for f in session.scalars(query.order_by(order))
    ]
    return paginate(views, params)


@router.get(PREFIX + "/flavors")
def list_flavors(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    return {"flavors": _list(request, session, ctx, mv, settings, detail=False)}


@router.get(PREFIX + "/flavors/detail")
def list_flavors_detail(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    return {"flavors": _list(request, session, ctx, mv, settings, detail=True)}


@router.get(PREFIX + "/flavors/{flavor_id}")
def show_flavor(
    flavor_id: str, request: Request, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    flavor = visible_flavor(session, ctx, flavor_id)
    return {"flavor": flavor_view(flavor, mv, base_url(request, settings))}


@router.put(PREFIX + "/flavors/{flavor_id}")
def update_flavor(
    flavor_id: str, body: FlavorUpdateRequest, request: Request, session: SessionDep,
    ctx: ContextDep, mv: MicroversionDep, settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    if mv < (2, 55):
        raise NotFound("The resource could not be found (flavor update needs microversion 2.55).")
    ctx.require_admin("os_compute_api:os-flavor-manage:update")
    flavor = visible_flavor(session, ctx, flavor_id)
    flavor.description = body.flavor.description
    session.commit()
    return {"flavor": flavor_view(flavor, mv, base_url(request, settings))}


@router.delete(PREFIX + "/flavors/{flavor_id}", status_code=202)
def delete_flavor(flavor_id: str, session: SessionDep, ctx: ContextDep) -> Response:
    ctx.require_admin("os_compute_api:os-flavor-manage:delete")
    flavor = visible_flavor(session, ctx, flavor_id)
    session.delete(flavor)
    session.commit()
    return Response(status_code=202)


@router.get(PREFIX + "/flavors/{flavor_id}/os-extra_specs")
def list_extra_specs(flavor_id: str, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    return {"extra_specs": specs_of(visible_flavor(session, ctx, flavor_id))}


def _set_specs(
    session: Session, ctx: Context, settings: ApiSettings, flavor_id: str, new: dict[str, str]
) -> None:
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:create")
    flavor = visible_flavor(session, ctx, flavor_id)
    merged = specs_of(flavor) | new
    check_extra_specs(merged, settings)
    existing = {s.key: s for s in flavor.extra_specs}
    for key, value in new.items():
        if key in existing:
            existing[key].value = value
        else:
            flavor.extra_specs.append(FlavorExtraSpec(key=key, value=value))
    session.commit()


@router.post(PREFIX + "/flavors/{flavor_id}/os-extra_specs")
def create_extra_specs(
    flavor_id: str, body: ExtraSpecsRequest, session: SessionDep, ctx: ContextDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    new = {k: spec_text(v) for k, v in body.extra_specs.items()}
    if any(len(v) > 255 for v in new.values()):
        raise BadRequest("extra_specs: values must be at most 255 characters")
    _set_specs(session, ctx, settings, flavor_id, new)
    return {"extra_specs": new}


@router.get(PREFIX + "/flavors/{flavor_id}/os-extra_specs/{key}")
def show_extra_spec(
    flavor_id: str, key: str, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    specs = specs_of(visible_flavor(session, ctx, flavor_id))
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key[:64]}.")
    return {key: specs[key]}


@router.put(PREFIX + "/flavors/{flavor_id}/os-extra_specs/{key}")
def update_extra_spec(
    flavor_id: str, key: str, body: ExtraSpecs, session: SessionDep, ctx: ContextDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    given = body.root
    if list(given) != [key]:
        raise BadRequest(
            "Request body and URI mismatch: the body must hold exactly the key of the URI"
        )
    value = spec_text(given[key])
    if len(value) > 255:
        raise BadRequest("extra_specs: values must be at most 255 characters")
    _set_specs(session, ctx, settings, flavor_id, {key: value})
    return {key: value}


@router.delete(PREFIX + "/flavors/{flavor_id}/os-extra_specs/{key}")
def delete_extra_spec(flavor_id: str, key: str, session: SessionDep, ctx: ContextDep) -> Response:
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:delete")
    flavor = visible_flavor(session, ctx, flavor_id)
    spec = next((s for s in flavor.extra_specs if s.key == key), None)
    if spec is None:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key[:64]}.")
    flavor.extra_specs.remove(spec)
    session.commit()
    return Response(status_code=200)
