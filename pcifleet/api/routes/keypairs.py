"""Compute os-keypairs: create (generated or imported), list, show, delete.

Shapes follow the microversion as Nova's do: ``type`` from 2.2 (create
answers 201 and delete 204 from then on, 200 and 202 before), another user's
keypairs for admins with ``user_id`` from 2.10, ``limit``/``marker`` from
2.35. The work is in ``pcifleet.compute.keypairs``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from pcifleet.api.catalog import base_url
from pcifleet.api.deps import ContextDep, MicroversionDep, SessionDep, SettingsDep, timestamp
from pcifleet.api.errors import BadRequest
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.compute import keypairs
from pcifleet.compute.schemas import Strict
from pcifleet.store.cloud import KeyPair

router = APIRouter(tags=["compute"])
# Long enough for a PEM certificate with a 4096-bit key.
PUBLIC_KEY_MAX = 16384


class KeypairCreate(Strict):
    name: Any = None  # checked by keypairs.check_name, with Nova's messages
    public_key: Annotated[str | None, Field(max_length=PUBLIC_KEY_MAX)] = None
    type: str | None = None
    user_id: Annotated[str | None, Field(min_length=1, max_length=255)] = None


class KeypairCreateRequest(Strict):
    keypair: KeypairCreate


def _view(row: KeyPair, mv: tuple[int, int]) -> dict[str, Any]:
    view = {"name": row.name, "public_key": row.public_key, "fingerprint": row.fingerprint}
    if mv >= (2, 2):
        view["type"] = row.type
    return view


def _owner(session: Any, ctx: Any, mv: tuple[int, int], user_id: str | None) -> str:
    if user_id is not None and mv < (2, 10):
        user_id = None  # Nova ignores the query before 2.10
    return keypairs.owner(session, ctx.user_id, ctx.is_admin, user_id)


@router.post(PREFIX + "/os-keypairs", response_model=None)
def create_keypair(
    body: KeypairCreateRequest, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> JSONResponse:
    spec = body.keypair
    for field, since in (("type", (2, 2)), ("user_id", (2, 10))):
        if field in spec.model_fields_set and mv < since:
            raise BadRequest(f"Additional properties are not allowed ('{field}' was unexpected)")
    name = keypairs.check_name(spec.name)
    key_type = keypairs.check_type("ssh" if spec.type is None else spec.type)
    user_id = keypairs.owner(session, ctx.user_id, ctx.is_admin, spec.user_id)
    if spec.public_key is None:
        key = keypairs.generated(key_type, user_id)
    else:
        key = keypairs.imported(spec.public_key, key_type)
    row = keypairs.create(session, user_id, name, key_type, key)
    session.commit()
    view = _view(row, mv) | {"user_id": user_id}
    if key.private_key is not None:
        view["private_key"] = key.private_key
    return JSONResponse({"keypair": view}, status_code=201 if mv >= (2, 2) else 200)


@router.get(PREFIX + "/os-keypairs")
def list_keypairs(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
    user_id: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
    marker: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    owner = _owner(session, ctx, mv, user_id)
    if mv < (2, 35):
        limit = marker = None
    rows = keypairs.listing(session, owner, limit, marker)
    out: dict[str, Any] = {"keypairs": [{"keypair": _view(r, mv)} for r in rows]}
    if limit is not None and rows and len(rows) == limit:
        query = f"limit={limit}&marker={rows[-1].name}"
        if owner != ctx.user_id:
            query += f"&user_id={owner}"
        href = f"{base_url(request, settings)}{PREFIX}/os-keypairs?{query}"
        out["keypairs_links"] = [{"rel": "next", "href": href}]
    return out


@router.get(PREFIX + "/os-keypairs/{name}")
def show_keypair(
    name: str,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    user_id: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    row = keypairs.get(session, _owner(session, ctx, mv, user_id), name)
    view = _view(row, mv) | {
        "user_id": row.user_id,
        "id": row.id,
        "created_at": timestamp(row.created_at),
        "updated_at": None,
        "deleted": False,
        "deleted_at": None,
    }
    return {"keypair": view}


@router.delete(PREFIX + "/os-keypairs/{name}", response_model=None)
def delete_keypair(
    name: str,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    user_id: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    keypairs.delete(session, _owner(session, ctx, mv, user_id), name)
    session.commit()
    return Response(status_code=204 if mv >= (2, 2) else 202)
