"""Networking facts the compute side needs: which networks a caller may use,
and making a port (MAC, fixed IPs, SR-IOV checks) — for ``POST /ports`` and for
the ports a server's ``networks`` ask for."""

from __future__ import annotations

import json
import random
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pcifleet.compute.context import Context, new_id, utcnow
from pcifleet.compute.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.compute.ipam import allocate, lock_subnets, subnet_contains
from pcifleet.compute.port_guard import check_device_target
from pcifleet.compute.schemas import Description, Id, Name, Strict
from pcifleet.pci import SRIOV_VNIC_TYPES
from pcifleet.store.cloud import IpAllocation, Network, Port, Subnet
from pcifleet.virt.errors import InvalidVirtSpec
from pcifleet.virt.validate import check_profileid

Text255 = Annotated[str, Field(max_length=255)]

MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MAX_PROFILE_BYTES = 4096
VnicType = Literal["normal", "direct", "macvtap", "direct-physical"]


class FixedIp(Strict):
    subnet_id: Id | None = None
    ip_address: Annotated[str | None, Field(max_length=64)] = None


def _check_profile(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(json.dumps(value)) > MAX_PROFILE_BYTES:
        raise ValueError(f"must be at most {MAX_PROFILE_BYTES} bytes of JSON")
    trusted = (value or {}).get("trusted")
    word = trusted.strip().lower() if isinstance(trusted, str) else None
    if trusted is not None and not isinstance(trusted, bool) and word not in BOOLEAN_WORDS:
        raise ValueError(f"trusted ({str(trusted)[:32]!r}) must be true or false")
    if "profileid" in value:  # goes into the domain XML of an 802.1qbh port
        try:
            check_profileid(value["profileid"])
        except InvalidVirtSpec as exc:
            raise ValueError(str(exc)) from None
    return value


BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "1", "0", "on", "off"})
# Neutron's port-numa-affinity-policy values (null: the flavor's or image's).
NumaAffinityPolicy = Literal["required", "preferred", "legacy", "socket"] | None


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
    numa_affinity_policy: NumaAffinityPolicy = None
    # Neutron's port-trusted-vif: kept as binding:profile "trusted" (admins only)
    trusted: bool | None = None
    security_groups: Annotated[list[Text255], Field(max_length=16)] = Field(default_factory=list)
    port_security_enabled: bool = True
    project_id: Id | None = None
    tenant_id: Id | None = None


def with_trusted(profile: dict[str, Any], trusted: bool | None) -> dict[str, Any]:
    """``profile`` with its ``trusted`` key set from the port's ``trusted``
    attribute (null removes it), as Neutron's port-trusted-vif keeps it."""
    out = {k: v for k, v in profile.items() if k != "trusted"}
    if trusted is not None:
        out["trusted"] = trusted
    return out


def trusted_of(profile: dict[str, Any] | None) -> bool | None:
    """The port's ``trusted`` attribute as Neutron shows it: from the profile."""
    value = (profile or {}).get("trusted")
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1", "on")


def random_mac() -> str:
    """``fa:16:3e:xx:xx:xx``, OpenStack's base MAC (locally administered, unicast)."""
    return "fa:16:3e:" + ":".join(f"{random.randrange(256):02x}" for _ in range(3))


def free_mac(session: Session) -> str:
    for _ in range(16):
        mac = random_mac()
        if session.scalar(select(Port.id).where(Port.mac_address == mac)) is None:
            return mac
    raise Conflict("Unable to generate a unique MAC address", kind="MacAddressGenerationFailure")


def owner_of(ctx: Context, project_id: str | None, tenant_id: str | None) -> str:
    """The project a new resource belongs to; only admins may name another."""
    if project_id and tenant_id and project_id != tenant_id:
        raise BadRequest("project_id and tenant_id do not match")
    wanted = project_id or tenant_id or ctx.project_id
    if wanted != ctx.project_id and not ctx.is_admin:
        raise Forbidden("Only admins may create resources in another project.")
    return wanted


def visible_network(session: Session, ctx: Context, network_id: str) -> Network:
    net = session.get(Network, network_id)
    if net is None or not (net.shared or ctx.may_see(net.project_id)):
        raise NotFound(f"Network {network_id[:64]} could not be found.", kind="NetworkNotFound")
    return net


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
    lock_subnets(session, (subnet.id for subnet, _ in wanted))
    for subnet, ip in wanted:
        port.fixed_ips.append(take_address(session, port, subnet, ip))
        session.flush()


