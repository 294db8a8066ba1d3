"""Compute os-flavor-access: which projects may see and boot a private flavor.

``POST /flavors/{id}/action`` takes Nova's ``addTenantAccess`` and
``removeTenantAccess``; ``GET /flavors/{id}/os-flavor-access`` lists the grants.
All three are admin-only and answer the flavor's whole access list, as Nova does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field

from pcifleet.api.deps import ContextDep, SessionDep
from pcifleet.api.errors import BadRequest, Conflict, NotFound
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.compute.lookup import visible_flavor
from pcifleet.compute.schemas import Strict
from pcifleet.store.cloud import Flavor, FlavorAccess, Project

router = APIRouter(tags=["compute"])


class TenantRef(Strict):
    # Nova keeps the project id as free text up to 255 characters
    tenant: Annotated[str, Field(min_length=1, max_length=255)]


class FlavorActionRequest(Strict):
    addTenantAccess: TenantRef | None = None  # Nova's names
    removeTenantAccess: TenantRef | None = None


def access_view(flavor: Flavor) -> dict[str, Any]:
    return {
        "flavor_access": [
            {"flavor_id": flavor.id, "tenant_id": a.project_id} for a in flavor.access
        ]
    }


@router.get(PREFIX + "/flavors/{flavor_id}/os-flavor-access")
def list_flavor_access(flavor_id: str, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-flavor-access")
    flavor = visible_flavor(session, ctx, flavor_id)
    if flavor.is_public:
        raise NotFound("Access list not available for public flavors.")
    return access_view(flavor)


@router.post(PREFIX + "/flavors/{flavor_id}/action")
def flavor_action(
    flavor_id: str, body: FlavorActionRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    given = body.model_fields_set
    if len(given) != 1:
        raise BadRequest("Give exactly one action: addTenantAccess or removeTenantAccess")
    if body.addTenantAccess is not None:
        ctx.require_admin("os_compute_api:os-flavor-access:add_tenant_access")
        flavor = visible_flavor(session, ctx, flavor_id)
        project_id = body.addTenantAccess.tenant
        if flavor.is_public:
            raise Conflict("Can not add access to a public flavor.")
        if session.get(Project, project_id) is None:
            # Nova asks Keystone; an unknown project is the caller's mistake
            raise BadRequest(f"Project ID {project_id[:64]} is not a valid project.")
        if any(a.project_id == project_id for a in flavor.access):
            raise Conflict(
                f"Flavor access already exists for flavor {flavor.id} and project "
                f"{project_id} combination."
            )
        flavor.access.append(FlavorAccess(project_id=project_id))
    elif body.removeTenantAccess is not None:
        ctx.require_admin("os_compute_api:os-flavor-access:remove_tenant_access")
        flavor = visible_flavor(session, ctx, flavor_id)
        project_id = body.removeTenantAccess.tenant
        grant = next((a for a in flavor.access if a.project_id == project_id), None)
        if grant is None:
            raise NotFound(
                f"Flavor access not found for {flavor.id} / {project_id[:64]} combination."
            )
        flavor.access.remove(grant)
    else:
        raise BadRequest("Give exactly one action: addTenantAccess or removeTenantAccess")
    session.commit()
    return access_view(flavor)
