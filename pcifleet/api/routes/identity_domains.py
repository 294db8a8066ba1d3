"""Identity v3 domains and groups (Keystone's subset).

A domain is a project acting as a domain (one row, two views); only a
disabled domain may be deleted, with everything in it, and ``Default`` never.
A group belongs to a domain and holds users of any domain; its role
assignments count for every member (``identity_grants``).

Admins manage both; a member may see the domains it belongs to and its own
user's groups, as Keystone's default policy allows.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.deps import Context, SessionDep
from pcifleet.api.deps import IdentityContextDep as ContextDep
from pcifleet.api.errors import BadRequest, Forbidden, NotFound
from pcifleet.api.identity_common import (
    check_domain_deletable,
    conflict,
    get_domain,
    get_group,
    get_user,
    query_bool,
)
from pcifleet.api.identity_views import DEFAULT_DOMAIN_ID, domain_view, group_view, user_view
from pcifleet.compute.schemas import Strict
from pcifleet.store import groups as group_store
from pcifleet.store import identity as store
from pcifleet.store.cloud import Group, Project, User

router = APIRouter(tags=["identity"])

DomainName = Annotated[str, Field(min_length=1, max_length=64)]
GroupName = Annotated[str, Field(min_length=1, max_length=255)]
Text = Annotated[str | None, Field(max_length=65535)]
Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=80)]


# --- domains ---------------------------------------------------------------------


class DomainCreate(Strict):
    name: DomainName
    description: Text = ""
    enabled: StrictBool = True
    tags: Tags = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class DomainCreateBody(Strict):
    domain: DomainCreate


class DomainUpdate(Strict):
    name: DomainName | None = None
    description: Text = None
    enabled: StrictBool | None = None
    tags: Tags | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class DomainUpdateBody(Strict):
    domain: DomainUpdate


def _own_domains(session: Session, caller: Context) -> set[str]:
    """The domains a non-admin may see: its user's and its project's."""
    user = session.get(User, caller.user_id)
    project = session.get(Project, caller.project_id) if caller.project_id else None
    return {d for d in (user and user.domain_id, project and project.domain_id) if d}


@router.get("/v3/domains")
def list_domains(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    enabled: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, Any]:
    query = select(Project).where(Project.is_domain.is_(True))
    if not caller.is_admin:
        query = query.where(Project.id.in_(_own_domains(session, caller)))
    if name is not None:
        query = query.where(Project.name == name)
    wanted = query_bool("enabled", enabled)
    if wanted is not None:
        query = query.where(Project.enabled == wanted)
    domains = session.scalars(query.order_by(Project.name))
    return {"domains": [domain_view(d) for d in domains], "links": {}}


@router.post("/v3/domains", status_code=201)
def create_domain(
    body: DomainCreateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:create_domain")
    d = body.domain
    try:
        domain = store.create_project(
            session,
            d.name.strip(),
            description=d.description or "",
            enabled=d.enabled,
            tags=d.tags,
            is_domain=True,
        )
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"domain": domain_view(domain)}


@router.get("/v3/domains/{domain_id}")
def show_domain(domain_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    domain = session.get(Project, domain_id)
    visible = caller.is_admin or domain_id in _own_domains(session, caller)
    if domain is None or not domain.is_domain or not visible:
        raise NotFound(f"Could not find domain: {domain_id[:64]}.")
    return {"domain": domain_view(domain)}


@router.patch("/v3/domains/{domain_id}")
def update_domain(
    domain_id: str, body: DomainUpdateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:update_domain")
    domain = get_domain(session, domain_id)
    changes = body.domain.model_dump(exclude_unset=True, exclude={"options"})
    if any(v is None for k, v in changes.items() if k in ("name", "enabled", "tags")):
        raise BadRequest("Invalid input for field 'name', 'enabled' or 'tags': null")
    if "description" in changes:
        changes["description"] = changes["description"] or ""
    if domain.id == DEFAULT_DOMAIN_ID and changes.get("enabled") is False:
        # every user pcifleet made (its admin too) is in it
        raise Forbidden("The Default domain holds pcifleet's own users; it cannot be disabled.")
    try:
        store.update_project(session, domain, changes)
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"domain": domain_view(domain)}


@router.delete("/v3/domains/{domain_id}", status_code=204)
def delete_domain(domain_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_domain")
    domain = get_domain(session, domain_id)
    check_domain_deletable(domain)
    store.delete_domain(session, domain)
    session.commit()
    return Response(status_code=204)


# --- groups -----------------------------------------------------------------------


class GroupCreate(BaseModel):
    # Keystone keeps attributes of a group it does not model, as of a user
    model_config = ConfigDict(extra="allow")

    name: GroupName
    description: Text = ""
    domain_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class GroupCreateBody(Strict):
    group: GroupCreate


class GroupUpdate(Strict):
    name: GroupName | None = None
    description: Text = None
    domain_id: str | None = None


class GroupUpdateBody(Strict):
    group: GroupUpdate


def _extra(model: BaseModel) -> dict[str, Any]:
    extra = dict(model.model_extra or {})
    for key in ("id", "links"):
        if key in extra:
            raise BadRequest(f"Invalid input for field 'group.{key}': it is read-only")
    if len(repr(extra)) > 65535:
        raise BadRequest("Invalid input for field 'group': too many extra attributes")
    return extra


@router.get("/v3/groups")
def list_groups(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    domain_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_groups")
    query = select(Group)
    if name is not None:
        query = query.where(Group.name == name)
    if domain_id is not None:
        query = query.where(Group.domain_id == domain_id)
    groups = session.scalars(query.order_by(Group.name))
    return {"groups": [group_view(g) for g in groups], "links": {}}


@router.post("/v3/groups", status_code=201)
def create_group(body: GroupCreateBody, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:create_group")
    g = body.group
    domain = session.get(Project, g.domain_id or DEFAULT_DOMAIN_ID)
    if domain is None or not domain.is_domain:
        raise BadRequest(f"Invalid input for field 'group.domain_id': no domain {g.domain_id}")
    try:
        group = group_store.create_group(
            session, g.name.strip(), domain.id, g.description or "", _extra(g)
        )
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"group": group_view(group)}


@router.get("/v3/groups/{group_id}")
def show_group(group_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:get_group")
    return {"group": group_view(get_group(session, group_id))}


@router.patch("/v3/groups/{group_id}")
def update_group(
    group_id: str, body: GroupUpdateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:update_group")
    group = get_group(session, group_id)
    changes = body.group.model_dump(exclude_unset=True)
    if changes.pop("domain_id", group.domain_id) != group.domain_id:
        raise BadRequest("Invalid input for field 'group.domain_id': it cannot be changed")
    if "name" in changes and changes["name"] is None:
        raise BadRequest("Invalid input for field 'group.name': null is not allowed")
    if "description" in changes:
        changes["description"] = changes["description"] or ""
    try:
        group_store.update_group(session, group, changes)
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"group": group_view(group)}


@router.delete("/v3/groups/{group_id}", status_code=204)
def delete_group(group_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_group")
    group_store.delete_group(session, get_group(session, group_id))
    session.commit()
    return Response(status_code=204)


MEMBER = "/v3/groups/{group_id}/users/{user_id}"


@router.get("/v3/groups/{group_id}/users")
def list_group_users(group_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:list_users_in_group")
    get_group(session, group_id)
    users = group_store.members(session, group_id)
    return {"users": [user_view(u) for u in users], "links": {}}


@router.put(MEMBER, status_code=204)
def add_group_user(
    group_id: str, user_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:add_user_to_group")
    get_group(session, group_id)
    get_user(session, user_id)
    group_store.add_member(session, group_id, user_id)
    session.commit()
    return Response(status_code=204)


@router.head(MEMBER, status_code=204)
def check_group_user(
    group_id: str, user_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:check_user_in_group")
    get_group(session, group_id)
    get_user(session, user_id)
    if not group_store.is_member(session, group_id, user_id):
        raise NotFound(f"User {user_id[:64]} is not a member of group {group_id[:64]}.")
    return Response(status_code=204)


@router.delete(MEMBER, status_code=204)
def remove_group_user(
    group_id: str, user_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:remove_user_from_group")
    get_group(session, group_id)
    get_user(session, user_id)
    if not group_store.remove_member(session, group_id, user_id):
        raise NotFound(f"User {user_id[:64]} is not a member of group {group_id[:64]}.")
    session.commit()
    return Response(status_code=204)


@router.get("/v3/users/{user_id}/groups")
def list_user_groups(user_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    if user_id != caller.user_id and not caller.is_admin:
        raise Forbidden("You may list only your own user's groups.")
    get_user(session, user_id)
    groups = group_store.groups_of(session, user_id)
    return {"groups": [group_view(g) for g in groups], "links": {}}
