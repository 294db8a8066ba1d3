"""Identity v3 (keystone's subset): version discovery, password tokens with a
service catalog, scoped to a project, a domain or the system, token
validation and revocation, and the scopes a user may ask for. Domains,
projects, users, groups and roles are administered in ``identity_admin``,
``identity_domains`` and ``identity_grants``."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pcifleet.api.catalog import base_url, catalog
from pcifleet.api.deps import (
    Context,
    SessionDep,
    SettingsDep,
    context_for_token,
    roles_of,
    system_roles_of,
    utcnow,
)
from pcifleet.api.deps import IdentityContextDep as ContextDep
from pcifleet.api.errors import BadRequest, Forbidden, NotFound, TooManyRequests, Unauthorized
from pcifleet.api.identity_views import DEFAULT_DOMAIN_ID, domain_ref, domain_view, project_view
from pcifleet.api.security import hash_password, new_token, verify_password
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.schemas import Id, Name, Strict
from pcifleet.store import login_failures
from pcifleet.store.assignments import targets_of_user
from pcifleet.store.cloud import Project, Role, Token, User
from pcifleet.store.login_failures import LoginLimit

router = APIRouter(tags=["identity"])
DUMMY_HASH = hash_password("pcifleet: no such user")
VERSION_ID = "v3.14"
UPDATED = "2020-04-07T00:00:00Z"
MEDIA = [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]


def _version(base: str) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "status": "stable",
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v3/"}],
        "media-types": MEDIA,
    }


@router.get("/", status_code=300, responses={300: {"description": "The API versions"}})
def versions(request: Request, settings: SettingsDep) -> JSONResponse:
    base = base_url(request, settings)
    return JSONResponse({"versions": {"values": [_version(base)]}}, status_code=300)


@router.get("/v3")
def version(request: Request, settings: SettingsDep) -> dict[str, Any]:
    return {"version": _version(base_url(request, settings))}


# --- POST /v3/auth/tokens input ---------------------------------------------


class DomainRef(Strict):
    id: Id | None = None
    name: Name | None = None


class UserRef(Strict):
    id: Id | None = None
    name: Name | None = None
    domain: DomainRef | None = None
    password: Annotated[str, Field(max_length=4096)]


class PasswordMethod(Strict):
    user: UserRef


class TokenMethod(Strict):
    id: Annotated[str, Field(max_length=512)]


class Identity(Strict):
    methods: Annotated[list[Literal["password", "token"]], Field(min_length=1, max_length=2)]
    password: PasswordMethod | None = None
    token: TokenMethod | None = None


class ProjectRef(Strict):
    id: Id | None = None
    name: Name | None = None
    domain: DomainRef | None = None


class SystemRef(Strict):
    all: Literal[True]


class Scope(Strict):
    project: ProjectRef | None = None
    domain: DomainRef | None = None
    system: SystemRef | None = None


class Auth(Strict):
    identity: Identity
    scope: Scope | Literal["unscoped"] | None = None


class AuthRequest(Strict):
    auth: Auth


def _find_domain(session: Session, ref: DomainRef, what: str) -> Project:
    """The enabled domain a reference names, else Keystone's 401."""
    if ref.id is not None:
        domain = session.get(Project, ref.id)
    elif ref.name is not None:
        domain = session.scalar(
            select(Project).where(Project.name == ref.name, Project.is_domain.is_(True))
        )
    else:
        raise BadRequest(f"{what}.domain needs an id or a name")
    if domain is None or not domain.is_domain or not domain.enabled:
        raise Unauthorized(f"The request you have made requires authentication ({what} domain).")
    return domain


def _find_project(session: Session, ref: ProjectRef) -> Project:
    if ref.id is not None:
        project = session.get(Project, ref.id)
        if ref.domain is not None:
            _find_domain(session, ref.domain, "project")
    elif ref.name is not None:
        if ref.domain is None:
            raise BadRequest("scope.project.domain is required when the project is named")
        domain = _find_domain(session, ref.domain, "project")
        project = session.scalar(
            select(Project).where(Project.name == ref.name, Project.domain_id == domain.id)
        )
    else:
        raise BadRequest("scope.project needs an id or a name")
    if project is None or project.is_domain or not project.enabled:
        raise Unauthorized("The request you have made requires authentication (project).")
    return project


