"""Compute os-pci (admins only): every PCI device the store tracks, with its
status, host and the server holding it — the API Nova removed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select

from pcifleet.api.db_paging import db_page
from pcifleet.api.deps import ContextDep, SessionDep, timestamp
from pcifleet.api.errors import NotFound
from pcifleet.api.input_check import id_number
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.store.models import Host, PciDeviceRow

router = APIRouter(tags=["compute"])
FILTERS = {
    "host": Host.name,
    "status": PciDeviceRow.status,
    "instance_uuid": PciDeviceRow.instance_uuid,
    "vendor_id": PciDeviceRow.vendor_id,
    "product_id": PciDeviceRow.product_id,
    "dev_type": PciDeviceRow.dev_type,
    "address": PciDeviceRow.address,
}


def pci_view(dev: PciDeviceRow, host: str, *, detail: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": dev.id,
        "address": dev.address,
        "compute_node_id": dev.host_id,
        "host": host,
        "vendor_id": dev.vendor_id,
        "product_id": dev.product_id,
        "dev_type": dev.dev_type,
        "status": dev.status,
        "instance_uuid": dev.instance_uuid,
        "server_uuid": dev.instance_uuid,
    }
    if detail:
        view.update(
            {
                "dev_id": "pci_" + dev.address.replace(":", "_").replace(".", "_"),
                "label": f"label_{dev.vendor_id}_{dev.product_id}",
                "parent_addr": dev.parent_addr,
                "numa_node": dev.numa_node,
                "ifname": dev.ifname,
                "request_id": dev.request_id,
                "pool_id": dev.pool_id,
                "tags": dev.tags,
                "extra_info": dev.extra,
                "vanished_at": timestamp(dev.vanished_at) if dev.vanished_at else None,
            }
        )
    return view


def _devices(request: Request, session: Any, *, detail: bool) -> list[dict[str, Any]]:
    query = select(PciDeviceRow, Host.name).join(Host, Host.id == PciDeviceRow.host_id)
    return db_page(
        session,
        query,
        request.query_params,
        lambda rows: [pci_view(dev, host, detail=detail) for dev, host in rows],
        id_column=PciDeviceRow.id,
        order=(Host.name, PciDeviceRow.address, PciDeviceRow.id),
        sql_filters=FILTERS,
        marker_value=id_number,
    )


@router.get(PREFIX + "/os-pci")
def list_pci(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-pci:index")
    return {"pci_devices": _devices(request, session, detail=False)}


@router.get(PREFIX + "/os-pci/detail")
def list_pci_detail(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-pci:detail")
    return {"pci_devices": _devices(request, session, detail=True)}


@router.get(PREFIX + "/os-pci/{device_id}")
def show_pci(device_id: str, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-pci:show")
    number = id_number(device_id)
    row = (
        None
        if number is None
        else session.execute(
            select(PciDeviceRow, Host.name)
            .join(Host, Host.id == PciDeviceRow.host_id)
            .where(PciDeviceRow.id == number)
        ).first()
    )
    if row is None:
        raise NotFound(f"PCI device {device_id[:64]} not found")
    return {"pci_device": pci_view(row[0], row[1], detail=True)}
