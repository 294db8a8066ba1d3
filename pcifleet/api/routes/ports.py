"""Networking v2.0 ports: vnic types, bindings (admin-only, as Neutron's default
policy has them: members neither set nor see host, profile and VIF fields),
MAC generation and fixed IPs; a port a live server holds is neither re-pointed
nor deleted (``compute.port_guard``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.db_paging import db_page
from pcifleet.api.deps import Context, ContextDep, SessionDep, timestamp, utcnow
from pcifleet.api.errors import Conflict, Forbidden, NotFound
from pcifleet.api.listing import select_fields
from pcifleet.api.paths import NETWORK as PREFIX
from pcifleet.compute.bulk import MAX_BULK, CreateRequest, create_all
from pcifleet.compute.port_guard import check_device_target, check_not_held
from pcifleet.compute.ports import (
    FixedIp,
    Mac,
    NumaAffinityPolicy,
    PortCreate,
    Profile,
    Text255,
    VnicType,
    check_sriov_network,
    create_port,
    replace_fixed_ips,
    trusted_of,
    with_trusted,
)
from pcifleet.compute.schemas import Description, Name, Strict
from pcifleet.store.cloud import Network, Port

router = APIRouter(tags=["networking"])


class PortUpdate(Strict):
    name: Name | None = None
    description: Description | None = None
    admin_state_up: bool | None = None
    mac_address: Mac = None
    device_id: Text255 | None = None
    device_owner: Text255 | None = None
    vnic_type: Annotated[VnicType | None, Field(alias="binding:vnic_type")] = None
    profile: Annotated[Profile, Field(alias="binding:profile")] = None
    host_id: Annotated[Text255 | None, Field(alias="binding:host_id")] = None
    numa_affinity_policy: NumaAffinityPolicy = None
    trusted: bool | None = None
    security_groups: Annotated[list[Text255] | None, Field(max_length=16)] = None
    port_security_enabled: bool | None = None
    fixed_ips: Annotated[list[FixedIp], Field(max_length=8)] | None = None


class PortCreateRequest(CreateRequest[PortCreate]):
    SINGLE = "port"
    PLURAL = "ports"
    port: PortCreate | None = None
    ports: Annotated[list[PortCreate], Field(min_length=1, max_length=MAX_BULK)] | None = None


class PortUpdateRequest(Strict):
    port: PortUpdate


# Neutron's default policy (get_port:binding:*) shows these to admins only: they
# name hosts and PCI slots, which a project has no business knowing.
ADMIN_ONLY_FIELDS = (
    "binding:host_id",
    "binding:profile",
    "binding:vif_type",
    "binding:vif_details",
)


def port_view(p: Port, ctx: Context) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "network_id": p.network_id,
        "tenant_id": p.project_id,
        "project_id": p.project_id,
        "mac_address": p.mac_address,
        "admin_state_up": p.admin_state_up,
        "status": p.status,
        "device_id": p.device_id,
        "device_owner": p.device_owner,
        "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in p.fixed_ips],
        "binding:vnic_type": p.vnic_type,
        "binding:host_id": p.binding_host_id,
        "binding:profile": p.binding_profile,
        "binding:vif_type": p.vif_type,
        "binding:vif_details": p.vif_details,
        "numa_affinity_policy": p.numa_affinity_policy,
        "trusted": trusted_of(p.binding_profile),
        "security_groups": [],
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "port_security_enabled": True,
        "propagate_uplink_status": False,
        "dns_name": "",
        "dns_assignment": [],
        "qos_policy_id": None,
        "ip_allocation": "immediate",
        "tags": [],
        "revision_number": 0,
        "created_at": timestamp(p.created_at),
        "updated_at": timestamp(p.updated_at),
    }
    if not ctx.is_admin:
        for key in ADMIN_ONLY_FIELDS:
            del view[key]
    return view


def visible_port(session: Session, ctx: Context, port_id: str) -> Port:
    port = session.get(Port, port_id)
    if port is None or not ctx.may_see(port.project_id):
        raise NotFound(f"Port {port_id[:64]} could not be found.", kind="PortNotFound")
    return port


@router.post(f"{PREFIX}/ports", status_code=201)
def post_ports(body: PortCreateRequest, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    """One port, or Neutron's bulk form: every item (MAC, fixed IPs) or none."""
    made = create_all(body, lambda spec: create_port(session, ctx, spec))
    session.commit()
    views = [port_view(p, ctx) for p in made]
    return {"ports": views} if body.is_bulk else {"port": views[0]}


