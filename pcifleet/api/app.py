"""The ASGI application: every OpenStack service and pcifleet's own API in one.

``create_app(settings)`` is the factory; ``uvicorn --factory
pcifleet.api.app:app_from_env`` serves one configured from PCIFLEET_* variables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pcifleet.api.admission import install_admission, overloaded_for
from pcifleet.api.errors import ApiError, error_body, service_of
from pcifleet.api.metrics import HttpMetricsMiddleware, count_statements
from pcifleet.api.middleware import OpenStackMiddleware
from pcifleet.api.routes import (
    agent_images,
    compute,
    compute_misc,
    dashboard,
    explain,
    flavor_access,
    flavors,
    host_domains,
    hypervisors,
    identity,
    identity_admin,
    identity_assignments,
    identity_domains,
    identity_grants,
    images,
    interfaces,
    keypairs,
    metrics,
    migrations,
    move_disks,
    networks,
    os_pci,
    os_services,
    pcifleet_v1,
    ports,
    server_actions,
    servers,
    subnets,
)
from pcifleet.api.settings import ApiSettings
from pcifleet.api.token_cache import token_cache
from pcifleet.compute.worker import ComputeWorker
from pcifleet.scheduler import SchedulerConfig, scheduler_for
from pcifleet.store.db import make_engine, session_factory, upgrade
from pcifleet.store.errors import database_trouble
from pcifleet.store.private import private_dir

log = logging.getLogger(__name__)


def _json_error(
    request: Request, status: int, message: str, kind: str | None = None
) -> JSONResponse:
    service = service_of(request.url.path)
    return JSONResponse(error_body(service, status, message, kind), status_code=status)


def field_path(loc: tuple[Any, ...]) -> str:
    """``("body", "network", "name")`` -> ``network.name``; a list index is
    written ``networks[3].name``, as the messages of our own checks write it."""
    path = ""
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "request body"


def validation_message(exc: RequestValidationError) -> str:
    """One line naming each bad field and why (the first few)."""
    messages = []
    for err in exc.errors()[:3]:
        loc = tuple(err.get("loc", ()))
        kind = err.get("type", "")
        if kind == "json_invalid":
            messages.append(
                f"Malformed request body: {err.get('ctx', {}).get('error', 'invalid JSON')}"
            )
        elif kind == "extra_forbidden":
            messages.append(
                f"Additional properties are not allowed ('{field_path(loc)}' was unexpected)"
            )
        elif kind == "missing" and loc == ("body",):
            messages.append("The request body is required")
        else:
            messages.append(f"Invalid input for field '{field_path(loc)}': {err.get('msg', '')}")
    return "; ".join(messages)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (a 405's ``Allow``):
    Starlette names only those of the first route whose path matched."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        scope = dict(request.scope, method=method)
        if any(r.matches(scope)[0] is Match.FULL for r in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        response = _json_error(request, exc.status, exc.message, exc.kind)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json_error(request, 400, validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"The resource could not be found: {request.method} {request.url.path[:200]}"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names the methods of the first route matching the path only
            headers["Allow"] = ", ".join(allowed_methods(request))
            message = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
        response = _json_error(request, exc.status_code, message)
        response.headers.update(headers)
        return response

    @app.exception_handler(IntegrityError)
    async def conflict(request: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness race two requests ran into; the loser gets a 409.
        log.info("integrity error: %s", exc)
        return _json_error(request, 409, "The request conflicts with a concurrent change; retry.")

    @app.exception_handler(DBAPIError)
    async def database(request: Request, exc: DBAPIError) -> JSONResponse:
        # Name what is wrong (read-only, full disk, unreachable...), not "busy".
        meaning = database_trouble(str(exc.orig))
        if meaning is None and not isinstance(exc, OperationalError):
            log.error("database error: %s", exc)
            return _json_error(request, 500, "An unexpected error occurred; see the service log.")
        log.warning("database error: %s", exc)
        return overloaded_for(request, meaning or "The database is unavailable; retry.")

    @app.exception_handler(PoolTimeout)
    async def no_connection(request: Request, exc: PoolTimeout) -> JSONResponse:
        log.warning("database pool exhausted: %s", exc)
        return overloaded_for(request, "The service is busy; retry.")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still logged by the server; the client gets its service's JSON body.
        return _json_error(request, 500, "An unexpected error occurred; see the service log.")


# What any route may answer besides its success, declared in the OpenAPI
# document so a client (or schemathesis) knows them.
ERROR_STATUSES = {
    400: "Bad input; the message names the field",
    401: "No valid token or credential",
    403: "The caller's roles do not allow this",
    404: "Nothing by that id is visible to the caller",
    409: "The resource's state does not allow this now",
    413: "The request body is larger than the limit",
    429: "Too many failed logins; see Retry-After",
    503: "Overloaded, or the database cannot take the request; see Retry-After",
}


def error_responses(*, compute: bool) -> dict[int | str, dict[str, Any]]:
    statuses = dict(ERROR_STATUSES)
    if compute:
        statuses[406] = "The compute microversion asked for is not supported"
    body = {"application/json": {"schema": {"type": "object"}}}
    return {status: {"description": text, "content": body} for status, text in statuses.items()}


# Matched in this order; the first route whose path and method fit serves a request.
ROUTE_MODULES: tuple[ModuleType, ...] = (
    identity,
    identity_admin,
    identity_assignments,
    identity_domains,
    identity_grants,
    networks,
    subnets,
    ports,
    images,
    compute,
    flavors,
    flavor_access,
    servers,
    server_actions,
    interfaces,
    migrations,
    hypervisors,
    os_pci,
    compute_misc,
    keypairs,
    os_services,
    pcifleet_v1,
    explain,
    host_domains,
    agent_images,
    move_disks,
    metrics,
    dashboard,
)


def add_routes(app: FastAPI, modules: Sequence[ModuleType]) -> None:
    """Put every route of ``modules`` on the app's own router, with the error
    statuses it may answer (for the OpenAPI document).

    Not ``include_router``: FastAPI wraps an included router and builds each of
    its routes a second time (dependencies, pydantic adapters) on the first
    request that walks past it, about half a second of CPU at start-up here, and
    matching a request then goes through the wrapper of each module before it.
    The route objects are the modules' own and shared by every app made, so the
    responses are merged, never stacked: running this again changes nothing.
    """
    for module in modules:
        routes = module.router.routes
        compute_api = bool(routes) and all(
            getattr(r, "path", "").startswith("/compute") for r in routes
        )
        errors = error_responses(compute=compute_api)
        for route in routes:
            if isinstance(route, APIRoute):
                route.responses = {**errors, **route.responses}
        app.router.routes.extend(routes)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its 422s: bad input is a 400 here, as in OpenStack."""
    if app.openapi_schema is None:
        doc = FastAPI.openapi(app)
        for item in doc["paths"].values():
            for operation in item.values():
                operation.get("responses", {}).pop("422", None)
    return app.openapi_schema or {}


