"""IPv4 address management: subnet shapes and fixed IP allocation.

Addresses are handed out lowest-first from a subnet's allocation pools; the
``(subnet_id, ip_address)`` unique constraint makes a race a conflict, never a
duplicate. On PostgreSQL an allocating transaction first locks its subnets'
rows (``lock_subnets``), so concurrent allocators on one subnet take turns and
each sees the addresses the previous one committed: without it, 32 threads
each picking the lowest free address lost to each other until their retries
ran out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute.errors import BadRequest, Conflict
from pcifleet.store.cloud import IpAllocation, Subnet

MAX_PREFIX = 30  # a usable subnet needs a gateway and at least one more host


def parse_cidr(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRequest(
            f"Invalid input for cidr. Reason: '{text[:64]}' is not a valid IP subnet."
        ) from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise BadRequest("cidr: only IPv4 subnets are supported")
    if str(net) != text.strip():
        raise BadRequest(f"cidr: '{text[:64]}' has host bits set; did you mean {net}?")
    if net.prefixlen > MAX_PREFIX:
        raise BadRequest(f"cidr: a /{net.prefixlen} leaves no room for a gateway and hosts")
    return net


def parse_ip(text: str, field: str, net: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(f"{field}: '{text[:64]}' is not a valid IP address") from None
    if not isinstance(ip, ipaddress.IPv4Address) or ip not in net:
        raise BadRequest(f"{field}: {ip} is not in subnet {net}")
    if ip in (net.network_address, net.broadcast_address):
        raise BadRequest(f"{field}: {ip} is the network or broadcast address of {net}")
    return ip


def default_pools(
    net: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address | None
) -> list[dict[str, str]]:
    """Every host address except the gateway, as one or two ranges."""
    first, last = net.network_address + 1, net.broadcast_address - 1
    if gateway is None or not first <= gateway <= last:
        return [{"start": str(first), "end": str(last)}]
    pools = []
    if gateway > first:
        pools.append({"start": str(first), "end": str(gateway - 1)})
    if gateway < last:
        pools.append({"start": str(gateway + 1), "end": str(last)})
    return pools


def check_pools(pools: list[dict[str, str]], net: ipaddress.IPv4Network) -> list[dict[str, str]]:
    """Pools inside ``net``, each in order, none overlapping another; the
    gateway is ``check_gateway_outside_pools``'s business."""
    ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for i, pool in enumerate(pools):
        start = parse_ip(pool["start"], f"allocation_pools[{i}].start", net)
        end = parse_ip(pool["end"], f"allocation_pools[{i}].end", net)
        if end < start:
            raise BadRequest(f"allocation_pools[{i}]: end {end} is before start {start}")
        for s, e in ranges:
            if start <= e and s <= end:
                raise BadRequest(f"allocation_pools[{i}] overlaps another pool")
        ranges.append((start, end))
    return [{"start": str(s), "end": str(e)} for s, e in ranges]


def check_gateway_outside_pools(
    gateway: ipaddress.IPv4Address | None, pools: list[dict[str, str]]
) -> None:
    """Neutron's rule for a subnet's create and update alike: the gateway is never
    an address the pools could hand a port (409, its GatewayConflictWithAllocationPools)."""
    if gateway is None:
        return
    for pool in pools:
        if ipaddress.IPv4Address(pool["start"]) <= gateway <= ipaddress.IPv4Address(pool["end"]):
            raise Conflict(
                f"Gateway ip {gateway} conflicts with allocation pool "
                f"{pool['start']}-{pool['end']}.",
                kind="GatewayConflictWithAllocationPools",
            )


def subnet_contains(subnet: Subnet, ip: str) -> bool:
    """Whether ``ip`` (any text) is an address inside ``subnet``'s CIDR."""
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(subnet.cidr)
    except ValueError:
        return False


def lock_subnets(session: Session, subnet_ids: Iterable[str]) -> None:
    """Hold ``subnet_ids``' rows until the transaction ends (PostgreSQL; SQLite has
    one writer already). Always in id order, so two transactions locking
    overlapping sets cannot deadlock."""
    ids = sorted(set(subnet_ids))
    if not ids or session.get_bind().dialect.name == "sqlite":
        return
    session.execute(
        select(Subnet.id).where(Subnet.id.in_(ids)).order_by(Subnet.id).with_for_update()
    )


def used_addresses(session: Session, subnet_id: str) -> set[str]:
    return set(
        session.scalars(select(IpAllocation.ip_address).where(IpAllocation.subnet_id == subnet_id))
    )


def allocate(
    session: Session, subnet: Subnet, wanted: str | None = None, skip: Iterable[str] = ()
) -> str:
    """A free address of ``subnet`` (``wanted`` when given and free); ``skip``:
    addresses another transaction took that this one cannot see yet."""
    net = ipaddress.IPv4Network(subnet.cidr)
    used = used_addresses(session, subnet.id) | set(skip)
    if wanted is not None:
        ip = parse_ip(wanted, "fixed_ips.ip_address", net)
        if str(ip) in used:
            raise Conflict(
                f"IP address {ip} already allocated in subnet {subnet.id}",
                kind="IpAddressAlreadyAllocated",
            )
        if subnet.gateway_ip is not None and str(ip) == subnet.gateway_ip:
            raise Conflict(
                f"IP address {ip} is the gateway of subnet {subnet.id}", kind="IpAddressInUse"
            )
        return str(ip)
    for free in _pool_addresses(subnet.allocation_pools, used):
        return free
    raise Conflict(
        f"No more IP addresses available on network {subnet.network_id}.",
        kind="IpAddressGenerationFailure",
    )


def _pool_addresses(pools: Iterable[dict[str, str]], used: set[str]) -> Iterable[str]:
    for pool in pools:
        start = int(ipaddress.IPv4Address(pool["start"]))
        end = int(ipaddress.IPv4Address(pool["end"]))
        # at most len(used)+1 steps: the used set is the only thing in the way
        for value in range(start, end + 1):
            text = str(ipaddress.IPv4Address(value))
            if text not in used:
                yield text