# the filters a column answers exactly; the rest are matched on the views
PORT_SQL_FILTERS = {
    "id": Port.id,
    "project_id": Port.project_id,
    "tenant_id": Port.project_id,
    "network_id": Port.network_id,
    "device_id": Port.device_id,
    "device_owner": Port.device_owner,
    "mac_address": Port.mac_address,
    "name": Port.name,
    "status": Port.status,
    "binding:vnic_type": Port.vnic_type,
}


@router.get(f"{PREFIX}/ports")
def list_ports(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    query = select(Port)
    if not ctx.is_admin:
        query = query.where(Port.project_id == ctx.project_id)
    sql_filters = dict(PORT_SQL_FILTERS)
    if ctx.is_admin:  # a filter on a field the caller cannot see is ignored, as a view's
        sql_filters["binding:host_id"] = Port.binding_host_id
    page = db_page(
        session,
        query,
        request.query_params,
        lambda rows: [port_view(row[0], ctx) for row in rows],
        id_column=Port.id,
        order=(Port.created_at, Port.id),
        sql_filters=sql_filters,
    )
    return {"ports": page}


@router.get(PREFIX + "/ports/{port_id}")
def show_port(
    port_id: str, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    port = visible_port(session, ctx, port_id)
    return {"port": select_fields(port_view(port, ctx), request.query_params)}


@router.put(PREFIX + "/ports/{port_id}")
def update_port(
    port_id: str, body: PortUpdateRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    port = visible_port(session, ctx, port_id)
    spec = body.port
    given = spec.model_fields_set
    if ("profile" in given or "host_id" in given or "mac_address" in given) and not ctx.is_admin:
        raise Forbidden(
            "(rule:update_port:binding:profile) is disallowed by policy: binding:profile, "
            "binding:host_id and mac_address may be changed by admins only"
        )
    if "trusted" in given and not ctx.is_admin:
        raise Forbidden("(rule:update_port:trusted) is disallowed by policy: trusted is for admins")
    repoint = {
        name
        for name in ("device_id", "device_owner")
        if name in given
        and getattr(spec, name) is not None
        and getattr(spec, name) != getattr(port, name)
    }
    if repoint:
        check_not_held(session, port, f"changing its {' and '.join(sorted(repoint))}")
        if spec.device_id is not None:
            check_device_target(session, ctx, spec.device_id)
    bound = bool(port.binding_host_id) or port.vif_type not in ("unbound", "")
    if spec.vnic_type is not None and spec.vnic_type != port.vnic_type:
        if bound or port.device_id:
            raise Conflict(
                f"Port {port.id} is bound; its binding:vnic_type cannot change", kind="PortBound"
            )
        network = session.get(Network, port.network_id)
        assert network is not None
        check_sriov_network(network, spec.vnic_type)
        port.vnic_type = spec.vnic_type
    if spec.mac_address is not None and spec.mac_address != port.mac_address:
        if bound:
            raise Conflict(f"Port {port.id} is bound; its MAC cannot change", kind="PortBound")
        if session.scalar(select(Port.id).where(Port.mac_address == spec.mac_address)):
            raise Conflict(f"The mac address {spec.mac_address} is in use.", kind="MacAddressInUse")
        port.mac_address = spec.mac_address
    if spec.fixed_ips is not None:
        if bound:
            raise Conflict(
                f"Port {port.id} is bound; its fixed_ips cannot change", kind="PortBound"
            )
        network = session.get(Network, port.network_id)
        assert network is not None
        replace_fixed_ips(session, port, network, spec.fixed_ips)
    for field in ("name", "description", "admin_state_up", "device_id", "device_owner"):
        value = getattr(spec, field)
        if value is not None:
            setattr(port, field, value)
    if "profile" in given:
        port.binding_profile = spec.profile or {}
    if "trusted" in given:
        # like Neutron: kept for the port's next binding
        port.binding_profile = with_trusted(port.binding_profile or {}, spec.trusted)
    if "host_id" in given:
        port.binding_host_id = spec.host_id or ""
    if "numa_affinity_policy" in given:
        # like Neutron: kept for the port's next binding; a bound port keeps
        # the device it has
        port.numa_affinity_policy = spec.numa_affinity_policy
    port.updated_at = utcnow()
    session.commit()
    return {"port": port_view(port, ctx)}


@router.delete(PREFIX + "/ports/{port_id}", status_code=204)
def delete_port(port_id: str, session: SessionDep, ctx: ContextDep) -> Response:
    port = visible_port(session, ctx, port_id)
    check_not_held(session, port, "deleting it")
    session.delete(port)
    session.commit()
    return Response(status_code=204)
