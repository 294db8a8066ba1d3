"""A subnet's host routes, checked as Neutron checks them.

Each route is ``{"destination": CIDR, "nexthop": IP}``: the destination a
network written without host bits and not loopback, the next hop an address,
both of the subnet's IP version; the same route twice is refused, and so are
more than ``MAX_HOST_ROUTES`` (Neutron's ``max_subnet_host_routes`` default).
As in Neutron, the next hop need not lie inside the subnet: a guest may reach
it through a route of its own, and Tempest's own data has one outside.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field

from pcifleet.compute.errors import BadRequest
from pcifleet.compute.schemas import Strict

MAX_HOST_ROUTES = 20
IpText = Annotated[str, Field(max_length=64)]


class HostRoute(Strict):
    destination: IpText
    nexthop: IpText


# A list longer than this is refused by the shape itself, before any route is
# parsed; the count rule with Neutron's message applies below it.
HostRoutes = Annotated[list[HostRoute], Field(max_length=1024)]


def _destination(text: str, field: str, version: int) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRequest(f"Invalid input for {field}: '{text[:64]}' is not a valid CIDR") from None
    if "/" not in text or str(net.network_address) != text.split("/", 1)[0].strip():
        raise BadRequest(
            f"Invalid input for {field}: '{text[:64]}' is not a recognized CIDR, "
            f"'{net}' is recommended"
        )
    if net.version != version:
        raise BadRequest(
            f"Invalid input for {field}: destination '{text[:64]}' does not match the "
            f"ip_version '{version}'"
        )
    if net.is_loopback:
        raise BadRequest(f"Invalid input for {field}: '{text[:64]}' is not a routable CIDR")
    assert isinstance(net, ipaddress.IPv4Network)  # the only version subnets have
    return net


def _nexthop(text: str, field: str, version: int) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(
            f"Invalid input for {field}: '{text[:64]}' is not a valid IP address"
        ) from None
    if ip.version != version:
        raise BadRequest(
            f"Invalid input for {field}: nexthop '{text[:64]}' does not match the "
            f"ip_version '{version}'"
        )
    assert isinstance(ip, ipaddress.IPv4Address)
    return ip


def check_host_routes(
    routes: list[HostRoute], version: int, subnet_id: str = "new subnet"
) -> list[dict[str, str]]:
    """``routes`` as stored and shown (normalised text, in the order given);
    400 naming ``host_routes[i].destination`` or ``.nexthop`` for a bad one."""
    if len(routes) > MAX_HOST_ROUTES:
        raise BadRequest(
            f"Unable to complete operation for {subnet_id}. The number of host routes "
            f"exceeds the limit {MAX_HOST_ROUTES}.",
            kind="HostRoutesExhausted",
        )
    out: list[dict[str, str]] = []
    for i, route in enumerate(routes):
        dest = _destination(route.destination, f"host_routes[{i}].destination", version)
        hop = _nexthop(route.nexthop, f"host_routes[{i}].nexthop", version)
        item = {"destination": str(dest), "nexthop": str(hop)}
        if item in out:
            raise BadRequest(
                f"Invalid input for host_routes[{i}]: Duplicate hostroute "
                f"'{item['destination']} via {item['nexthop']}'"
            )
        out.append(item)
    return out
