"""Request dependencies as ``Annotated`` aliases: the session, the caller, the
compute microversion.

Every handler takes ``SessionDep`` and, unless it is public, ``ContextDep``: the
caller as a validated token says (user, project, roles).

FastAPI runs a plain ``def`` dependency on a worker thread, and each such hop
costs a small request about as much as a query. So what needs no database
(settings, microversion, a token found in the token cache, making a session)
is ``async`` and answered on the event loop; reading the token's rows and
closing a session that holds a connection still happen on a worker thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from pcifleet.api.errors import Unauthorized
from pcifleet.api.security import hash_token
from pcifleet.api.settings import ApiSettings
from pcifleet.api.token_cache import token_cache
from pcifleet.compute.context import (  # re-exported for the routes
    ADMIN as ADMIN,
)
from pcifleet.compute.context import (
    MEMBER as MEMBER,
)
from pcifleet.compute.context import (
    READER as READER,
)
from pcifleet.compute.context import (
    Context as Context,
)
from pcifleet.compute.context import (
    new_id as new_id,
)
from pcifleet.compute.context import (
    timestamp as timestamp,
)
from pcifleet.compute.context import (
    utcnow as utcnow,
)
from pcifleet.store.assignments import effective_roles, effective_system_roles
from pcifleet.store.cloud import Project, Token, User


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The handler's session. It takes a connection only at its first statement and
    gives it back when the handler has returned, before the response is sent and
    before background tasks run (``scope="function"``): a slow client or a queued
    background task never holds a connection."""
    session: Session = request.app.state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            # giving the connection back rolls it back: database I/O, off the loop
            await run_in_threadpool(session.close)
        else:
            session.close()  # holds no connection: nothing to wait for


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def roles_of(session: Session, user_id: str, project_id: str) -> frozenset[str]:
    """Effective roles on a project or domain: the user's own and its groups',
    with every role they imply (admin > member > reader, and rules admins add)."""
    return effective_roles(session, user_id, project_id)


def context_for_token(session: Session, token: str | None, *, cached: bool = False) -> Context:
    """The caller a token stands for; 401 when it is missing, unknown or expired.

    ``cached``: take it from, and keep it in, the engine's token cache
    (``pcifleet.api.token_cache``); the Identity API's own routes read the rows.
    A transaction this check begins on ``session`` it also ends, so the connection
    goes back to the pool before the request waits for its handler's thread.
    """
    cache = None
    if cached and token and len(token) <= 512:
        bind = session.get_bind()
        if isinstance(bind, Engine):
            cache = token_cache(bind)
            hit = cache.get(hash_token(token))
            if hit is not None:
                return hit
    generation = cache.watch.generation if cache is not None else 0
    began = not session.in_transaction()
    try:
        ctx, expires_at = _context_for_token(session, token)
    finally:
        if began and session.in_transaction():
            session.commit()  # read only; ends the transaction, keeps loaded rows
    if cache is not None:
        cache.put(ctx.token_hash, ctx, generation, expires_at)
    return ctx


def system_roles_of(session: Session, user_id: str) -> frozenset[str]:
    """Roles given on the system, with the same implications as on a project."""
    return effective_system_roles(session, user_id)


def _context_for_token(session: Session, token: str | None) -> tuple[Context, datetime]:
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    if len(token) > 512:
        raise Unauthorized("The request you have made requires authentication.")
    digest = hash_token(token)
    row = session.execute(
        select(Token, User, Project)
        .join(User, User.id == Token.user_id)
        .outerjoin(Project, Project.id == Token.project_id)
        .where(Token.token_hash == digest)
    ).first()
    if row is None:
        raise Unauthorized("The request you have made requires authentication.")
    tok, user, project = row
    if tok.expires_at <= utcnow() or not user.enabled or (project and not project.enabled):
        raise Unauthorized("The token has expired or its user or project is disabled.")
    if not _domains_enabled(session, user.domain_id, project.domain_id if project else None):
        raise Unauthorized("The token's user or project is in a disabled domain.")
    if tok.domain_id is not None:
        domain = session.get(Project, tok.domain_id)
        if domain is None or not domain.enabled:
            raise Unauthorized("The token's domain is disabled.")
        roles = roles_of(session, user.id, domain.id)
        if not roles:
            raise Unauthorized("The token's user has no role on its domain any more.")
        return Context(user.id, user.name, "", "", roles, digest, scope="domain"), tok.expires_at
    if project is None:
        if not tok.system:
            return Context(
                user.id, user.name, "", "", frozenset(), digest, scope="unscoped"
            ), tok.expires_at
        roles = system_roles_of(session, user.id)
        if not roles:
            raise Unauthorized("The token's user has no role on the system any more.")
        return Context(user.id, user.name, "", "", roles, digest, scope="system"), tok.expires_at
    roles = roles_of(session, user.id, project.id)
    if not roles:
        raise Unauthorized("The token's user has no role on its project any more.")
    return Context(user.id, user.name, project.id, project.name, roles, digest), tok.expires_at


def _domains_enabled(session: Session, *domain_ids: str | None) -> bool:
    ids = {d for d in domain_ids if d is not None}
    enabled = session.scalars(select(Project.enabled).where(Project.id.in_(ids))).all()
    return len(enabled) == len(ids) and all(enabled)


def get_identity_context(request: Request) -> Context:
    """The caller of an Identity route: any token, scoped or not."""
    # Its own short session, not the handler's: the check is over (and its
    # connection back in the pool) before the handler runs.
    with request.app.state.sessions() as session:
        return context_for_token(session, request.headers.get("x-auth-token"))


def get_context(request: Request) -> Context:
    """The caller of a service route: a project-scoped token only, as the
    resources it makes and sees belong to that project."""
    # Service routes take the token cache: a burst of calls with one token
    # reads it once (see pcifleet.api.token_cache for how it stays correct).
    with request.app.state.sessions() as session:
        ctx = context_for_token(session, request.headers.get("x-auth-token"), cached=True)
    return _project_scoped(ctx)


def _project_scoped(ctx: Context) -> Context:
    if ctx.scope != "project":
        raise Unauthorized(f"A project-scoped token is required; this one is {ctx.scope}.")
    return ctx


async def current_context(request: Request) -> Context:
    """``get_context``, answered on the event loop when the token cache holds
    the token (a dictionary lookup); only a miss goes to a worker thread."""
    token = request.headers.get("x-auth-token")
    if token and len(token) <= 512:
        hit = token_cache(request.app.state.engine).get(hash_token(token))
        if hit is not None:
            return _project_scoped(hit)
    return await run_in_threadpool(get_context, request)


async def get_microversion(request: Request) -> tuple[int, int]:
    version: tuple[int, int] = getattr(request.state, "microversion", (2, 1))
    return version


ContextDep = Annotated[Context, Depends(current_context)]
IdentityContextDep = Annotated[Context, Depends(get_identity_context)]
MicroversionDep = Annotated[tuple[int, int], Depends(get_microversion)]
