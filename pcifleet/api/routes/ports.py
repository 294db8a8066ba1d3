"""Networking v2.0 ports: vnic types, bindings (profile and host are admin-only),
MAC generation and fixed IPs."""

from __future__ import annotations

import json
import random
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import AfterValidator, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.deps import Context, ContextDep, SessionDep, new_id, timestamp, utcnow
from pcifleet.api.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.api.ipam import allocate, subnet_contains
from pcifleet.api.listing import neutron_list, select_fields
from pcifleet.api.routes.networks import PREFIX, owner_of, visible_network
from pcifleet.api.schemas import Description, Id, Name, Strict
from pcifleet.pci import SRIOV_VNIC_TYPES
from pcifleet.store.cloud import IpAllocation, Network, Port, Subnet

router = APIRouter(tags=["networking"])
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAX_PROFILE_BYTES = 4096
VnicType = Literal["normal", "direct", "macvtap", "direct-physical"]
Text255 = Annotated[str, Field(max_length=255)]


class FixedIp(Strict):
    subnet_id: Id | None = None
    ip_address: Annotated[str | None, Field(max_length=64)] = None


def _check_profile(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value)) > MAX_PROFILE_BYTES:
        raise ValueError(f"must be at most {MAX_PROFILE_BYTES} bytes of JSON")
    return value


def _check_mac(value: str | None) -> str | None:
    if value is None:
        return None
    mac = value.lower()
    if not MAC_RE.match(mac):
        raise ValueError(f"'{value[:32]}' is not a valid MAC address")
    if int(mac[:2], 16) & 1:
        raise ValueError(f"'{value}' is a multicast MAC address")
    return mac


Profile = Annotated[dict[str, Any] | None, AfterValidator(_check_profile)]
Mac = Annotated[str | None, Field(max_length=32), AfterValidator(_check_mac)]


class PortCreate(Strict):
    network_id: Id
    name: Name = ""
    description: Description = ""
    admin_state_up: bool = True
    mac_address: Mac = None
    fixed_ips: Annotated[list[FixedIp] | None, Field(max_length=8)] = None
    device_id: Text255 = ""
    device_owner: Text255 = ""
    vnic_type: Annotated[VnicType, Field(alias="binding:vnic_type")] = "normal"
    profile: Annotated[Profile, Field(alias="binding:profile")] = None
    host_id: Annotated[Text255 | None, Field(alias="binding:host_id")] = None
    security_groups: Annotated[list[Text255], Field(max_length=16)] = Field(default_factory=list)
    port_security_enabled: bool = True
    project_id: Id | None = None
    tenant_id: Id | None = None


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
    security_groups: Annotated[list[Text255] | None, Field(max_length=16)] = None
    port_security_enabled: bool | None = None


class PortCreateRequest(Strict):
    port: PortCreate


class PortUpdateRequest(Strict):
    port: PortUpdate


