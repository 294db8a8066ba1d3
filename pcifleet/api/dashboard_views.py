"""What the dashboard shows, read from the store as plain dicts for templates.

Admins see the fleet: hosts and their pools, each device with the server
that holds it, capacity per flavor (the scheduler's own count), every server,
and recent NoValidHost faults. Members see their project's servers. Each
function is one read; the route renders its result.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet import scheduler
from pcifleet.api.errors import ApiError
from pcifleet.api.server_shape import server_shape
from pcifleet.api.settings import ApiSettings
from pcifleet.compute.hosts import host_state
from pcifleet.compute.placement import NO_VALID_HOST
from pcifleet.compute.states import VmState
from pcifleet.store.cloud import Flavor, Port
from pcifleet.store.models import Host, Instance, PciDeviceRow

RECENT_FAULTS = 10
MAX_FLAVORS = 30


def _pool_rows(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "parent": p.get("parent_addr", ""),
            "product": f"{p.get('vendor_id')}:{p.get('product_id')}",
            "dev_type": p.get("dev_type", ""),
            "numa": p.get("numa_node"),
            "physnet": (p.get("tags") or {}).get("physical_network") or "",
            "tags": " ".join(
                f"{k}={v}"
                for k, v in sorted((p.get("tags") or {}).items())
                if k != "physical_network"
            ),
            "free": int(p.get("count", 0)),
            "total": int(p.get("total", p.get("count", 0))),
        }
        for p in stats
    ]


def hosts(session: Session, settings: ApiSettings) -> list[dict[str, Any]]:
    out = []
    for host in session.scalars(select(Host).order_by(Host.name)):
        pools = _pool_rows(host.pci_stats or [])
        out.append(
            {
                "name": host.name,
                "state": host.state,
                "status": host_state(host.last_report_at, settings.host_down_after_seconds),
                "vcpus": f"{host.vcpus_used}/{host.vcpus}",
                "memory_mb": f"{host.memory_mb_used}/{host.memory_mb}",
                "free": sum(p["free"] for p in pools),
                "total": sum(p["total"] for p in pools),
                "pools": len(pools),
            }
        )
    return out


def host_detail(session: Session, settings: ApiSettings, name: str) -> dict[str, Any] | None:
    """One host: its pools, and each device with the server that holds it."""
    host = session.scalar(select(Host).where(Host.name == name))
    if host is None:
        return None
    rows = session.scalars(
        select(PciDeviceRow).where(PciDeviceRow.host_id == host.id).order_by(PciDeviceRow.address)
    ).all()
    holders = {r.instance_uuid for r in rows if r.instance_uuid}
    names = dict(
        session.execute(
            select(Instance.uuid, Instance.name).where(Instance.uuid.in_(holders))
        ).all()
        if holders
        else []
    )
    devices = [
        {
            "address": r.address,
            "product": f"{r.vendor_id}:{r.product_id}",
            "dev_type": r.dev_type,
            "parent": r.parent_addr or "",
            "ifname": r.ifname or "",
            "numa": r.numa_node,
            "physnet": (r.tags or {}).get("physical_network") or "",
            "status": r.status,
            "server_uuid": r.instance_uuid or "",
            "server_name": names.get(r.instance_uuid or "", ""),
        }
        for r in rows
    ]
    return {
        "name": host.name,
        "state": host.state,
        "status": host_state(host.last_report_at, settings.host_down_after_seconds),
        "pools": _pool_rows(host.pci_stats or []),
        "devices": devices,
    }


def capacity(session: Session, engine: Engine, settings: ApiSettings) -> list[dict[str, Any]]:
    """How many more servers of each flavor fit, and where (no SR-IOV ports)."""
    out = []
    flavors = session.scalars(select(Flavor).order_by(Flavor.name).limit(MAX_FLAVORS))
    for flavor in flavors:
        row: dict[str, Any] = {"flavor": flavor.name, "servers": 0, "per_host": {}, "error": ""}
        try:
            shape = server_shape(
                session,
                flavor=flavor.id,
                aliases=settings.aliases,
                alias_source=settings.alias_source,
            )
            if not shape.empty:
                got = scheduler.capacity(
                    engine, shape.requests, vcpus=shape.vcpus, memory_mb=shape.memory_mb
                )
                row.update(servers=got.total, per_host=dict(sorted(got.per_host.items())))
        except (ApiError, ValueError) as exc:  # one bad flavor must not hide the others
            row["error"] = str(exc)
        out.append(row)
    return out


def servers(session: Session, project_id: str | None) -> list[dict[str, Any]]:
    """Servers (of one project, or all when ``project_id`` is None) with their
    ports and the PCI devices they hold."""
    query = select(Instance).where(Instance.vm_state != VmState.DELETED.value)
    if project_id is not None:
        query = query.where(Instance.project_id == project_id)
    instances = session.scalars(query.order_by(Instance.created_at.desc())).all()
    uuids = [i.uuid for i in instances]
    ports: dict[str, list[dict[str, Any]]] = defaultdict(list)
    devices: dict[str, list[str]] = defaultdict(list)
    if uuids:
        for port in session.scalars(select(Port).where(Port.device_id.in_(uuids))):
            ports[port.device_id].append(
                {
                    "name": port.name or port.id,
                    "id": port.id,
                    "vnic_type": port.vnic_type,
                    "status": port.status,
                    "pci_slot": (port.binding_profile or {}).get("pci_slot", ""),
                }
            )
        for dev in session.scalars(
            select(PciDeviceRow).where(PciDeviceRow.instance_uuid.in_(uuids))
        ):
            devices[dev.instance_uuid or ""].append(
                f"{dev.address} {dev.dev_type} {dev.vendor_id}:{dev.product_id}"
            )
    return [
        {
            "uuid": i.uuid,
            "name": i.name,
            "status": i.status,
            "host": i.host or "",
            "ports": ports.get(i.uuid, []),
            "devices": sorted(devices.get(i.uuid, [])),
            "fault": (i.fault or {}).get("message", ""),
        }
        for i in instances
    ]


def recent_no_valid_host(session: Session) -> list[dict[str, Any]]:
    """The latest servers that failed to schedule, newest first, with why."""
    rows = session.scalars(
        select(Instance)
        .where(Instance.fault.is_not(None), Instance.status == "ERROR")
        .order_by(Instance.updated_at.desc())
        .limit(RECENT_FAULTS * 5)
    ).all()
    out = []
    for i in rows:
        message = str((i.fault or {}).get("message", ""))
        if message.startswith(NO_VALID_HOST):
            out.append({"uuid": i.uuid, "name": i.name, "when": i.updated_at, "message": message})
    return out[:RECENT_FAULTS]
