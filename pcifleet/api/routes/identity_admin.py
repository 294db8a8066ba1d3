"""Identity v3 administration (Keystone's subset): projects (nested, and
projects acting as domains) and users. Domains and groups are in
``identity_domains``; roles, their inference rules and assignments in
``identity_grants``.

Admins manage everything; a member may read its own project and user, list its
own user's projects and change its own password, as Keystone's default policy
allows. Every handler parses, authorizes, makes one store call and serializes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.deps import IdentityContextDep as ContextDep
from pcifleet.api.deps import SessionDep
from pcifleet.api.errors import BadRequest, Forbidden, NotFound, Unauthorized
from pcifleet.api.identity_common import (
    check_domain_deletable,
    conflict,
    get_domain,
    get_project,
    get_user,
    query_bool,
)
from pcifleet.api.identity_views import DEFAULT_DOMAIN_ID, project_view, user_view
from pcifleet.api.security import hash_password, verify_password
from pcifleet.compute.schemas import Strict
from pcifleet.store import identity as store
from pcifleet.store.assignments import targets_of_user
from pcifleet.store.cloud import Project, User

router = APIRouter(tags=["identity"])

# Keystone's limits: project names to 64 characters, user names to 255
ProjectName = Annotated[str, Field(min_length=1, max_length=64)]
UserName = Annotated[str, Field(min_length=1, max_length=255)]
Password = Annotated[str, Field(max_length=4096)]
Text = Annotated[str | None, Field(max_length=65535)]
IdRef = Annotated[str, Field(min_length=1, max_length=64)]


def _domain_for(session: Session, domain_id: str | None, field: str) -> str:
    """The domain a new project or user goes in: Keystone's 400 when the id
    names no domain (it names the field)."""
    domain_id = domain_id or DEFAULT_DOMAIN_ID
    domain = session.get(Project, domain_id)
    if domain is None or not domain.is_domain:
        raise BadRequest(f"Invalid input for field '{field}': no domain {domain_id[:64]}")
    return domain_id


# --- projects ------------------------------------------------------------------

Tags = Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=80)]


class ProjectCreate(Strict):
    name: ProjectName
    description: Text = ""
    enabled: StrictBool = True
    domain_id: IdRef | None = None
    parent_id: IdRef | None = None
    is_domain: StrictBool = False
    tags: Tags = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class ProjectCreateBody(Strict):
    project: ProjectCreate


class ProjectUpdate(Strict):
    name: ProjectName | None = None
    tags: Tags | None = None
    description: Text = None
    enabled: StrictBool | None = None
    domain_id: str | None = None
    parent_id: str | None = None
    is_domain: StrictBool | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ProjectUpdateBody(Strict):
    project: ProjectUpdate


@router.get("/v3/projects")
def list_projects(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    enabled: Annotated[str | None, Query(max_length=8)] = None,
    domain_id: Annotated[str | None, Query(max_length=64)] = None,
    parent_id: Annotated[str | None, Query(max_length=64)] = None,
    is_domain: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_projects")
    # Keystone lists projects, not domains, unless asked with is_domain
    query = select(Project).where(Project.is_domain.is_(bool(query_bool("is_domain", is_domain))))
    if name is not None:
        query = query.where(Project.name == name)
    wanted = query_bool("enabled", enabled)
    if wanted is not None:
        query = query.where(Project.enabled == wanted)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    if parent_id is not None:
        query = query.where(Project.parent_id == parent_id)
    projects = session.scalars(query.order_by(Project.name))
    return {"projects": [project_view(p) for p in projects], "links": {}}


def _placement(session: Session, p: ProjectCreate) -> tuple[str | None, str | None]:
    """(domain_id, parent_id) of a new project, checked as Keystone checks them."""
    if p.is_domain:
        if p.parent_id is not None:
            raise BadRequest(
                "Invalid input for field 'parent_id': only root projects may act as domains"
            )
        return None, None
    if p.parent_id is None:
        return _domain_for(session, p.domain_id, "domain_id"), None
    parent = session.get(Project, p.parent_id)
    if parent is None:
        raise BadRequest(f"Invalid input for field 'parent_id': no project {p.parent_id}")
    domain_id = parent.id if parent.is_domain else parent.domain_id
    if p.domain_id is not None and p.domain_id != domain_id:
        raise BadRequest(
            f"Invalid input for field 'domain_id': the parent {parent.id} is in "
            f"domain {domain_id}, not {p.domain_id}"
        )
    if not parent.enabled:
        raise BadRequest(f"Invalid input for field 'parent_id': {parent.id} is disabled")
    return domain_id, parent.id


@router.post("/v3/projects", status_code=201)
def create_project(
    body: ProjectCreateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:create_project")
    p = body.project
    domain_id, parent_id = _placement(session, p)
    try:
        project = store.create_project(
            session,
            p.name.strip(),
            description=p.description or "",
            enabled=p.enabled,
            tags=p.tags,
            domain_id=domain_id,
            parent_id=parent_id,
            is_domain=p.is_domain,
        )
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"project": project_view(project)}


@router.get("/v3/projects/{project_id}")
def show_project(project_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    project = session.get(Project, project_id)
    if project is None or not caller.may_see(project.id):
        raise NotFound(f"Could not find project: {project_id[:64]}.")
    return {"project": project_view(project)}


@router.patch("/v3/projects/{project_id}")
def update_project(
    project_id: str, body: ProjectUpdateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:update_project")
    project = get_project(session, project_id)
    changes = body.project.model_dump(exclude_unset=True, exclude={"options"})
    for fixed in ("domain_id", "parent_id", "is_domain"):
        if changes.pop(fixed, getattr(project, fixed)) != getattr(project, fixed):
            raise BadRequest(f"Invalid input for field '{fixed}': it cannot be changed")
    if "description" in changes:
        changes["description"] = changes["description"] or ""
    if any(v is None for k, v in changes.items() if k in ("name", "enabled", "tags")):
        raise BadRequest("Invalid input for field 'name', 'enabled' or 'tags': null")
    if project.is_domain and project.id == DEFAULT_DOMAIN_ID and changes.get("enabled") is False:
        raise Forbidden("The Default domain holds pcifleet's own users; it cannot be disabled.")
    try:
        store.update_project(session, project, changes)
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"project": project_view(project)}


@router.delete("/v3/projects/{project_id}", status_code=204)
def delete_project(project_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_project")
    project = get_project(session, project_id)
    if project.is_domain:
        check_domain_deletable(project)
        store.delete_domain(session, project)
    else:
        try:
            store.delete_project(session, project)
        except store.NotLeaf as exc:
            raise Forbidden(str(exc)) from None
    session.commit()
    return Response(status_code=204)


# --- users ---------------------------------------------------------------------


class UserCreate(BaseModel):
    # Keystone keeps and shows back attributes it does not know (email, ...)
    model_config = ConfigDict(extra="allow")

    name: UserName
    password: Password | None = None
    enabled: StrictBool = True
    domain_id: str | None = None
    default_project_id: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class UserCreateBody(Strict):
    user: UserCreate


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: UserName | None = None
    password: Password | None = None
    enabled: StrictBool | None = None
    domain_id: str | None = None
    default_project_id: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class UserUpdateBody(Strict):
    user: UserUpdate


class PasswordChange(Strict):
    password: Password
    original_password: Password


class PasswordChangeBody(Strict):
    user: PasswordChange


def _extra(model: BaseModel, own_id: str | None = None) -> dict[str, Any]:
    extra = dict(model.model_extra or {})
    if own_id is not None and extra.get("id") == own_id:
        del extra["id"]  # Keystone accepts a body that repeats the user's own id
    for key in ("id", "links", "password_expires_at"):
        if key in extra:
            raise BadRequest(f"Invalid input for field '{key}': it is read-only")
    if len(repr(extra)) > 65535:
        raise BadRequest("Invalid input for field 'user': too many extra attributes")
    return extra


def _default_project(session: Session, project_id: str | None) -> str | None:
    if project_id is not None and session.get(Project, project_id) is None:
        raise NotFound(f"Could not find project: {project_id[:64]}.")
    return project_id


@router.get("/v3/users")
def list_users(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    enabled: Annotated[str | None, Query(max_length=8)] = None,
    domain_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    query = select(User).order_by(User.name)
    if not caller.is_admin:
        query = query.where(User.id == caller.user_id)
    if name is not None:
        query = query.where(User.name == name)
    wanted = query_bool("enabled", enabled)
    if wanted is not None:
        query = query.where(User.enabled == wanted)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    return {"users": [user_view(u) for u in session.scalars(query)], "links": {}}


@router.post("/v3/users", status_code=201)
def create_user(body: UserCreateBody, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:create_user")
    u = body.user
    domain_id = get_domain(session, u.domain_id or DEFAULT_DOMAIN_ID).id
    extra = _extra(u)
    # a user without a password can never log in, as in Keystone
    digest = hash_password(u.password) if u.password is not None else "!"
    try:
        user = store.create_user(
            session,
            u.name,
            digest,
            enabled=u.enabled,
            default_project_id=_default_project(session, u.default_project_id),
            extra=extra,
            domain_id=domain_id,
        )
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"user": user_view(user)}


@router.get("/v3/users/{user_id}")
def show_user(user_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    user = session.get(User, user_id)
    if user is None or not (caller.is_admin or user.id == caller.user_id):
        raise NotFound(f"Could not find user: {user_id[:64]}.")
    return {"user": user_view(user)}


@router.patch("/v3/users/{user_id}")
def update_user(
    user_id: str, body: UserUpdateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:update_user")
    user = get_user(session, user_id)
    fields = body.user.model_dump(exclude_unset=True, exclude={"options"})
    extra = _extra(body.user, user.id)
    for key in extra:
        fields.pop(key, None)
    if fields.pop("domain_id", user.domain_id) != user.domain_id:
        raise BadRequest("Invalid input for field 'domain_id': a user cannot change domain")
    if any(fields.get(k, "") is None for k in ("name", "enabled", "password")):
        raise BadRequest("Invalid input for field 'name', 'enabled' or 'password': null")
    if "password" in fields:
        fields["password_hash"] = hash_password(fields.pop("password"))
    if "default_project_id" in fields:
        _default_project(session, fields["default_project_id"])
    try:
        store.update_user(session, user, fields, extra)
    except store.NameInUse as exc:
        raise conflict(exc) from None
    session.commit()
    return {"user": user_view(user)}


@router.delete("/v3/users/{user_id}", status_code=204)
def delete_user(user_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_user")
    store.delete_user(session, get_user(session, user_id))
    session.commit()
    return Response(status_code=204)


@router.post("/v3/users/{user_id}/password", status_code=204)
def change_password(
    user_id: str, body: PasswordChangeBody, session: SessionDep, caller: ContextDep
) -> Response:
    if user_id != caller.user_id and not caller.is_admin:
        raise Forbidden("You may change only your own password.")
    user = get_user(session, user_id)
    if not verify_password(user.password_hash, body.user.original_password):
        raise Unauthorized("The request you have made requires authentication.")
    store.update_user(session, user, {"password_hash": hash_password(body.user.password)}, {})
    session.commit()
    return Response(status_code=204)


@router.get("/v3/users/{user_id}/projects")
def list_user_projects(user_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    if user_id != caller.user_id and not caller.is_admin:
        raise Forbidden("You may list only your own user's projects.")
    get_user(session, user_id)
    projects = targets_of_user(session, user_id, domains=False)
    return {"projects": [project_view(p) for p in projects], "links": {}}