def replace_fixed_ips(
    session: Session, port: Port, network: Network, fixed_ips: list[FixedIp]
) -> None:
    """A port update's ``fixed_ips``, as Neutron reads it: the whole new list. An
    address already held is kept, a subnet named alone keeps the address the port
    has there (or gets one), and what the list no longer names is given back."""
    subnets = {
        s.id: s for s in session.scalars(select(Subnet).where(Subnet.network_id == network.id))
    }
    unclaimed = list(port.fixed_ips)
    keep: list[IpAllocation] = []
    new: list[tuple[Subnet, str | None]] = []
    for i, item in enumerate(fixed_ips):
        if item.subnet_id is None and item.ip_address is None:
            raise BadRequest(f"fixed_ips[{i}]: give subnet_id, ip_address or both")
        if item.subnet_id is not None and item.subnet_id not in subnets:
            raise BadRequest(
                f"fixed_ips[{i}]: subnet {item.subnet_id[:64]} is not on network {network.id}"
            )
    for i, item in enumerate(fixed_ips):  # named addresses first, as they cannot move
        if item.ip_address is None:
            continue
        held = next((a for a in unclaimed if a.ip_address == item.ip_address), None)
        if held is not None and item.subnet_id in (None, held.subnet_id):
            unclaimed.remove(held)
            keep.append(held)
            continue
        subnet = subnets.get(item.subnet_id or "") or next(
            (s for s in subnets.values() if subnet_contains(s, item.ip_address)), None
        )
        if subnet is None:
            raise BadRequest(f"fixed_ips[{i}]: no subnet of network {network.id} matches")
        new.append((subnet, item.ip_address))
    for item in fixed_ips:
        if item.ip_address is not None or item.subnet_id is None:
            continue
        held = next((a for a in unclaimed if a.subnet_id == item.subnet_id), None)
        if held is not None:
            unclaimed.remove(held)
            keep.append(held)
        else:
            new.append((subnets[item.subnet_id], None))
    for gone in unclaimed:  # freed before the new ones are taken, so they may reuse them
        port.fixed_ips.remove(gone)
    session.flush()
    lock_subnets(session, (subnet.id for subnet, _ in new))
    for subnet, ip in new:
        port.fixed_ips.append(take_address(session, port, subnet, ip))
        session.flush()


# Concurrent ports on one subnet pick the same lowest free address; the loser
# of the unique (subnet, address) index tries the next one, as Neutron retries.
ALLOCATION_TRIES = 32


def take_address(session: Session, port: Port, subnet: Subnet, ip: str | None) -> IpAllocation:
    """An address of ``subnet`` for ``port``, written (flushed) in the caller's
    transaction. On PostgreSQL each try is a savepoint, so losing the unique
    index to a concurrent port costs one retry, not the whole request; SQLite
    has one writer, whose reads already see every address taken."""
    if session.get_bind().dialect.name == "sqlite":
        row = IpAllocation(
            port_id=port.id, subnet_id=subnet.id, ip_address=allocate(session, subnet, ip)
        )
        session.add(row)
        return row
    lock_subnets(session, [subnet.id])  # held already when called through add_fixed_ips
    skip: set[str] = set()
    for _ in range(ALLOCATION_TRIES):
        address = allocate(session, subnet, ip, skip)
        row = IpAllocation(port_id=port.id, subnet_id=subnet.id, ip_address=address)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:
            if ip is not None:
                raise Conflict(
                    f"IP address {ip} already allocated in subnet {subnet.id}",
                    kind="IpAddressAlreadyAllocated",
                ) from None
            skip.add(address)
            continue
        return row
    raise Conflict(
        f"Could not allocate an address on subnet {subnet.id}: too many concurrent ports; retry.",
        kind="IpAddressGenerationFailure",
    )


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
    if "trusted" in given and not ctx.is_admin:
        raise Forbidden("(rule:create_port:trusted) is disallowed by policy: trusted is for admins")
    if ("profile" in given or "host_id" in given) and not ctx.is_admin:
        raise Forbidden(
            "(rule:create_port:binding:profile) is disallowed by policy: binding:profile and "
            "binding:host_id may be set by admins only"
        )
    check_sriov_network(network, spec.vnic_type)
    check_device_target(session, ctx, spec.device_id)
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
        binding_profile=with_trusted(spec.profile or {}, spec.trusted)
        if "trusted" in given
        else spec.profile or {},
        numa_affinity_policy=spec.numa_affinity_policy,
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
