"""Identity v3 roles and who holds them (Keystone's subset): roles (global and
domain-specific), role inference rules, role grants of users and groups on
projects, domains and the system. ``/v3/role_assignments`` lists them
(``identity_assignments``).

The twelve grant routes (user or group, on a project, a domain or the system;
list, grant, check, revoke) are one set of handlers over a table of paths, so
the rules live once. Admins only, as Keystone's default policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.deps import IdentityContextDep as ContextDep
from pcifleet.api.deps import SessionDep
from pcifleet.api.errors import BadRequest, Forbidden, NotFound
from pcifleet.api.identity_common import (
    conflict,
    get_domain,
    get_group,
    get_project,
    get_role,
    get_user,
)
from pcifleet.api.identity_views import role_ref, role_view
from pcifleet.compute.schemas import Strict
from pcifleet.store import assignments as grants
from pcifleet.store import identity as store
from pcifleet.store.assignments import Actor
from pcifleet.store.cloud import Project, Role

router = APIRouter(tags=["identity"])

RoleName = Annotated[str, Field(min_length=1, max_length=255)]
Text = Annotated[str | None, Field(max_length=65535)]
BUILT_IN_ROLES = ("admin", "member", "reader")
# Keystone's [assignment] prohibited_implied_role: nothing may imply admin
PROHIBITED_IMPLIED = ("admin",)


# --- roles ---------------------------------------------------------------------


class RoleCreate(Strict):
    name: RoleName
    description: Text = None
    domain_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class RoleCreateBody(Strict):
    role: RoleCreate


class RoleUpdate(Strict):
    name: RoleName | None = None
    description: Text = None
    domain_id: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class RoleUpdateBody(Strict):
    role: RoleUpdate


@router.get("/v3/roles")
def list_roles(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    domain_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_roles")
    # global roles unless a domain's are asked for, as Keystone lists them
    query = select(Role).where(
        Role.domain_id.is_(None) if domain_id is None else Role.domain_id == domain_id
    )
    if name is not None:
        query = query.where(Role.name == name)
    roles = session.scalars(query.order_by(Role.name))
    return {"roles": [role_view(r) for r in roles], "links": {}}


@router.post("/v3/roles", status_code=201)
def create_role(body: RoleCreateBody, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:create_role")
    r = body.role
    if r.domain_id is not None:
        domain = session.get(Project, r.domain_id)
        if domain is None or not domain.is_domain:
            raise BadRequest(f"Invalid input for field 'role.domain_id': no domain {r.domain_id}")
    try:
        role = store.create_role(session, r.name, r.description, r.domain_id)
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"role": role_view(role)}


@router.get("/v3/roles/{role_id}")
def show_role(role_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:get_role")
    return {"role": role_view(get_role(session, role_id))}


@router.patch("/v3/roles/{role_id}")
def update_role(
    role_id: str, body: RoleUpdateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:update_role")
    role = get_role(session, role_id)
    changes = body.role.model_dump(exclude_unset=True, exclude={"options"})
    if changes.pop("domain_id", role.domain_id) != role.domain_id:
        raise BadRequest("Invalid input for field 'role.domain_id': it cannot be changed")
    if "name" in changes and changes["name"] is None:
        raise BadRequest("Invalid input for field 'role.name': null is not allowed")
    try:
        store.update_role(session, role, changes)
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"role": role_view(role)}


@router.delete("/v3/roles/{role_id}", status_code=204)
def delete_role(role_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_role")
    role = get_role(session, role_id)
    if role.id in BUILT_IN_ROLES:
        raise Forbidden(f"The built-in role {role.name} decides policy and cannot be deleted.")
    store.delete_role(session, role)
    session.commit()
    return Response(status_code=204)


# --- role inference rules ---------------------------------------------------------


IMPLIES = "/v3/roles/{prior_role_id}/implies"


def _inference(prior: Role, implied: Role | list[Role]) -> dict[str, Any]:
    implies = role_ref(implied) if isinstance(implied, Role) else [role_ref(r) for r in implied]
    return {"role_inference": {"prior_role": role_ref(prior), "implies": implies}}


def _rule(session: Session, prior_role_id: str, implied_role_id: str) -> tuple[Role, Role]:
    prior, implied = get_role(session, prior_role_id), get_role(session, implied_role_id)
    if not grants.has_rule(session, prior.id, implied.id):
        raise NotFound(f"{prior_role_id[:64]} does not imply {implied_role_id[:64]}.")
    return prior, implied


@router.get(IMPLIES)
def list_implied_roles(
    prior_role_id: str, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:list_implied_roles")
    prior = get_role(session, prior_role_id)
    body = _inference(prior, grants.implied_by(session, prior.id))
    return body | {"links": {"self": f"/v3/roles/{prior.id}/implies"}}


@router.put(IMPLIES + "/{implied_role_id}", status_code=201)
def create_implied_role(
    prior_role_id: str, implied_role_id: str, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:create_implied_role")
    prior, implied = get_role(session, prior_role_id), get_role(session, implied_role_id)
    if implied.name in PROHIBITED_IMPLIED:
        raise Forbidden(f"{implied.name} may not be implied by another role.")
    if prior.domain_id is None and implied.domain_id is not None:
        raise Forbidden("Global role cannot imply a domain-specific role.")
    if prior.id == implied.id:
        raise Forbidden(f"{prior.name} may not imply itself.")
    grants.add_rule(session, prior.id, implied.id)
    session.commit()
    return _inference(prior, implied)


@router.get(IMPLIES + "/{implied_role_id}")
def show_implied_role(
    prior_role_id: str, implied_role_id: str, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:get_implied_role")
    return _inference(*_rule(session, prior_role_id, implied_role_id))


@router.head(IMPLIES + "/{implied_role_id}", status_code=204)
def check_implied_role(
    prior_role_id: str, implied_role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:check_implied_role")
    _rule(session, prior_role_id, implied_role_id)
    return Response(status_code=204)


@router.delete(IMPLIES + "/{implied_role_id}", status_code=204)
def delete_implied_role(
    prior_role_id: str, implied_role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:delete_implied_role")
    prior, implied = _rule(session, prior_role_id, implied_role_id)
    grants.remove_rule(session, prior.id, implied.id)
    session.commit()
    return Response(status_code=204)


@router.get("/v3/role_inferences")
def list_role_inferences(session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:list_role_inference_rules")
    roles = {r.id: r for r in session.scalars(select(Role))}
    by_prior: dict[str, list[Role]] = {}
    for prior, implied in grants.inference_rules(session):
        by_prior.setdefault(prior, []).append(roles[implied])
    inferences = [_inference(roles[p], i)["role_inference"] for p, i in by_prior.items()]
    return {"role_inferences": inferences}


# --- grants: user or group, on a project, a domain or the system -----------------------


def _actor(session: Session, kind: str, actor_id: str) -> Actor:
    if kind == "users":
        return Actor(user_id=get_user(session, actor_id).id)
    return Actor(group_id=get_group(session, actor_id).id)


def _target(session: Session, kind: str, target_id: str) -> Project:
    return get_project(session, target_id) if kind == "projects" else get_domain(session, target_id)


def _check_domain_role(role: Role, target: Project) -> None:
    """A domain-specific role is given only inside its own domain (Keystone's 403)."""
    if role.domain_id is None:
        return
    target_domain = target.id if target.is_domain else target.domain_id
    if target_domain != role.domain_id:
        raise Forbidden(f"The domain-specific role {role.name} belongs to another domain.")


def _grant_routes(target_kind: str, actor_kind: str) -> None:
    """The four routes of one (target, actor) pair, e.g. projects and groups."""
    base = f"/v3/{target_kind}/{{target_id}}/{actor_kind}/{{actor_id}}/roles"
    what = f"{target_kind[:-1]} {actor_kind[:-1]}"

    def listed(target_id: str, actor_id: str, session: SessionDep, caller: ContextDep) -> Any:
        caller.require_admin("identity:list_grants")
        target = _target(session, target_kind, target_id)
        roles = grants.grants(session, _actor(session, actor_kind, actor_id), target.id)
        return {"roles": [role_view(r) for r in roles], "links": {}}

    def granted(
        target_id: str, actor_id: str, role_id: str, session: SessionDep, caller: ContextDep
    ) -> Response:
        caller.require_admin("identity:create_grant")
        target = _target(session, target_kind, target_id)
        actor = _actor(session, actor_kind, actor_id)
        role = get_role(session, role_id)
        _check_domain_role(role, target)
        grants.assign(session, actor, target.id, role.id)
        session.commit()
        return Response(status_code=204)

    def checked(
        target_id: str, actor_id: str, role_id: str, session: SessionDep, caller: ContextDep
    ) -> Response:
        caller.require_admin("identity:check_grant")
        target = _target(session, target_kind, target_id)
        actor = _actor(session, actor_kind, actor_id)
        if role_id not in {r.id for r in grants.grants(session, actor, target.id)}:
            raise NotFound(f"Could not find role assignment of {role_id[:64]} to {actor_id[:64]}.")
        return Response(status_code=204)

    def revoked(
        target_id: str, actor_id: str, role_id: str, session: SessionDep, caller: ContextDep
    ) -> Response:
        caller.require_admin("identity:revoke_grant")
        target = _target(session, target_kind, target_id)
        if not grants.revoke(session, _actor(session, actor_kind, actor_id), target.id, role_id):
            raise NotFound(f"Could not find role assignment of {role_id[:64]} to {actor_id[:64]}.")
        session.commit()
        return Response(status_code=204)

    _add(base, "GET", listed, f"list {what} roles", 200)
    _add(base + "/{role_id}", "PUT", granted, f"grant {what} role", 204)
    _add(base + "/{role_id}", "HEAD", checked, f"check {what} role", 204)
    _add(base + "/{role_id}", "DELETE", revoked, f"revoke {what} role", 204)


def _system_routes(actor_kind: str) -> None:
    base = f"/v3/system/{actor_kind}/{{actor_id}}/roles"
    what = f"system {actor_kind[:-1]}"

    def listed(actor_id: str, session: SessionDep, caller: ContextDep) -> Any:
        caller.require_admin("identity:list_system_grants")
        roles = grants.system_grants(session, _actor(session, actor_kind, actor_id))
        return {"roles": [role_view(r) for r in roles], "links": {}}

    def granted(actor_id: str, role_id: str, session: SessionDep, caller: ContextDep) -> Response:
        caller.require_admin("identity:create_system_grant")
        actor = _actor(session, actor_kind, actor_id)
        role = get_role(session, role_id)
        if role.domain_id is not None:
            raise Forbidden(f"The domain-specific role {role.name} cannot be given on the system.")
        grants.assign_system(session, actor, role.id)
        session.commit()
        return Response(status_code=204)

    def checked(actor_id: str, role_id: str, session: SessionDep, caller: ContextDep) -> Response:
        caller.require_admin("identity:check_system_grant")
        actor = _actor(session, actor_kind, actor_id)
        if role_id not in {r.id for r in grants.system_grants(session, actor)}:
            raise NotFound(f"Could not find system role assignment of {role_id[:64]}.")
        return Response(status_code=204)

    def revoked(actor_id: str, role_id: str, session: SessionDep, caller: ContextDep) -> Response:
        caller.require_admin("identity:revoke_system_grant")
        if not grants.revoke_system(session, _actor(session, actor_kind, actor_id), role_id):
            raise NotFound(f"Could not find system role assignment of {role_id[:64]}.")
        session.commit()
        return Response(status_code=204)

    _add(base, "GET", listed, f"list {what} roles", 200)
    _add(base + "/{role_id}", "PUT", granted, f"grant {what} role", 204)
    _add(base + "/{role_id}", "HEAD", checked, f"check {what} role", 204)
    _add(base + "/{role_id}", "DELETE", revoked, f"revoke {what} role", 204)


def _add(path: str, method: str, handler: Callable[..., Any], name: str, status: int) -> None:
    router.add_api_route(path, handler, methods=[method], name=name, status_code=status)


for _target_kind in ("projects", "domains"):
    for _actor_kind in ("users", "groups"):
        _grant_routes(_target_kind, _actor_kind)
for _actor_kind in ("users", "groups"):
    _system_routes(_actor_kind)