def port_view(p: Port) -> dict[str, Any]:
    return {
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


def random_mac() -> str:
    """``fa:16:3e:xx:xx:xx``, OpenStack's base MAC (locally administered, unicast)."""
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def free_mac(session: Session) -> str:
    for _ in range(16):
        mac = random_mac()
        if session.scalar(select(Port.id).where(Port.mac_address == mac)) is None:
            return mac
    raise Conflict("Unable to generate a unique MAC address", kind="MacAddressGenerationFailure")


def visible_port(session: Session, ctx: Context, port_id: str) -> Port:
    port = session.get(Port, port_id)
    if port is None or not ctx.may_see(port.project_id):
        raise NotFound(f"Port {port_id[:64]} could not be found.", kind="PortNotFound")
    return port


def check_sriov_network(network: Network, vnic_type: str) -> None:
    if vnic_type in SRIOV_VNIC_TYPES and not network.physical_network:
        raise BadRequest(
            f"binding:vnic_type {vnic_type} needs a network with a provider:physical_network; "
            f"network {network.id} has none"
        )


def add_fixed_ips(
    session: Session, port: Port, network: Network, fixed_ips: list[FixedIp] | None
) -> None:
    """Fixed IPs as asked, or one from the network's first subnet."""
    subnets = list(
        session.scalars(
            select(Subnet).where(Subnet.network_id == network.id).order_by(Subnet.created_at)
        )
    )
    by_id = {s.id: s for s in subnets}
    if fixed_ips is None:
        wanted: list[tuple[Subnet, str | None]] = [(subnets[0], None)] if subnets else []
    else:
        wanted = []
        for i, item in enumerate(fixed_ips):
            subnet = by_id.get(item.subnet_id or "")
            if item.subnet_id is None and item.ip_address is not None:
                subnet = next((s for s in subnets if subnet_contains(s, item.ip_address)), None)
            if subnet is None:
                raise BadRequest(f"fixed_ips[{i}]: no subnet of network {network.id} matches")
            wanted.append((subnet, item.ip_address))
    for subnet, ip in wanted:
        address = allocate(session, subnet, ip)
        port.fixed_ips.append(IpAllocation(subnet_id=subnet.id, ip_address=address))
        session.flush()


def create_port(
    session: Session,
    ctx: Context,
    spec: PortCreate,
    *,
    created_by_server: bool = False,
) -> Port:
    """A new port after every check; flushes, the caller commits."""
    network = visible_network(session, ctx, spec.network_id)
    given = spec.model_fields_set
    if ("profile" in given or "host_id" in given) and not ctx.is_admin:
        raise Forbidden(
            "(rule:create_port:binding:profile) is disallowed by policy: binding:profile and "
            "binding:host_id may be set by admins only"
        )
    check_sriov_network(network, spec.vnic_type)
    if spec.mac_address is not None:
        if session.scalar(select(Port.id).where(Port.mac_address == spec.mac_address)):
            raise Conflict(
                f"Unable to complete operation for network {network.id}. The mac address "
                f"{spec.mac_address} is in use.",
                kind="MacAddressInUse",
            )
        mac = spec.mac_address
    else:
        mac = free_mac(session)
    now = utcnow()
    port = Port(
        id=new_id(),
        project_id=owner_of(ctx, spec.project_id, spec.tenant_id),
        network_id=network.id,
        name=spec.name,
        description=spec.description,
        mac_address=mac,
        admin_state_up=spec.admin_state_up,
        status="DOWN",
        device_id=spec.device_id,
        device_owner=spec.device_owner,
        vnic_type=spec.vnic_type,
        binding_host_id=spec.host_id or "",
        binding_profile=spec.profile or {},
        vif_type="unbound",
        vif_details={},
        created_by_server=created_by_server,
        created_at=now,
        updated_at=now,
    )
    session.add(port)
    session.flush()
    add_fixed_ips(session, port, network, spec.fixed_ips)
    return port


@router.post(f"{PREFIX}/ports", status_code=201)
def post_port(body: PortCreateRequest, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    port = create_port(session, ctx, body.port)
    session.commit()
    return {"port": port_view(port)}


@router.get(f"{PREFIX}/ports")
def list_ports(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    query = select(Port).order_by(Port.created_at, Port.id)
    if not ctx.is_admin:
        query = query.where(Port.project_id == ctx.project_id)
    params = request.query_params
    # the common filters go to SQL; the rest are matched on the output shape
    for column, key in ((Port.network_id, "network_id"), (Port.device_id, "device_id")):
        if key in params:
            query = query.where(column.in_(params.getlist(key)))
    return {"ports": neutron_list((port_view(p) for p in session.scalars(query)), params)}


@router.get(PREFIX + "/ports/{port_id}")
def show_port(
    port_id: str, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    port = visible_port(session, ctx, port_id)
    return {"port": select_fields(port_view(port), request.query_params)}


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
    for field in ("name", "description", "admin_state_up", "device_id", "device_owner"):
        value = getattr(spec, field)
        if value is not None:
            setattr(port, field, value)
    if "profile" in given:
        port.binding_profile = spec.profile or {}
    if "host_id" in given:
        port.binding_host_id = spec.host_id or ""
    port.updated_at = utcnow()
    session.commit()
    return {"port": port_view(port)}


@router.delete(PREFIX + "/ports/{port_id}", status_code=204)
def delete_port(port_id: str, session: SessionDep, ctx: ContextDep) -> Response:
    port = visible_port(session, ctx, port_id)
    if port.device_owner.startswith("compute:") and port.device_id:
        raise Conflict(
            f"Port {port.id} is in use by server {port.device_id}; delete the server first.",
            kind="PortInUse",
        )
    session.delete(port)
    session.commit()
    return Response(status_code=204)