def _authenticate(session: Session, identity: Identity) -> tuple[User, Token | None]:
    """The user proved by the methods, and the token a token method presented."""
    if "password" in identity.methods:
        if identity.password is None:
            raise BadRequest("auth.identity.password is required by the password method")
        ref = identity.password.user
        user: User | None
        if ref.id is not None:
            # an id names the user whatever domain is given, as in Keystone
            user = session.get(User, ref.id)
        elif ref.name is not None:
            if ref.domain is None:
                raise BadRequest("auth.identity.password.user.domain is required with a name")
            domain = _find_domain(session, ref.domain, "user")
            user = session.scalar(
                select(User).where(User.name == ref.name, User.domain_id == domain.id)
            )
        else:
            raise BadRequest("auth.identity.password.user needs an id or a name")
        if user is None:
            # spend the same time as for a wrong password: no user enumeration
            verify_password(DUMMY_HASH, ref.password)
            raise Unauthorized("The request you have made requires authentication.")
        if not user.enabled or not verify_password(user.password_hash, ref.password):
            raise Unauthorized("The request you have made requires authentication.")
        home = session.get(Project, user.domain_id)
        if home is None or not home.enabled:
            raise Unauthorized("The request you have made requires authentication (user domain).")
        return user, None
    if identity.token is None:
        raise BadRequest("auth.identity.token is required by the token method")
    ctx = context_for_token(session, identity.token.id)
    user = session.get(User, ctx.user_id)
    presented = session.get(Token, ctx.token_hash)
    assert user is not None and presented is not None
    return user, presented


def _login_limits(
    request: Request, settings: ApiSettings, identity: Identity
) -> dict[str, LoginLimit]:
    """The keys a password login counts against: its user, its client address."""
    window = settings.login_window_seconds
    limits: dict[str, LoginLimit] = {}
    if identity.password is not None:
        ref = identity.password.user
        name = ref.id if ref.id is not None else (ref.name or "")
        limits[f"user:{name[:255]}"] = LoginLimit(settings.login_failures_per_user, window)
    if request.client is not None:
        address = f"addr:{request.client.host[:64]}"
        limits[address] = LoginLimit(settings.login_failures_per_address, window)
    return limits


def _authenticate_limited(
    request: Request, session: Session, settings: ApiSettings, identity: Identity
) -> tuple[User, Token | None]:
    """``_authenticate``, with failed password logins counted and limited."""
    if "password" not in identity.methods:
        return _authenticate(session, identity)
    limits = _login_limits(request, settings, identity)
    sessions = request.app.state.sessions
    with sessions() as counts:
        seen = login_failures.standing(counts, limits, utcnow())
    if seen.blocked is not None:
        key, seconds = seen.blocked
        what = "user" if key.startswith("user:") else "client address"
        raise TooManyRequests(
            f"Too many failed logins for this {what}; retry after {seconds} s.",
            retry_after=seconds,
        )
    try:
        found = _authenticate(session, identity)
    except Unauthorized:
        with sessions() as counts:
            login_failures.record_failure(counts, limits, utcnow())
        raise
    for key in seen.counted:
        if key.startswith("user:"):
            with sessions() as counts:
                login_failures.forget(counts, key)
    return found


def _roles(session: Session, role_ids: frozenset[str]) -> list[dict[str, str]]:
    rows = session.execute(select(Role.id, Role.name).where(Role.id.in_(role_ids))).all()
    names = {role_id: name for role_id, name in rows}
    return [{"id": r, "name": names.get(r, r)} for r in sorted(role_ids)]


