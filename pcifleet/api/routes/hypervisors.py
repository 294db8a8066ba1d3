"""Compute os-hypervisors: one per host, in Nova's exact shapes (strict clients
such as Tempest reject unknown keys), with ``statistics``, ``uptime``,
``search`` and ``servers``. A host's PCI pools and inventory generation are
pcifleet's own: ``/pcifleet/v1/hosts/<host>`` and ``os-pci`` show them."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pcifleet.api.deps import ContextDep, MicroversionDep, SessionDep, SettingsDep
from pcifleet.api.errors import NotFound
from pcifleet.api.listing import paginate
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.compute.context import utcnow
from pcifleet.compute.hosts import host_state
from pcifleet.store.models import Host, Instance

router = APIRouter(tags=["compute"])
# Hypervisor ids are UUIDs from 2.53; ours are derived from the host name.
HYPERVISOR_NS = uuid.UUID("5b0e6a52-2f55-4d1c-9a0e-7b1f3c1f6d10")


def hypervisor_id(host: Host, mv: tuple[int, int]) -> str | int:
    return str(uuid.uuid5(HYPERVISOR_NS, host.name)) if mv >= (2, 53) else host.id


def hypervisor_view(
    session: Session, host: Host, mv: tuple[int, int], down_after: float, *, detail: bool
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": hypervisor_id(host, mv),
        "hypervisor_hostname": host.name,
        "state": host_state(host.last_report_at, down_after, host.forced_down),
        "status": "enabled" if host.state == "enabled" else "disabled",
    }
    if not detail:
        return view
    view.update(
        {
            "hypervisor_type": "QEMU",
            "hypervisor_version": 8002000,
            "host_ip": None,
            "service": {
                "host": host.name,
                "id": hypervisor_id(host, mv),
                "disabled_reason": host.disabled_reason,
            },
        }
    )
    if mv < (2, 88):
        running = session.scalar(
            select(func.count())
            .select_from(Instance)
            .where(Instance.host == host.name, Instance.status != "DELETED")
        )
        view.update(
            {
                "vcpus": host.vcpus,
                "vcpus_used": host.vcpus_used,
                "memory_mb": host.memory_mb,
                "memory_mb_used": host.memory_mb_used,
                "free_ram_mb": host.memory_mb - host.memory_mb_used,
                "local_gb": 0,
                "local_gb_used": 0,
                "free_disk_gb": 0,
                "disk_available_least": 0,
                "running_vms": running or 0,
                "current_workload": 0,
                # JSON text before 2.28, the object itself from 2.28 on
                "cpu_info": {} if mv >= (2, 28) else "{}",
            }
        )
    else:
        view["uptime"] = None
    return view


def _servers(session: Session, host: Host) -> list[dict[str, str]]:
    rows = session.execute(
        select(Instance.uuid, Instance.name)
        .where(Instance.host == host.name, Instance.status != "DELETED")
        .order_by(Instance.created_at)
    ).all()
    return [{"uuid": uuid_, "name": name} for uuid_, name in rows]


def _uptime(host: Host) -> str:
    """Nova relays the host's ``uptime`` line; ours counts from the host's first
    inventory report, the time pcifleet has known it up."""
    now = utcnow()
    since = host.created_at
    minutes = int((now - since).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    return f" {now:%H:%M:%S} up {days} days, {minutes // 60:2d}:{minutes % 60:02d}"


def _hosts(session: Session, request: Request) -> list[Host]:
    query = select(Host).order_by(Host.name)
    pattern = request.query_params.get("hypervisor_hostname_pattern")
    if pattern:
        query = query.where(Host.name.contains(pattern[:255]))
    return list(session.scalars(query))


@router.get(PREFIX + "/os-hypervisors")
def list_hypervisors(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:list")
    down = settings.host_down_after_seconds
    views = [
        _with_servers(session, h, request, mv, hypervisor_view(session, h, mv, down, detail=False))
        for h in _hosts(session, request)
    ]
    return {"hypervisors": paginate(views, request.query_params)}


@router.get(PREFIX + "/os-hypervisors/detail")
def list_hypervisors_detail(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:list-detail")
    down = settings.host_down_after_seconds
    views = [
        _with_servers(session, h, request, mv, hypervisor_view(session, h, mv, down, detail=True))
        for h in _hosts(session, request)
    ]
    return {"hypervisors": paginate(views, request.query_params)}


def _with_servers(
    session: Session, host: Host, request: Request, mv: tuple[int, int], view: dict[str, Any]
) -> dict[str, Any]:
    # Nova lists a hypervisor's servers from 2.53 when asked, and only if it has any
    wanted = request.query_params.get("with_servers", "").lower() in ("1", "true", "yes")
    if mv >= (2, 53) and wanted:
        servers = _servers(session, host)
        if servers:
            view["servers"] = servers
    return view


def _find(session: Session, hypervisor_id: str) -> Host:
    for host in session.scalars(select(Host)):
        if hypervisor_id in (str(host.id), str(uuid.uuid5(HYPERVISOR_NS, host.name)), host.name):
            return host
    raise NotFound(f"Hypervisor with ID {hypervisor_id[:64]} could not be found.")


def _below_288(mv: tuple[int, int], what: str) -> None:
    if mv >= (2, 88):
        raise NotFound(f"The resource could not be found: {what} was removed in 2.88")


@router.get(PREFIX + "/os-hypervisors/statistics")
def hypervisor_statistics(
    session: SessionDep, ctx: ContextDep, mv: MicroversionDep
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:statistics")
    _below_288(mv, "os-hypervisors/statistics")
    hosts = list(session.scalars(select(Host)))
    running = session.scalar(
        select(func.count()).select_from(Instance).where(
            Instance.host.is_not(None), Instance.status != "DELETED"
        )
    )  # fmt: skip
    vcpus = sum(h.vcpus for h in hosts)
    memory = sum(h.memory_mb for h in hosts)
    used_memory = sum(h.memory_mb_used for h in hosts)
    return {
        "hypervisor_statistics": {
            "count": len(hosts),
            "vcpus": vcpus,
            "vcpus_used": sum(h.vcpus_used for h in hosts),
            "memory_mb": memory,
            "memory_mb_used": used_memory,
            "free_ram_mb": memory - used_memory,
            "local_gb": 0,
            "local_gb_used": 0,
            "free_disk_gb": 0,
            "disk_available_least": 0,
            "running_vms": running or 0,
            "current_workload": 0,
        }
    }


@router.get(PREFIX + "/os-hypervisors/{hypervisor_id}")
def show_hypervisor(
    hypervisor_id: str, request: Request, session: SessionDep, ctx: ContextDep,
    mv: MicroversionDep, settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    ctx.require_admin("os_compute_api:os-hypervisors:show")
    host = _find(session, hypervisor_id)
    view = hypervisor_view(session, host, mv, settings.host_down_after_seconds, detail=True)
    return {"hypervisor": _with_servers(session, host, request, mv, view)}


@router.get(PREFIX + "/os-hypervisors/{hypervisor_id}/uptime")
def hypervisor_uptime(
    hypervisor_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    ctx.require_admin("os_compute_api:os-hypervisors:uptime")
    _below_288(mv, "os-hypervisors/{id}/uptime")
    host = _find(session, hypervisor_id)
    view = hypervisor_view(session, host, mv, settings.host_down_after_seconds, detail=False)
    view["uptime"] = _uptime(host)
    return {"hypervisor": view}


def _matching(session: Session, pattern: str) -> list[Host]:
    hosts = list(session.scalars(select(Host).where(Host.name.contains(pattern[:255]))))
    if not hosts:
        raise NotFound(f"No hypervisor matching '{pattern[:64]}' could be found.")
    return sorted(hosts, key=lambda h: h.name)


@router.get(PREFIX + "/os-hypervisors/{pattern}/search")
def search_hypervisors(
    pattern: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    """Before 2.53; later versions use ``?hypervisor_hostname_pattern=``."""
    ctx.require_admin("os_compute_api:os-hypervisors:search")
    if mv >= (2, 53):
        raise NotFound("The resource could not be found: search was removed in 2.53")
    down = settings.host_down_after_seconds
    views = [
        hypervisor_view(session, h, mv, down, detail=False) for h in _matching(session, pattern)
    ]
    return {"hypervisors": views}


@router.get(PREFIX + "/os-hypervisors/{pattern}/servers")
def hypervisor_servers(
    pattern: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    """Before 2.53; later versions use ``?with_servers=true``."""
    ctx.require_admin("os_compute_api:os-hypervisors:servers")
    if mv >= (2, 53):
        raise NotFound("The resource could not be found: servers was removed in 2.53")
    views = []
    for host in _matching(session, pattern):
        view = hypervisor_view(session, host, mv, settings.host_down_after_seconds, detail=False)
        servers = _servers(session, host)
        if servers:
            view["servers"] = servers
        views.append(view)
    return {"hypervisors": views}
