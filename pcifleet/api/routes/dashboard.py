"""``/dashboard``: the fleet in a browser, server-rendered with Jinja2.

Log in with an Identity user: the password goes to this service's own
Keystone endpoint (``POST /v3/auth/tokens``, called in-process through the
ASGI app, so the rules are Keystone's), and the token is kept in a session
cookie (HttpOnly, SameSite=Strict, gone when the browser closes). Each page
checks the token as the API does. Admins see the fleet, members their
project's servers. A little JS reloads the page's content every few seconds.
Templates and static files ship in the package; nothing comes from a CDN.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Any

import httpx
import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from pcifleet.api import dashboard_views as views
from pcifleet.api.deps import context_for_token
from pcifleet.api.errors import NotFound, Unauthorized
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.context import Context

router = APIRouter(prefix="/dashboard", include_in_schema=False)
COOKIE = "pcifleet_dashboard"
HERE = Path(__file__).resolve().parent.parent
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
REFRESH_SECONDS = 5


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates" / "dashboard"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = _templates().get_template(name).render(refresh=REFRESH_SECONDS, **values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _caller(request: Request, session: Session) -> Context | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        ctx = context_for_token(session, token)
    except Unauthorized:
        return None
    return ctx if ctx.scope == "project" else None


def _to_login() -> RedirectResponse:
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    kind = STATIC.get(name)
    if kind is None:
        raise NotFound(f"no dashboard file {name[:64]!r}")
    return FileResponse(HERE / "static" / name, media_type=kind)


@router.get("/login")
def login_form() -> HTMLResponse:
    return _render("login.html", error="", username="", project="")


@router.post("/login")
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=4096)],
    project: Annotated[str, Form(max_length=255)] = "",
) -> Response:
    domain = {"name": "Default"}
    auth: dict[str, Any] = {
        "identity": {
            "methods": ["password"],
            "password": {"user": {"name": username, "domain": domain, "password": password}},
        }
    }
    if project:
        auth["scope"] = {"project": {"name": project, "domain": domain}}
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        resp = await client.post("/v3/auth/tokens?nocatalog", json={"auth": auth})
    token = resp.headers.get("X-Subject-Token") if resp.status_code == 201 else None
    scoped = token is not None and "project" in resp.json().get("token", {})
    if not scoped:
        error = (
            "Log in failed: check the user name, password and project."
            if token is None
            else "This user has no default project: give a project."
        )
        return _render("login.html", 401, error=error, username=username, project=project)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(COOKIE, token or "", path="/dashboard", httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout() -> Response:
    return _to_login()


def _fleet_page(request: Request) -> Response:
    settings: ApiSettings = request.app.state.settings
    with request.app.state.sessions() as session:
        ctx = _caller(request, session)
        if ctx is None:
            return _to_login()
        if not ctx.is_admin:
            return _render("servers.html", ctx=ctx, servers=views.servers(session, ctx.project_id))
        return _render(
            "fleet.html",
            ctx=ctx,
            hosts=views.hosts(session, settings),
            capacity=views.capacity(session, request.app.state.engine, settings),
            servers=views.servers(session, None),
            faults=views.recent_no_valid_host(session),
        )


@router.get("")
async def fleet(request: Request) -> Response:
    return await run_in_threadpool(_fleet_page, request)


def _host_page(request: Request, name: str) -> Response:
    settings: ApiSettings = request.app.state.settings
    with request.app.state.sessions() as session:
        ctx = _caller(request, session)
        if ctx is None:
            return _to_login()
        if not ctx.is_admin:
            return _render("denied.html", 403, ctx=ctx)
        host = views.host_detail(session, settings, name)
        if host is None:
            return _render("denied.html", 404, ctx=ctx)
        return _render("host.html", ctx=ctx, host=host)


@router.get("/hosts/{name}")
async def host_page(request: Request, name: str) -> Response:
    return await run_in_threadpool(_host_page, request, name)
