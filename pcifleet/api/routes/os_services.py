"""Compute os-services: each host is one ``nova-compute`` service.

Listing takes Nova's ``host=`` and ``binary=`` filters. Operators enable and
disable a host's service (with a reason) and force it down (2.11) two ways, as
Nova accepts them and as openstacksdk sends them:

- from 2.53, ``PUT /os-services/{service_id}`` with ``status``,
  ``disabled_reason`` and ``forced_down`` (the service id is a UUID from 2.53);
- the older actions ``PUT /os-services/enable``, ``/disable``,
  ``/disable-log-reason`` and ``/force-down`` with ``host`` and ``binary``
  (still answered at 2.53 and later: a client pinned to them keeps working).

A disabled or forced-down host is out of scheduling at once: the store bumps
the host's generation (claims planned before it lose their compare-and-swap)
and this process's scheduler reloads the host.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, load_only

from pcifleet import scheduler
from pcifleet.api.deps import ContextDep, MicroversionDep, SessionDep, SettingsDep
from pcifleet.api.errors import BadRequest, NotFound
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.compute.hosts import host_state
from pcifleet.compute.schemas import Strict
from pcifleet.store.errors import HostNotFound
from pcifleet.store.inventory import set_host_state
from pcifleet.store.models import Host

router = APIRouter(tags=["compute"])
# The compute API root (the same in every compute route module; they do not
# import each other).
BINARY = "nova-compute"
# Service ids are UUIDs from 2.53; ours are derived from the host name, so they
# are stable without a column (distinct from the os-hypervisors namespace).
SERVICE_NS = uuid.UUID("0c1f6f43-7a7e-4d61-b5f4-3a0f1d2c9e57")
FORCED_DOWN_SINCE = (2, 11)
UUID_IDS_SINCE = (2, 53)
Text255 = Annotated[str, Field(min_length=1, max_length=255)]


# The columns service_view reads.
SERVICE_COLUMNS = (
    Host.id,
    Host.name,
    Host.state,
    Host.disabled_reason,
    Host.forced_down,
    Host.last_report_at,
)


def service_id(host: Host, mv: tuple[int, int]) -> str | int:
    return str(uuid.uuid5(SERVICE_NS, host.name)) if mv >= UUID_IDS_SINCE else host.id


def service_view(host: Host, mv: tuple[int, int], down_after: float) -> dict[str, Any]:
    """One host as Nova shows a service at microversion ``mv``."""
    view: dict[str, Any] = {
        "id": service_id(host, mv),
        "binary": BINARY,
        "host": host.name,
        "zone": "nova",
        "status": "enabled" if host.state == "enabled" else "disabled",
        "state": host_state(host.last_report_at, down_after, host.forced_down),
        "updated_at": host.last_report_at.strftime("%Y-%m-%dT%H:%M:%S.000000")
        if host.last_report_at
        else None,
        "disabled_reason": host.disabled_reason,
    }
    if mv >= FORCED_DOWN_SINCE:
        view["forced_down"] = host.forced_down
    return view


@router.get(PREFIX + "/os-services")
def list_services(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:list")
    binary = request.query_params.get("binary")
    if binary is not None and binary != BINARY:
        return {"services": []}  # only compute services here
    # Only what a service shows: a host's pools and NUMA cells are JSON that
    # would be decoded for every host at every call (monitors poll this list).
    query = select(Host).options(load_only(*SERVICE_COLUMNS)).order_by(Host.name)
    host = request.query_params.get("host")
    if host is not None:
        query = query.where(Host.name == host[:255])
    hosts = session.scalars(query)
    return {"services": [service_view(h, mv, settings.host_down_after_seconds) for h in hosts]}


# --- updates ------------------------------------------------------------------


class ServiceUpdate(Strict):
    """``PUT /os-services/{service_id}`` (2.53)."""

    status: Literal["enabled", "disabled"] | None = None
    disabled_reason: Text255 | None = None
    forced_down: bool | None = None


class ServiceAction(Strict):
    """The older actions name the service by host and binary."""

    host: Text255
    binary: Text255


class DisableWithReason(ServiceAction):
    disabled_reason: Text255


class ForceDown(ServiceAction):
    forced_down: bool


def _change(
    request: Request,
    session: Session,
    host: Host,
    state: str | None,
    reason: str | None = None,
    forced_down: bool | None = None,
) -> Host:
    """Write the change through the store, tell the scheduler, read the host back."""
    engine: Engine = request.app.state.engine
    name, host_id = host.name, host.id
    # End the read transaction: the store writes on its own connection.
    session.rollback()
    try:
        set_host_state(engine, name, state, disabled_reason=reason, forced_down=forced_down)
    except HostNotFound:
        raise NotFound(f"Compute host {name[:64]} could not be found.") from None
    scheduler.host_changed(engine, name)
    fresh = session.get(Host, host_id)
    if fresh is None:
        raise NotFound(f"Compute host {name[:64]} could not be found.")
    return fresh


def _by_host_binary(session: Session, body: ServiceAction) -> Host:
    host = session.scalar(select(Host).where(Host.name == body.host))
    if host is None:
        raise NotFound(f"Compute host {body.host[:64]} could not be found.")
    if body.binary != BINARY:
        raise NotFound(f"Service {body.binary[:64]} on host {body.host[:64]} could not be found.")
    return host


@router.put(PREFIX + "/os-services/enable")
def enable(
    body: ServiceAction, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:update")
    _change(request, session, _by_host_binary(session, body), "enabled")
    return {"service": {"host": body.host, "binary": body.binary, "status": "enabled"}}


@router.put(PREFIX + "/os-services/disable")
def disable(
    body: ServiceAction, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:update")
    _change(request, session, _by_host_binary(session, body), "disabled")
    return {"service": {"host": body.host, "binary": body.binary, "status": "disabled"}}


@router.put(PREFIX + "/os-services/disable-log-reason")
def disable_log_reason(
    body: DisableWithReason, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:update")
    _change(request, session, _by_host_binary(session, body), "disabled", body.disabled_reason)
    return {
        "service": {
            "host": body.host,
            "binary": body.binary,
            "status": "disabled",
            "disabled_reason": body.disabled_reason,
        }
    }


@router.put(PREFIX + "/os-services/force-down")
def force_down(
    body: ForceDown, request: Request, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:update")
    if mv < FORCED_DOWN_SINCE:
        raise NotFound("Unknown action force-down: it needs compute microversion 2.11 or later.")
    _change(request, session, _by_host_binary(session, body), None, forced_down=body.forced_down)
    return {"service": {"host": body.host, "binary": body.binary, "forced_down": body.forced_down}}


@router.put(PREFIX + "/os-services/{service_id}")
def update_service(
    service_id: str,
    body: ServiceUpdate,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-services:update")
    if mv < UUID_IDS_SINCE:
        raise NotFound(f"Unknown action {service_id[:64]}")
    if body.disabled_reason is not None and body.status != "disabled":
        raise BadRequest(
            "Invalid input for field 'disabled_reason': a disabled reason is only "
            "allowed with status 'disabled'."
        )
    if body.status is None and body.forced_down is None:
        raise BadRequest("Invalid input for field 'status': give 'status' or 'forced_down'.")
    # Ids are derived from names: find the name whose id this is.
    names = session.scalars(select(Host.name))
    name = next((n for n in names if str(uuid.uuid5(SERVICE_NS, n)) == service_id), None)
    host = session.scalar(select(Host).where(Host.name == name)) if name else None
    if host is None:
        raise NotFound(f"Service {service_id[:64]} could not be found.")
    fresh = _change(request, session, host, body.status, body.disabled_reason, body.forced_down)
    return {"service": service_view(fresh, mv, settings.host_down_after_seconds)}