def _token_body(
    session: Session,
    request: Request,
    settings: SettingsDep,
    ctx: Context,
    tok: Token,
    *,
    with_catalog: bool,
    methods: Sequence[str],
) -> dict[str, Any]:
    user = session.get(User, ctx.user_id)
    user_domain = user.domain_id if user is not None else DEFAULT_DOMAIN_ID
    body: dict[str, Any] = {
        "methods": list(methods),
        "user": {
            "id": ctx.user_id,
            "name": ctx.user_name,
            "domain": domain_ref(session.get(Project, user_domain), user_domain),
            "password_expires_at": None,
        },
        "audit_ids": [tok.audit_id, *([tok.parent_audit_id] if tok.parent_audit_id else [])],
        "issued_at": _when(tok.issued_at),
        "expires_at": _when(tok.expires_at),
    }
    if ctx.scope == "unscoped":
        return {"token": body}  # Keystone's unscoped token: no roles, no catalog
    if ctx.scope == "system":
        body["system"] = {"all": True}
    elif ctx.scope == "domain" and tok.domain_id is not None:
        body["domain"] = domain_ref(session.get(Project, tok.domain_id), tok.domain_id)
    else:
        project = session.get(Project, ctx.project_id)
        project_domain = (project.domain_id if project else None) or DEFAULT_DOMAIN_ID
        body["project"] = {
            "id": ctx.project_id,
            "name": ctx.project_name,
            "domain": domain_ref(session.get(Project, project_domain), project_domain),
        }
        body["is_domain"] = False
    body["roles"] = _roles(session, ctx.roles)
    if with_catalog:
        body["catalog"] = catalog(base_url(request, settings), settings.region)
    return {"token": body}


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


@router.post("/v3/auth/tokens", status_code=201)
def issue_token(
    body: AuthRequest,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    nocatalog: Annotated[str | None, Query(max_length=16)] = None,
) -> JSONResponse:
    auth = body.auth
    user, presented = _authenticate_limited(request, session, settings, auth.identity)
    token_project = presented.project_id if presented else None
    project: Project | None = None
    domain: Project | None = None
    system = False
    roles: frozenset[str] = frozenset()
    if isinstance(auth.scope, Scope):
        asked = [auth.scope.project, auth.scope.domain, auth.scope.system]
        if sum(x is not None for x in asked) != 1:
            raise BadRequest("auth.scope needs exactly one of project, domain and system")
        if auth.scope.project is not None:
            project = _find_project(session, auth.scope.project)
            roles = roles_of(session, user.id, project.id)
            if not roles:
                raise Unauthorized(f"User {user.name} has no role on project {project.name}.")
        elif auth.scope.domain is not None:
            domain = _find_domain(session, auth.scope.domain, "scope")
            roles = roles_of(session, user.id, domain.id)
            if not roles:
                raise Unauthorized(f"User {user.name} has no role on domain {domain.name}.")
        else:
            system = True
            roles = system_roles_of(session, user.id)
            if not roles:
                raise Unauthorized(f"User {user.name} has no role on the system.")
    elif auth.scope is None:
        # Keystone's fallback: the token's own project, else the user's default
        # project if a role there allows it, else an unscoped token
        default = token_project or user.default_project_id
        candidate = session.get(Project, default) if default else None
        if candidate is not None and candidate.enabled and not candidate.is_domain:
            roles = roles_of(session, user.id, candidate.id)
            project = candidate if roles else None
    token, digest = new_token()
    now = utcnow()
    methods = ["password"] if presented is None else [*presented.methods.split(","), "token"]
    methods = sorted(set(methods))
    # a rescoped token lives no longer than the token it came from, as in Keystone
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    if presented is not None:
        expires = min(expires, presented.expires_at)
    tok = Token(
        token_hash=digest,
        user_id=user.id,
        project_id=project.id if project else None,
        domain_id=domain.id if domain else None,
        system=system,
        methods=",".join(methods),
        audit_id=secrets.token_urlsafe(16)[:22],
        parent_audit_id=presented.audit_id if presented else None,
        issued_at=now,
        expires_at=expires,
    )
    session.add(tok)
    # expired tokens of this user are of no use to anyone: drop them now
    session.execute(delete(Token).where(Token.user_id == user.id, Token.expires_at <= now))
    session.commit()
    scope = "project" if project else "domain" if domain else "system" if system else "unscoped"
    ctx = Context(
        user.id,
        user.name,
        project.id if project else "",
        project.name if project else "",
        roles,
        digest,
        scope=scope,
    )
    content = _token_body(
        session,
        request,
        settings,
        ctx,
        tok,
        with_catalog=nocatalog is None,
        methods=methods,
    )
    return JSONResponse(content, status_code=201, headers={"X-Subject-Token": token})


