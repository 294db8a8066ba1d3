"""Compute os-hypervisors: one per host, with the host's PCI pools as
``pci_stats`` (a pcifleet extension field)."""

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
            "pci_stats": host.pci_stats,
            "generation": host.generation,
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
                "cpu_info": "{}",
            }
        )
    else:
        view["uptime"] = None
    return view


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
    views = [
        hypervisor_view(session, h, mv, settings.host_down_after_seconds, detail=False)
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
    views = [
        hypervisor_view(session, h, mv, settings.host_down_after_seconds, detail=True)
        for h in _hosts(session, request)
    ]
    return {"hypervisors": paginate(views, request.query_params)}


@router.get(PREFIX + "/os-hypervisors/{hypervisor_id}")
def show_hypervisor(
    hypervisor_id: str, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    ctx.require_admin("os_compute_api:os-hypervisors:show")
    for host in session.scalars(select(Host)):
        if hypervisor_id in (str(host.id), str(uuid.uuid5(HYPERVISOR_NS, host.name)), host.name):
            return {
                "hypervisor": hypervisor_view(
                    session, host, mv, settings.host_down_after_seconds, detail=True
                )
            }
    raise NotFound(f"Hypervisor with ID {hypervisor_id[:64]} could not be found.")
