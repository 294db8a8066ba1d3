"""A server's interfaces (Nova's ``os-interface``): list, show, attach, detach.

Attach answers as Nova does, once the host has plugged the port (200 with the
attachment), waiting asynchronously for the agent's report up to
``interface_attach_wait_seconds``; past that it answers 202 with the
attachment as it stands, and the attach finishes (or is undone) on its own.
Detach is 202 at once, as in Nova. The work is in ``pcifleet.compute.interfaces``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.api.deps import Context, ContextDep, MicroversionDep, SessionDep, SettingsDep, new_id
from pcifleet.api.errors import ApiError, BadRequest, NotFound
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.api.settings import ApiSettings
from pcifleet.compute import interfaces
from pcifleet.compute.locks import refuse_if_locked
from pcifleet.compute.release import server_ports, tell_scheduler
from pcifleet.compute.schemas import Strict
from pcifleet.store.cloud import Port
from pcifleet.store.models import Instance, Task

router = APIRouter(tags=["compute"])
POLL_SECONDS = 0.1


class FixedIpRequest(Strict):
    ip_address: Annotated[str, Field(min_length=1, max_length=64)]


class InterfaceAttachment(Strict):
    port_id: Annotated[str | None, Field(min_length=1, max_length=36)] = None
    net_id: Annotated[str | None, Field(min_length=1, max_length=36)] = None
    fixed_ips: Annotated[list[FixedIpRequest] | None, Field(max_length=1)] = None
    tag: Annotated[str | None, Field(max_length=60)] = None


class InterfaceAttachRequest(Strict):
    interfaceAttachment: InterfaceAttachment  # Nova's name


def _server(session: Session, ctx: Context, server_id: str) -> Instance:
    inst = session.get(Instance, server_id)
    if inst is None or inst.vm_state == "deleted" or not ctx.may_see(inst.project_id or ""):
        raise NotFound(f"Instance {server_id[:64]} could not be found.")
    return inst


def _request_id(request: Request) -> str:
    found = getattr(request.state, "request_id", None)
    return str(found) if found else f"req-{new_id()}"


def attachment_view(port: Port, mv: tuple[int, int]) -> dict[str, Any]:
    view: dict[str, Any] = {
        "port_id": port.id,
        "net_id": port.network_id,
        "mac_addr": port.mac_address,
        "port_state": port.status,
        "fixed_ips": [
            {"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in port.fixed_ips
        ],
    }
    if mv >= (2, 70):
        view["tag"] = None
    return view


@router.get(PREFIX + "/servers/{server_id}/os-interface")
def list_interfaces(
    server_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    inst = _server(session, ctx, server_id)
    return {
        "interfaceAttachments": [attachment_view(p, mv) for p in server_ports(session, inst.uuid)]
    }


@router.get(PREFIX + "/servers/{server_id}/os-interface/{port_id}")
def show_interface(
    server_id: str, port_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    inst = _server(session, ctx, server_id)
    port = session.get(Port, port_id)
    if port is None or port.device_id != inst.uuid:
        raise NotFound(f"Port {port_id[:64]} is not attached to instance {inst.uuid}.")
    return {"interfaceAttachment": attachment_view(port, mv)}


def _begin(
    engine: Engine,
    ctx: Context,
    server_id: str,
    spec: InterfaceAttachment,
    request_id: str,
    settings: ApiSettings,
) -> interfaces.Attaching:
    with Session(engine) as session, session.begin():
        inst = _server(session, ctx, server_id)
        refuse_if_locked(inst, ctx)
        return interfaces.begin_attach(
            session,
            ctx,
            inst.uuid,
            port_id=spec.port_id,
            network_id=spec.net_id,
            fixed_ip=spec.fixed_ips[0].ip_address if spec.fixed_ips else None,
            request_id=request_id,
            host_down_after=settings.host_down_after_seconds,
            qbh_physical_networks=settings.qbh_physical_networks,
        )


def _send(engine: Engine, attaching: interfaces.Attaching, qbh: frozenset[str]) -> int | None:
    try:
        return interfaces.send_attach(engine, attaching, qbh)
    finally:
        tell_scheduler(engine, attaching.host)


def _task_state(engine: Engine, task_id: int) -> tuple[str, str]:
    with engine.connect() as conn:
        row = conn.execute(select(Task.state, Task.result).where(Task.id == task_id)).first()
    if row is None:
        return "cancelled", ""
    return row.state, str((row.result or {}).get("message") or "")


def _view(engine: Engine, port_id: str, mv: tuple[int, int]) -> dict[str, Any] | None:
    with Session(engine) as session:
        port = session.get(Port, port_id)
        return None if port is None else {"interfaceAttachment": attachment_view(port, mv)}


@router.post(PREFIX + "/servers/{server_id}/os-interface", response_model=None)
async def attach_interface(
    server_id: str,
    body: InterfaceAttachRequest,
    request: Request,
    settings: SettingsDep,
    ctx: ContextDep,
    mv: MicroversionDep,
) -> Any:
    spec = body.interfaceAttachment
    if spec.port_id and spec.net_id:
        raise BadRequest("Must not input both network_id and port_id")
    if spec.fixed_ips and not spec.net_id:
        raise BadRequest("Invalid input for field 'fixed_ips': it needs net_id")
    if not spec.port_id and not spec.net_id:
        raise BadRequest(
            "Invalid input for field 'interfaceAttachment': give port_id or net_id "
            "(pcifleet does not allocate networks automatically)"
        )
    if spec.tag is not None and mv < (2, 49):
        raise BadRequest("Additional properties are not allowed ('tag' was unexpected)")
    engine: Engine = request.app.state.engine
    attaching = await run_in_threadpool(
        _begin, engine, ctx, server_id, spec, _request_id(request), settings
    )
    task_id = await run_in_threadpool(_send, engine, attaching, settings.qbh_physical_networks)
    deadline = time.monotonic() + settings.interface_attach_wait_seconds
    state = "pending"
    while task_id is not None and time.monotonic() < deadline:
        state, message = await run_in_threadpool(_task_state, engine, task_id)
        if state == "done":
            break
        if state in ("failed", "cancelled"):
            raise ApiError(
                f"Failed to attach network adapter device to {attaching.uuid}: "
                f"{message or 'the attach was cancelled'}",
                status=500,
            )
        await asyncio.sleep(POLL_SECONDS)
    view = await run_in_threadpool(_view, engine, attaching.port_id, mv)
    if task_id is None or view is None:
        raise NotFound(f"Instance {attaching.uuid} could not be found.")
    return view if state == "done" else JSONResponse(view, status_code=202)


@router.delete(PREFIX + "/servers/{server_id}/os-interface/{port_id}", status_code=202)
def detach_interface(
    server_id: str,
    port_id: str,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
) -> Response:
    inst = _server(session, ctx, server_id)
    refuse_if_locked(inst, ctx)
    interfaces.request_detach(
        session,
        ctx,
        inst.uuid,
        port_id,
        request_id=_request_id(request),
        host_down_after=settings.host_down_after_seconds,
    )
    session.commit()
    return Response(status_code=202)