def _subject(session: Session, caller: Context, subject: str | None) -> tuple[Context, Token]:
    if not subject:
        raise NotFound("X-Subject-Token header is required")
    try:
        ctx = context_for_token(session, subject)
    except Unauthorized:
        raise NotFound("Could not find token.") from None
    # Keystone's token_subject rule: a user may check and revoke any of its own
    # tokens; other users' tokens are an admin's business
    if ctx.user_id != caller.user_id and not caller.is_admin:
        raise Forbidden("Only an admin may validate another user's token.")
    tok = session.get(Token, ctx.token_hash)
    assert tok is not None
    return ctx, tok


@router.get("/v3/auth/tokens")
def validate_token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: ContextDep,
    x_subject_token: Annotated[str | None, Header()] = None,
    nocatalog: Annotated[str | None, Query(max_length=16)] = None,
) -> JSONResponse:
    ctx, tok = _subject(session, caller, x_subject_token)
    content = _token_body(
        session,
        request,
        settings,
        ctx,
        tok,
        with_catalog=nocatalog is None,
        methods=tok.methods.split(","),
    )
    return JSONResponse(content, headers={"X-Subject-Token": x_subject_token or ""})


@router.head("/v3/auth/tokens", status_code=200)
def check_token(
    session: SessionDep,
    caller: ContextDep,
    x_subject_token: Annotated[str | None, Header()] = None,
) -> Response:
    _subject(session, caller, x_subject_token)
    return Response(status_code=200)


@router.delete("/v3/auth/tokens", status_code=204)
def revoke_token(
    session: SessionDep,
    caller: ContextDep,
    x_subject_token: Annotated[str | None, Header()] = None,
) -> Response:
    _ctx, tok = _subject(session, caller, x_subject_token)
    revoke_chain(session, tok)
    session.commit()
    return Response(status_code=204)


def revoke_chain(session: Session, tok: Token) -> None:
    """Delete ``tok`` and every token issued from it, however many steps removed,
    as Keystone's revocation by audit id ends the tokens a token begot."""
    audit_ids = [tok.audit_id]
    session.delete(tok)
    while audit_ids:
        children = list(
            session.scalars(select(Token.audit_id).where(Token.parent_audit_id.in_(audit_ids)))
        )
        session.execute(delete(Token).where(Token.parent_audit_id.in_(audit_ids)))
        audit_ids = children


@router.get("/v3/auth/catalog")
def auth_catalog(request: Request, settings: SettingsDep, caller: ContextDep) -> dict[str, Any]:
    return {"catalog": catalog(base_url(request, settings), settings.region)}


@router.get("/v3/auth/projects")
def auth_projects(session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    """The projects the caller may scope a token to: those it has a role on."""
    projects = targets_of_user(session, caller.user_id, domains=False)
    return {"projects": [project_view(p) for p in projects if p.enabled], "links": {}}


@router.get("/v3/auth/domains")
def auth_domains(session: SessionDep, caller: ContextDep) -> dict[str, Any]:
    """The domains the caller may scope a token to: those it (or a group of
    its) has a role on."""
    domains = targets_of_user(session, caller.user_id, domains=True)
    return {"domains": [domain_view(d) for d in domains if d.enabled], "links": {}}
