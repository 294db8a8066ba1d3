"""Networking v2.0 subnets: IPv4 CIDR, gateway, allocation pools."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.db_paging import db_page
from pcifleet.api.deps import Context, ContextDep, SessionDep, new_id, timestamp, utcnow
from pcifleet.api.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.api.listing import select_fields
from pcifleet.api.paths import NETWORK as PREFIX
from pcifleet.compute.ipam import check_pools, default_pools, parse_cidr, parse_ip
from pcifleet.compute.ports import owner_of, visible_network
from pcifleet.compute.schemas import Description, Id, Name, Strict
from pcifleet.store.cloud import IpAllocation, Network, Subnet

router = APIRouter(tags=["networking"])
IpText = Annotated[str, Field(max_length=64)]


class Pool(Strict):
    start: IpText
    end: IpText


class SubnetCreate(Strict):
    network_id: Id
    cidr: IpText
    ip_version: Literal[4, 6] = 4
    name: Name = ""
    description: Description = ""
    gateway_ip: IpText | None = "auto"
    allocation_pools: Annotated[list[Pool] | None, Field(max_length=64)] = None
    enable_dhcp: bool = True
    dns_nameservers: Annotated[list[IpText], Field(max_length=8)] = Field(default_factory=list)
    host_routes: Annotated[list[dict[str, str]], Field(max_length=0)] = Field(default_factory=list)
    project_id: Id | None = None
    tenant_id: Id | None = None


class SubnetUpdate(Strict):
    name: Name | None = None
    description: Description | None = None
    enable_dhcp: bool | None = None
    dns_nameservers: Annotated[list[IpText] | None, Field(max_length=8)] = None


class SubnetCreateRequest(Strict):
    subnet: SubnetCreate


class SubnetUpdateRequest(Strict):
    subnet: SubnetUpdate


def subnet_view(s: Subnet) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "network_id": s.network_id,
        "tenant_id": s.project_id,
        "project_id": s.project_id,
        "ip_version": s.ip_version,
        "cidr": s.cidr,
        "gateway_ip": s.gateway_ip,
        "allocation_pools": s.allocation_pools,
        "dns_nameservers": s.dns_nameservers,
        "host_routes": [],
        "enable_dhcp": s.enable_dhcp,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "service_types": [],
        "segment_id": None,
        "tags": [],
        "revision_number": 0,
        "created_at": timestamp(s.created_at),
        "updated_at": timestamp(s.updated_at),
    }


def visible_subnet(session: Session, ctx: Context, subnet_id: str) -> Subnet:
    subnet = session.get(Subnet, subnet_id)
    if subnet is not None:
        net = session.get(Network, subnet.network_id)
        if net is not None and (net.shared or ctx.may_see(subnet.project_id)):
            return subnet
    raise NotFound(f"Subnet {subnet_id[:64]} could not be found.", kind="SubnetNotFound")


@router.post(f"{PREFIX}/subnets", status_code=201)
def create_subnet(
    body: SubnetCreateRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    spec = body.subnet
    net = visible_network(session, ctx, spec.network_id)
    if not ctx.may_see(net.project_id):
        raise Forbidden("Only the network's owner or an admin may add subnets to it.")
    if spec.ip_version != 4:
        raise BadRequest("ip_version: only IPv4 (4) is supported")
    cidr = parse_cidr(spec.cidr)
    for other in session.scalars(select(Subnet).where(Subnet.network_id == net.id)):
        if ipaddress.IPv4Network(other.cidr).overlaps(cidr):
            raise BadRequest(
                f"Invalid input for operation: Requested subnet with cidr: {cidr} for network: "
                f"{net.id} overlaps with another subnet."
            )
    if spec.gateway_ip == "auto":
        gateway: ipaddress.IPv4Address | None = cidr.network_address + 1
    elif spec.gateway_ip is None:
        gateway = None
    else:
        gateway = parse_ip(spec.gateway_ip, "gateway_ip", cidr)
    if spec.allocation_pools:
        pools = check_pools([p.model_dump() for p in spec.allocation_pools], cidr, gateway)
    else:
        pools = default_pools(cidr, gateway)
    dns = []
    for i, server in enumerate(spec.dns_nameservers):
        try:
            dns.append(str(ipaddress.ip_address(server)))
        except ValueError:
            raise BadRequest(f"dns_nameservers[{i}]: '{server}' is not an IP address") from None
    now = utcnow()
    subnet = Subnet(
        id=new_id(),
        project_id=owner_of(ctx, spec.project_id, spec.tenant_id),
        network_id=net.id,
        name=spec.name,
        description=spec.description,
        ip_version=4,
        cidr=str(cidr),
        gateway_ip=str(gateway) if gateway else None,
        allocation_pools=pools,
        dns_nameservers=dns,
        enable_dhcp=spec.enable_dhcp,
        created_at=now,
        updated_at=now,
    )
    session.add(subnet)
    session.commit()
    return {"subnet": subnet_view(subnet)}


# the filters a column answers exactly; the rest are matched on the views
SUBNET_SQL_FILTERS = {
    "id": Subnet.id,
    "name": Subnet.name,
    "network_id": Subnet.network_id,
    "project_id": Subnet.project_id,
    "tenant_id": Subnet.project_id,
    "cidr": Subnet.cidr,
}


@router.get(f"{PREFIX}/subnets")
def list_subnets(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    query = select(Subnet).join(Network, Network.id == Subnet.network_id)
    if not ctx.is_admin:
        query = query.where((Subnet.project_id == ctx.project_id) | Network.shared)
    page = db_page(
        session,
        query,
        request.query_params,
        lambda rows: [subnet_view(row[0]) for row in rows],
        id_column=Subnet.id,
        order=(Subnet.created_at, Subnet.id),
        sql_filters=SUBNET_SQL_FILTERS,
    )
    return {"subnets": page}


@router.get(PREFIX + "/subnets/{subnet_id}")
def show_subnet(
    subnet_id: str, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    subnet = visible_subnet(session, ctx, subnet_id)
    return {"subnet": select_fields(subnet_view(subnet), request.query_params)}


@router.put(PREFIX + "/subnets/{subnet_id}")
def update_subnet(
    subnet_id: str, body: SubnetUpdateRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    subnet = visible_subnet(session, ctx, subnet_id)
    if not ctx.may_see(subnet.project_id):
        raise Forbidden("Only the subnet's owner or an admin may change it.")
    spec = body.subnet
    for field in ("name", "description", "enable_dhcp"):
        value = getattr(spec, field)
        if value is not None:
            setattr(subnet, field, value)
    if spec.dns_nameservers is not None:
        subnet.dns_nameservers = list(spec.dns_nameservers)
    subnet.updated_at = utcnow()
    session.commit()
    return {"subnet": subnet_view(subnet)}


@router.delete(PREFIX + "/subnets/{subnet_id}", status_code=204)
def delete_subnet(subnet_id: str, session: SessionDep, ctx: ContextDep) -> Response:
    subnet = visible_subnet(session, ctx, subnet_id)
    if not ctx.may_see(subnet.project_id):
        raise Forbidden("Only the subnet's owner or an admin may delete it.")
    used = session.scalar(
        select(IpAllocation.id).where(IpAllocation.subnet_id == subnet.id).limit(1)
    )
    if used is not None:
        raise Conflict(
            f"Unable to complete operation on subnet {subnet.id}: One or more ports have an IP "
            "allocation from this subnet.",
            kind="SubnetInUse",
        )
    session.delete(subnet)
    session.commit()
    return Response(status_code=204)