def create_app(settings: ApiSettings, engine: Engine | None = None) -> FastAPI:
    """The service over ``settings``; pass ``engine`` to share one with the caller."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The job threads and the reconciler live as long as the server serves.
        worker = ComputeWorker(app.state.engine, settings.compute_config())
        app.state.worker = worker
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="pcifleet",
        summary="PCI / SR-IOV passthrough control plane speaking the OpenStack APIs",
        version="0.1.0",
        openapi_url="/pcifleet/v1/openapi.json",
        docs_url="/pcifleet/v1/docs",
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.settings = settings
    # set when the agents' long-polls should answer at once (a stop is under way)
    app.state.draining = threading.Event()
    app.state.engine = engine or make_engine(settings.database_url, **settings.db_pool)
    app.state.sessions = session_factory(app.state.engine)
    count_statements(app.state.engine)
    # watching identity writes from the first statement on (the token cache's guard)
    token_cache(app.state.engine)
    # the engine's shared scheduler, with this service's notion of a down host
    scheduler_for(
        app.state.engine,
        SchedulerConfig(
            mode=settings.scheduler_mode, host_down_after=settings.host_down_after_seconds
        ),
    )
    install_error_handlers(app)
    add_routes(app, ROUTE_MODULES)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_admission(app, settings)  # inside OpenStackMiddleware: its 503s get request ids
    app.add_middleware(OpenStackMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(HttpMetricsMiddleware)  # outermost: 503s and 413s are timed too
    return app


def app_from_env() -> FastAPI:
    """``uvicorn --factory pcifleet.api.app:app_from_env``: migrate, then serve."""
    settings = ApiSettings.from_env()
    if not settings.data_dir.exists():
        private_dir(settings.data_dir)
    upgrade(settings.database_url)
    return create_app(settings)
