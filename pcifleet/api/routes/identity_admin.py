"""Identity v3 administration (Keystone's subset): projects, users, roles, role
assignments on projects and on the system, and the one domain, ``Default``.

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
from pcifleet.api.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from pcifleet.api.identity_views import (
    DEFAULT_DOMAIN_ID,
    DEFAULT_DOMAIN_NAME,
    domain_view,
    project_view,
    role_view,
    user_view,
)
from pcifleet.api.security import hash_password, verify_password
from pcifleet.compute.schemas import Strict
from pcifleet.store import identity as store
from pcifleet.store.cloud import Project, Role, User

router = APIRouter(tags=["identity"])

# Keystone's limits: project names to 64 characters, user and role names to 255
ProjectName = Annotated[str, Field(min_length=1, max_length=64)]
UserName = Annotated[str, Field(min_length=1, max_length=255)]
RoleName = Annotated[str, Field(min_length=1, max_length=255)]
Password = Annotated[str, Field(max_length=4096)]
Text = Annotated[str | None, Field(max_length=65535)]


def _domain(domain_id: str | None) -> None:
    if domain_id not in (None, DEFAULT_DOMAIN_ID):
        raise NotFound(f"Could not find domain: {domain_id[:64]}.")


def _conflict(exc: store.NameInUse) -> Conflict:
    return Conflict(str(exc))


def _project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id[:64]}.")
    return project


def _user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id[:64]}.")
    return user


def _role(session: Session, role_id: str) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFound(f"Could not find role: {role_id[:64]}.")
    return role


def _enabled_filter(enabled: str | None) -> bool | None:
    if enabled is None:
        return None
    if enabled.lower() in ("true", "1", "yes", ""):
        return True
    if enabled.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid input for field 'enabled': {enabled[:32]!r} is not a boolean")


# --- domains: one, read-only -----------------------------------------------------


@router.get("/v3/domains")
def list_domains(
    caller: ContextDep, name: Annotated[str | None, Query(max_length=255)] = None
) -> dict[str, Any]:
    domains = [domain_view()] if name in (None, DEFAULT_DOMAIN_NAME) else []
    return {"domains": domains, "links": {}}


@router.get("/v3/domains/{domain_id}")
def show_domain(domain_id: str, caller: ContextDep) -> dict[str, Any]:
    _domain(domain_id)
    return {"domain": domain_view()}


# --- projects ------------------------------------------------------------------


class ProjectCreate(Strict):
    name: ProjectName
    description: Text = ""
    enabled: StrictBool = True
    domain_id: str | None = None
    parent_id: str | None = None
    is_domain: StrictBool = False
    tags: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=80)
    ] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)


class ProjectCreateBody(Strict):
    project: ProjectCreate


class ProjectUpdate(Strict):
    name: ProjectName | None = None
    tags: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=80)]
        | None
    ) = None
    description: Text = None
    enabled: StrictBool | None = None
    domain_id: str | None = None


class ProjectUpdateBody(Strict):
    project: ProjectUpdate


@router.get("/v3/projects")
def list_projects(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
    enabled: Annotated[str | None, Query(max_length=8)] = None,
    domain_id: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_projects")
    query = select(Project).order_by(Project.name)
    if name is not None:
        query = query.where(Project.name == name)
    wanted = _enabled_filter(enabled)
    if wanted is not None:
        query = query.where(Project.enabled == wanted)
    if domain_id is not None:
        query = query.where(Project.domain_id == domain_id)
    return {"projects": [project_view(p) for p in session.scalars(query)], "links": {}}


@router.post("/v3/projects", status_code=201)
def create_project(
    body: ProjectCreateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:create_project")
    p = body.project
    _domain(p.domain_id)
    if p.is_domain:
        raise BadRequest("Invalid input for field 'is_domain': pcifleet serves one domain, Default")
    if p.parent_id not in (None, DEFAULT_DOMAIN_ID):
        raise BadRequest("Invalid input for field 'parent_id': pcifleet's projects are not nested")
    try:
        project = store.create_project(session, p.name, p.description or "", p.enabled, p.tags)
    except store.NameInUse as exc:
        raise _conflict(exc) from None
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
    project = _project(session, project_id)
    changes = body.project.model_dump(exclude_unset=True)
    if changes.pop("domain_id", project.domain_id) != project.domain_id:
        raise BadRequest("Invalid input for field 'domain_id': a project cannot change domain")
    if "description" in changes:
        changes["description"] = changes["description"] or ""
    if any(v is None for k, v in changes.items() if k in ("name", "enabled", "tags")):
        raise BadRequest("Invalid input for field 'name', 'enabled' or 'tags': null")
    try:
        store.update_project(session, project, changes)
    except store.NameInUse as exc:
        raise _conflict(exc) from None
    session.commit()
    return {"project": project_view(project)}


@router.delete("/v3/projects/{project_id}", status_code=204)
def delete_project(project_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_project")
    store.delete_project(session, _project(session, project_id))
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
    wanted = _enabled_filter(enabled)
    if wanted is not None:
        query = query.where(User.enabled == wanted)
    if domain_id is not None:
        query = query.where(User.domain_id == domain_id)
    return {"users": [user_view(u) for u in session.scalars(query)], "links": {}}


@router.post("/v3/users", status_code=201)
def create_user(body: UserCreateBody, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:create_user")
    u = body.user
    _domain(u.domain_id)
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
        )
    except store.NameInUse as exc:
        raise _conflict(exc) from None
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
    user = _user(session, user_id)
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
        raise _conflict(exc) from None
    session.commit()
    return {"user": user_view(user)}


@router.delete("/v3/users/{user_id}", status_code=204)
def delete_user(user_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_user")
    store.delete_user(session, _user(session, user_id))
    session.commit()
    return Response(status_code=204)


@router.post("/v3/users/{user_id}/password", status_code=204)
def change_password(
    user_id: str, body: PasswordChangeBody, session: SessionDep, caller: ContextDep
) -> Response:
    if user_id != caller.user_id and not caller.is_admin:
        raise Forbidden("You may change only your own password.")
    user = _user(session, user_id)
    if not verify_password(user.password_hash, body.user.original_password):
        raise Unauthorized("The request you have made requires authentication.")
    store.update_user(session, user, {"password_hash": hash_password(body.user.password)}, {})
    session.commit()
    return Response(status_code=204)


@router.get("/v3/users/{user_id}/projects")
def list_user_projects(user_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    if user_id != caller.user_id and not caller.is_admin:
        raise Forbidden("You may list only your own user's projects.")
    _user(session, user_id)
    projects = store.projects_of_user(session, user_id)
    return {"projects": [project_view(p) for p in projects], "links": {}}


# --- roles ---------------------------------------------------------------------


class RoleCreate(Strict):
    name: RoleName
    description: Text = None
    domain_id: None = None
    options: dict[str, Any] = Field(default_factory=dict)


class RoleCreateBody(Strict):
    role: RoleCreate


class RoleUpdate(Strict):
    name: RoleName | None = None
    description: Text = None
    options: dict[str, Any] = Field(default_factory=dict)


class RoleUpdateBody(Strict):
    role: RoleUpdate


@router.get("/v3/roles")
def list_roles(
    session: SessionDep,
    caller: ContextDep,
    name: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_roles")
    query = select(Role).order_by(Role.name)
    if name is not None:
        query = query.where(Role.name == name)
    return {"roles": [role_view(r) for r in session.scalars(query)], "links": {}}


@router.post("/v3/roles", status_code=201)
def create_role(body: RoleCreateBody, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:create_role")
    try:
        role = store.create_role(session, body.role.name, body.role.description)
    except store.NameInUse as exc:
        raise _conflict(exc) from None
    session.commit()
    return {"role": role_view(role)}


@router.get("/v3/roles/{role_id}")
def show_role(role_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:get_role")
    return {"role": role_view(_role(session, role_id))}


@router.patch("/v3/roles/{role_id}")
def update_role(
    role_id: str, body: RoleUpdateBody, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:update_role")
    role = _role(session, role_id)
    changes = body.role.model_dump(exclude_unset=True, exclude={"options"})
    if "name" in changes and changes["name"] is None:
        raise BadRequest("Invalid input for field 'name': null is not allowed")
    try:
        store.update_role(session, role, changes)
    except store.NameInUse as exc:
        raise _conflict(exc) from None
    session.commit()
    return {"role": role_view(role)}


@router.delete("/v3/roles/{role_id}", status_code=204)
def delete_role(role_id: str, session: SessionDep, caller: ContextDep) -> Response:
    caller.require_admin("identity:delete_role")
    role = _role(session, role_id)
    if role.id in ("admin", "member", "reader"):
        raise Forbidden(f"The built-in role {role.name} decides policy and cannot be deleted.")
    store.delete_role(session, role)
    session.commit()
    return Response(status_code=204)


# --- role assignments ------------------------------------------------------------


PROJECT_ROLE = "/v3/projects/{project_id}/users/{user_id}/roles"
SYSTEM_ROLE = "/v3/system/users/{user_id}/roles"


@router.get(PROJECT_ROLE)
def list_project_roles(
    project_id: str, user_id: str, session: SessionDep, caller: ContextDep
) -> dict[str, Any]:
    caller.require_admin("identity:list_grants")
    _project(session, project_id)
    _user(session, user_id)
    roles = store.project_roles(session, user_id, project_id)
    return {"roles": [role_view(r) for r in roles], "links": {}}


@router.put(PROJECT_ROLE + "/{role_id}", status_code=204)
def grant_project_role(
    project_id: str, user_id: str, role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:create_grant")
    _project(session, project_id)
    _user(session, user_id)
    _role(session, role_id)
    store.assign_project_role(session, user_id, project_id, role_id)
    session.commit()
    return Response(status_code=204)


@router.head(PROJECT_ROLE + "/{role_id}", status_code=204)
def check_project_role(
    project_id: str, user_id: str, role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:check_grant")
    if role_id not in {r.id for r in store.project_roles(session, user_id, project_id)}:
        raise NotFound(f"Could not find role assignment of {role_id[:64]} to {user_id[:64]}.")
    return Response(status_code=204)


@router.delete(PROJECT_ROLE + "/{role_id}", status_code=204)
def revoke_project_role(
    project_id: str, user_id: str, role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:revoke_grant")
    if not store.revoke_project_role(session, user_id, project_id, role_id):
        raise NotFound(f"Could not find role assignment of {role_id[:64]} to {user_id[:64]}.")
    session.commit()
    return Response(status_code=204)


@router.get(SYSTEM_ROLE)
def list_system_roles(user_id: str, session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    caller.require_admin("identity:list_system_grants_for_user")
    _user(session, user_id)
    return {"roles": [role_view(r) for r in store.system_roles(session, user_id)], "links": {}}


@router.put(SYSTEM_ROLE + "/{role_id}", status_code=204)
def grant_system_role(
    user_id: str, role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:create_system_grant_for_user")
    _user(session, user_id)
    _role(session, role_id)
    store.assign_system_role(session, user_id, role_id)
    session.commit()
    return Response(status_code=204)


@router.head(SYSTEM_ROLE + "/{role_id}", status_code=204)
def check_system_role(
    user_id: str, role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:check_system_grant_for_user")
    if role_id not in {r.id for r in store.system_roles(session, user_id)}:
        raise NotFound(f"Could not find system role assignment of {role_id[:64]}.")
    return Response(status_code=204)


@router.delete(SYSTEM_ROLE + "/{role_id}", status_code=204)
def revoke_system_role(
    user_id: str, role_id: str, session: SessionDep, caller: ContextDep
) -> Response:
    caller.require_admin("identity:revoke_system_grant_for_user")
    if not store.revoke_system_role(session, user_id, role_id):
        raise NotFound(f"Could not find system role assignment of {role_id[:64]}.")
    session.commit()
    return Response(status_code=204)


@router.get("/v3/role_assignments")
def list_role_assignments(
    session: SessionDep,
    caller: ContextDep,
    user_id: Annotated[str | None, Query(alias="user.id", max_length=64)] = None,
    project_id: Annotated[str | None, Query(alias="scope.project.id", max_length=64)] = None,
    role_id: Annotated[str | None, Query(alias="role.id", max_length=64)] = None,
    include_names: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_role_assignments")
    rows = store.role_assignments(session, user_id=user_id, project_id=project_id, role_id=role_id)
    names = include_names is not None and include_names.lower() not in ("0", "false", "no")
    out = []
    for a in rows:
        role: dict[str, Any] = {"id": a.role}
        user: dict[str, Any] = {"id": a.user_id}
        project: dict[str, Any] = {"id": a.project_id}
        if names:
            role["name"] = getattr(session.get(Role, a.role), "name", a.role)
            user["name"] = getattr(session.get(User, a.user_id), "name", "")
            project["name"] = getattr(session.get(Project, a.project_id), "name", "")
            for ref in (user, project):
                ref["domain"] = {"id": DEFAULT_DOMAIN_ID, "name": DEFAULT_DOMAIN_NAME}
        out.append(
            {
                "role": role,
                "user": user,
                "scope": {"project": project},
                "links": {
                    "assignment": f"/v3/projects/{a.project_id}/users/{a.user_id}/roles/{a.role}"
                },
            }
        )
    return {"role_assignments": out, "links": {}}
