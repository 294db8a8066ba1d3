"""Server moves as Nova lists them: ``GET /os-migrations`` (admins: every move,
filtered by ``instance_uuid``, ``status``, ``migration_type``, ``source_compute``)
and ``GET /servers/{id}/migrations[/{id}]`` (the moves of one server still in
progress). ``openstack server migration list|show`` reads these. Fields appear
with the microversion that brought them (``migration_type`` and ``links`` 2.23,
``uuid`` 2.59, ``user_id``/``project_id`` 2.80)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from pcifleet.api.deps import ContextDep, MicroversionDep, SessionDep, timestamp
from pcifleet.api.errors import NotFound
from pcifleet.api.input_check import id_number
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.compute.moves import CLOSED
from pcifleet.store.models import Instance, Migration

router = APIRouter(tags=["compute"])
FILTERS = ("instance_uuid", "status", "migration_type", "source_compute")


def instance_type_id(flavor: dict[str, Any]) -> int | None:
    """Nova's integer flavor key: the flavor's id when it is a number, else null.

    Nova shows its flavors' internal integer ids here, and strict clients
    (tempest's schema) accept only an integer or null; pcifleet's flavor ids
    are free text, so a textual one is null rather than a made-up number.
    """
    found = str(flavor.get("id") or "")
    if found.isascii() and found.isdigit() and int(found) < 2**31:
        return int(found)
    return None


def migration_view(m: Migration, mv: tuple[int, int]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": m.id,
        "instance_uuid": m.instance_uuid,
        "status": m.status,
        "source_compute": m.source_compute,
        "source_node": m.source_compute,
        "dest_compute": m.dest_compute,
        "dest_node": m.dest_compute,
        "dest_host": m.dest_compute,
        "old_instance_type_id": instance_type_id(m.old_flavor),
        "new_instance_type_id": instance_type_id(m.new_flavor),
        "created_at": timestamp(m.created_at),
        "updated_at": timestamp(m.updated_at),
    }
    if mv >= (2, 23):
        view["migration_type"] = m.migration_type
        view["links"] = []
    if mv >= (2, 59):
        view["uuid"] = m.uuid
    if mv >= (2, 80):
        view["user_id"] = m.user_id
        view["project_id"] = m.project_id
    return view


@router.get(PREFIX + "/os-migrations")
def list_migrations(
    request: Request, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-migrations:index")
    query = select(Migration).order_by(Migration.created_at.desc(), Migration.id.desc())
    for name in FILTERS:
        value = request.query_params.get(name)
        if value:
            query = query.where(getattr(Migration, name) == value)
    return {"migrations": [migration_view(m, mv) for m in session.scalars(query)]}


@router.get(PREFIX + "/servers/{server_id}/migrations")
def server_migrations(
    server_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:servers:migrations:index")
    inst = session.get(Instance, server_id)
    if inst is None or inst.vm_state == "deleted":
        raise NotFound(f"Instance {server_id[:64]} could not be found.")
    found = session.scalars(
        select(Migration)
        .where(Migration.instance_uuid == inst.uuid, Migration.status.not_in(CLOSED))
        .order_by(Migration.id)
    )
    return {"migrations": [migration_view(m, mv) for m in found]}


@router.get(PREFIX + "/servers/{server_id}/migrations/{migration_id}")
def server_migration(
    server_id: str, migration_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:servers:migrations:show")
    number = id_number(migration_id)
    found = None if number is None else session.get(Migration, number)
    if found is None or found.instance_uuid != server_id:
        raise NotFound(f"Migration {migration_id[:64]} for instance {server_id[:64]} not found.")
    return {"migration": migration_view(found, mv)}
