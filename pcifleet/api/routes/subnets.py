"""Networking v2.0 subnets: IPv4 CIDR, gateway, allocation pools, DNS name
servers and host routes; bulk create (``{"subnets": [...]}``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.db_paging import db_page
from pcifleet.api.deps import Context, ContextDep, SessionDep, timestamp
from pcifleet.api.errors import Conflict, Forbidden, NotFound
from pcifleet.api.listing import select_fields
from pcifleet.api.paths import NETWORK as PREFIX
from pcifleet.compute.bulk import MAX_BULK, CreateRequest, create_all
from pcifleet.compute.schemas import Strict
from pcifleet.compute.subnets import SubnetCreate, SubnetUpdate, create_subnet, update_subnet
from pcifleet.store.cloud import IpAllocation, Network, Subnet

router = APIRouter(tags=["networking"])


class SubnetUpdateRequest(Strict):
    subnet: SubnetUpdate


class SubnetCreateRequest(CreateRequest[SubnetCreate]):
    SINGLE = "subnet"
    PLURAL = "subnets"
    subnet: SubnetCreate | None = None
    subnets: Annotated[list[SubnetCreate], Field(min_length=1, max_length=MAX_BULK)] | None = None


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
        "host_routes": list(s.host_routes or []),
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
def post_subnets(body: SubnetCreateRequest, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    """One subnet, or Neutron's bulk form: every item or none."""
    made = create_all(body, lambda spec: create_subnet(session, ctx, spec))
    session.commit()
    views = [subnet_view(s) for s in made]
    return {"subnets": views} if body.is_bulk else {"subnet": views[0]}


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
def put_subnet(
    subnet_id: str, body: SubnetUpdateRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    subnet = visible_subnet(session, ctx, subnet_id)
    if not ctx.may_see(subnet.project_id):
        raise Forbidden("Only the subnet's owner or an admin may change it.")
    update_subnet(session, subnet, body.subnet)
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
