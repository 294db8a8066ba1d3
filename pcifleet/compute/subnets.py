"""Making and changing a subnet as Neutron does: CIDR, gateway, allocation
pools, DNS name servers and host routes, one set of rules for a create (one
subnet or a bulk list) and an update."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute.context import Context, new_id, utcnow
from pcifleet.compute.errors import BadRequest, Conflict, Forbidden
from pcifleet.compute.host_routes import HostRoutes, check_host_routes
from pcifleet.compute.ipam import (
    check_gateway_outside_pools,
    check_pools,
    default_pools,
    parse_cidr,
    parse_ip,
)
from pcifleet.compute.ports import owner_of, visible_network
from pcifleet.compute.schemas import Description, Id, Name, Strict
from pcifleet.store.cloud import IpAllocation, Subnet

IpText = Annotated[str, Field(max_length=64)]
Nameservers = Annotated[list[IpText], Field(max_length=8)]


class Pool(Strict):
    start: IpText
    end: IpText


Pools = Annotated[list[Pool], Field(max_length=64)]


class SubnetCreate(Strict):
    network_id: Id
    cidr: IpText
    ip_version: Literal[4, 6] = 4
    name: Name = ""
    description: Description = ""
    gateway_ip: IpText | None = "auto"
    allocation_pools: Pools | None = None
    enable_dhcp: bool = True
    dns_nameservers: Nameservers | None = None
    host_routes: HostRoutes | None = None  # null is an empty list, as in Neutron
    project_id: Id | None = None
    tenant_id: Id | None = None


class SubnetUpdate(Strict):
    """A subnet's changeable attributes; each list given replaces the old one."""

    name: Name | None = None
    description: Description | None = None
    enable_dhcp: bool | None = None
    gateway_ip: IpText | None = None  # null (given) removes the gateway
    allocation_pools: Pools | None = None
    dns_nameservers: Nameservers | None = None
    host_routes: HostRoutes | None = None


def check_nameservers(servers: list[str], version: int) -> list[str]:
    """Addresses of the subnet's version, each once (Neutron's rules and words)."""
    out: list[str] = []
    for i, server in enumerate(servers):
        field = f"dns_nameservers[{i}]"
        try:
            ip = ipaddress.ip_address(server)
        except ValueError:
            raise BadRequest(
                f"Invalid input for {field}: '{server[:64]}' is not a valid nameserver"
            ) from None
        if ip.version != version:
            raise BadRequest(
                f"Invalid input for {field}: dns_nameserver '{server[:64]}' does not match "
                f"the ip_version '{version}'"
            )
        if str(ip) in out:
            raise BadRequest(f"Invalid input for {field}: Duplicate nameserver '{ip}'")
        out.append(str(ip))
    return out


def _gateway(
    text: str | None, net: ipaddress.IPv4Network, *, auto: bool = False
) -> ipaddress.IPv4Address | None:
    if text is None:
        return None
    if auto and text == "auto":  # a create that names none gets the first address
        return net.network_address + 1
    return parse_ip(text, "gateway_ip", net)


def create_subnet(session: Session, ctx: Context, spec: SubnetCreate) -> Subnet:
    """A new subnet after every check; flushed, the caller commits."""
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
    gateway = _gateway(spec.gateway_ip, cidr, auto=True)
    if spec.allocation_pools:
        pools = check_pools([p.model_dump() for p in spec.allocation_pools], cidr)
        check_gateway_outside_pools(gateway, pools)
    else:
        pools = default_pools(cidr, gateway)
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
        dns_nameservers=check_nameservers(spec.dns_nameservers or [], 4),
        host_routes=check_host_routes(spec.host_routes or [], 4),
        enable_dhcp=spec.enable_dhcp,
        created_at=now,
        updated_at=now,
    )
    session.add(subnet)
    session.flush()
    return subnet


def update_subnet(session: Session, subnet: Subnet, spec: SubnetUpdate) -> None:
    """``spec`` applied to ``subnet`` after Neutron's update rules: a new gateway
    lies in the subnet, outside the (new or kept) pools and on no port's address;
    every list given replaces the old one. Changes nothing when a rule fails."""
    given = spec.model_fields_set
    net = ipaddress.IPv4Network(subnet.cidr)
    old_gateway = ipaddress.IPv4Address(subnet.gateway_ip) if subnet.gateway_ip else None
    gateway = _gateway(spec.gateway_ip, net) if "gateway_ip" in given else old_gateway
    pools = subnet.allocation_pools
    if spec.allocation_pools is not None:
        pools = check_pools([p.model_dump() for p in spec.allocation_pools], net)
    if gateway != old_gateway or spec.allocation_pools is not None:
        check_gateway_outside_pools(gateway, pools)
    if gateway is not None and gateway != old_gateway:
        _check_address_free(session, subnet, gateway)
    dns = routes = None
    if spec.dns_nameservers is not None:
        dns = check_nameservers(spec.dns_nameservers, subnet.ip_version)
    if "host_routes" in given:  # null clears them, as an empty list does
        routes = check_host_routes(spec.host_routes or [], subnet.ip_version, subnet.id)
    # every check passed: only now is anything written
    subnet.gateway_ip = str(gateway) if gateway is not None else None
    subnet.allocation_pools = pools
    if dns is not None:
        subnet.dns_nameservers = dns
    if routes is not None:
        subnet.host_routes = routes
    for field in ("name", "description", "enable_dhcp"):
        value = getattr(spec, field)
        if value is not None:
            setattr(subnet, field, value)
    subnet.updated_at = utcnow()


def _check_address_free(session: Session, subnet: Subnet, address: ipaddress.IPv4Address) -> None:
    # A port holding the new gateway's address would shadow it: refused
    # (Neutron leaves that to its router code, which pcifleet has not).
    holder = session.scalar(
        select(IpAllocation.port_id).where(
            IpAllocation.subnet_id == subnet.id, IpAllocation.ip_address == str(address)
        )
    )
    if holder is not None:
        raise Conflict(
            f"Unable to complete operation for network {subnet.network_id}. The IP address "
            f"{address} is in use (port {holder}); gateway_ip cannot move there.",
            kind="IpAddressInUse",
        )
