"""The small compute resources clients ask for along the way: availability
zones, limits and aggregates (none). Keypairs are in ``keypairs``.
Services (one ``nova-compute`` per host) are in ``os_services``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select

from pcifleet.api.deps import ContextDep, SessionDep, SettingsDep
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.compute.hosts import host_state
from pcifleet.compute.keypairs import MAX_PER_USER as MAX_KEYPAIRS
from pcifleet.store.models import Host, Instance

router = APIRouter(tags=["compute"])


@router.get(PREFIX + "/os-availability-zone")
def availability_zones(ctx: ContextDep) -> dict[str, Any]:
    return {
        "availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}
        ]
    }


@router.get(PREFIX + "/os-availability-zone/detail")
def availability_zones_detail(
    session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> dict[str, Any]:
    hosts: dict[str, Any] | None = None
    if ctx.is_admin:
        hosts = {}
        for host in session.scalars(select(Host).order_by(Host.name)):
            alive = host_state(host.last_report_at, settings.host_down_after_seconds) == "up"
            hosts[host.name] = {
                "nova-compute": {
                    "available": alive,
                    "active": host.state == "enabled",
                    "updated_at": None,
                }
            }
    return {
        "availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": hosts}
        ]
    }


@router.get(PREFIX + "/limits")
def limits(session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    live = (
        select(Instance)
        .where(Instance.project_id == ctx.project_id, Instance.status != "DELETED")
        .subquery()
    )
    count, cores, ram = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(live.c.vcpus), 0),
            func.coalesce(func.sum(live.c.memory_mb), 0),
        )
    ).one()
    return {
        "limits": {
            "rate": [],
            "absolute": {
                "maxTotalInstances": -1,
                "maxTotalCores": -1,
                "maxTotalRAMSize": -1,
                "maxServerMeta": 128,
                "maxTotalKeypairs": MAX_KEYPAIRS,
                "maxServerGroups": 0,
                "maxServerGroupMembers": 0,
                "totalInstancesUsed": count,
                "totalCoresUsed": cores,
                "totalRAMUsed": ram,
                "totalServerGroupsUsed": 0,
            },
        }
    }


@router.get(PREFIX + "/os-aggregates")
def aggregates(ctx: ContextDep) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-aggregates:index")
    return {"aggregates": []}
