"""Creating servers: the rows, ports and PCI requests of ``POST /servers``, and
the scheduling job, all in the request's one transaction.

1. ``create_servers``: ``max_count`` servers (``min_count`` of them must fit,
   all or nothing), each in ``building``/``scheduling``; each requested network
   gives a port (a ``port`` is looked up and must be free, a ``uuid`` gets a new
   ``normal`` port); every SR-IOV port (direct, macvtap, direct-physical) makes
   a PCI request on its network's physical network and keeps its
   ``request_id``; the flavor's ``pci_passthrough:alias`` adds its requests.
2. One ``schedule`` job for the reservation, in the same transaction, so a
   crash after the 202 loses nothing: a worker (``pcifleet.compute.placement``)
   takes the job, claims and launches.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, lazyload

from pcifleet.compute import events, jobs
from pcifleet.compute.binding import check_qbh_profile
from pcifleet.compute.context import Context, new_id, utcnow
from pcifleet.compute.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.ports import FixedIp, PortCreate, create_port, visible_network
from pcifleet.compute.states import TaskState, VmState, status_of
from pcifleet.pci import (
    SRIOV_VNIC_TYPES,
    Alias,
    InvalidAlias,
    InvalidNumaRequest,
    InvalidPciRequest,
    NumaPolicy,
    PciRequest,
    apply_numa_policy,
    instance_numa,
    parse_numa_policy,
    profile_trusted,
    request_for_port,
    requests_from_flavor,
)
from pcifleet.store.cloud import Flavor, Image, Network, Port, ServerDetails
from pcifleet.store.models import Instance, InstancePciRequest

SCHEDULE = "schedule"
CREATE = "create"
# Nova's event names, so `server event show` reads as operators know it.
EVENT_SCHEDULE = "conductor_schedule_and_build_instances"
EVENT_BUILD = "compute__do_build_and_run_instance"


@dataclass(frozen=True)
class RequestedNetwork:
    """One entry of a server's ``networks``: an existing port or a network."""

    port_id: str | None = None
    network_id: str | None = None
    fixed_ip: str | None = None


@dataclass(frozen=True)
class BootRequest:
    """What ``POST /servers`` asked for, resolved (flavor and image rows)."""

    name: str
    flavor: Flavor
    image: Image
    networks: Sequence[RequestedNetwork]
    extra_specs: Mapping[str, str]
    aliases: Mapping[str, list[Alias]]
    flavor_snapshot: dict[str, Any]
    alias_source: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    min_count: int = 1
    max_count: int = 1
    request_id: str = ""
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None
    # the keypair named at boot and its public key (kept; no guest agent reads it)
    key_name: str | None = None
    key_data: str | None = None
    user_data: str | None = None
    # The scheduler hint pcifleet:distinct_pf: every SR-IOV port on its own PF.
    distinct_pf: bool = False
    # physical networks whose direct/macvtap ports bind as 802.1qbh
    qbh_physical_networks: frozenset[str] = frozenset()


def create_servers(session: Session, ctx: Context, req: BootRequest) -> list[Instance]:
    """Step 1 and 2 for every server of the request; flushes, the caller commits.

    Raises 400 for an unknown port or network, 409 for a port in use.
    """
    if req.min_count > req.max_count:
        raise BadRequest("min_count must be less than or equal to max_count")
    if req.max_count > 1 and any(w.port_id for w in req.networks):
        raise BadRequest("Unable to launch multiple instances with a single configured port ID.")
    reservation = f"r-{secrets.token_hex(4)}"
    instances = []
    for index in range(req.max_count):
        name = req.name if req.max_count == 1 else f"{req.name}-{index + 1}"
        instances.append(_new_server(session, ctx, req, name, reservation, index))
    # the request id goes with the job so its log lines name the request
    jobs.enqueue(
        session,
        SCHEDULE,
        reservation,
        {"min_count": req.min_count, "request_id": req.request_id or None},
    )
    return instances


def _new_server(
    session: Session, ctx: Context, req: BootRequest, name: str, reservation: str, index: int
) -> Instance:
    now = utcnow()
    instance = Instance(
        uuid=new_id(),
        name=name,
        project_id=ctx.project_id,
        user_id=ctx.user_id,
        flavor_id=req.flavor.id,
        image_id=req.image.id,
        vm_state=VmState.BUILDING.value,
        task_state=TaskState.SCHEDULING.value,
        status=status_of(VmState.BUILDING, TaskState.SCHEDULING),
        power_state=0,
        vcpus=req.flavor.vcpus,
        memory_mb=req.flavor.ram,
        reservation_id=reservation,
        launch_index=index,
        created_at=now,
        updated_at=now,
    )
    session.add(instance)
    session.flush()
    session.add(
        ServerDetails(
            instance_uuid=instance.uuid,
            description=req.description,
            metadata_=dict(req.metadata),
            availability_zone="nova",
            requested_networks=[w.__dict__ for w in req.networks] if req.networks else "none",
            flavor=req.flavor_snapshot,
            access_ip_v4=req.access_ip_v4,
            access_ip_v6=req.access_ip_v6,
            key_name=req.key_name,
            key_data=req.key_data,
            user_data=req.user_data,
        )
    )
    prepare_boot(
        session,
        ctx,
        instance,
        req.networks,
        req.extra_specs,
        req.aliases,
        image_properties=req.image.properties,
        distinct_pf=req.distinct_pf,
        alias_source=req.alias_source,
        qbh_physical_networks=req.qbh_physical_networks,
    )
    events.start_action(
        session,
        instance.uuid,
        CREATE,
        request_id=req.request_id or f"req-{new_id()}",
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=EVENT_SCHEDULE,
    )
    return instance


def _port_for(
    session: Session, ctx: Context, instance: Instance, wanted: RequestedNetwork, i: int
) -> tuple[Port, Network]:
    if wanted.port_id is not None:
        # its fixed IPs load only if something reads them (nothing on the boot path)
        port = session.get(Port, wanted.port_id, options=[lazyload(Port.fixed_ips)])
        if port is None or not ctx.may_see(port.project_id):
            raise BadRequest(
                f"Port id {wanted.port_id[:64]} could not be found. (networks[{i}].port)"
            )
        if port.device_id and port.device_id != instance.uuid:
            raise Conflict(f"Port {port.id} is still in use by {port.device_id}.")
        network = session.get(Network, port.network_id)
        assert network is not None  # ports cascade with their network
        return port, network
    assert wanted.network_id is not None
    try:
        network = visible_network(session, ctx, wanted.network_id)
    except NotFound:
        raise BadRequest(
            f"Network {wanted.network_id[:64]} could not be found. (networks[{i}].uuid)"
        ) from None
    fixed = [FixedIp(ip_address=wanted.fixed_ip)] if wanted.fixed_ip else None
    spec = PortCreate(network_id=network.id, fixed_ips=fixed)
    return create_port(session, ctx, spec, created_by_server=True), network


def prepare_boot(
    session: Session,
    ctx: Context,
    instance: Instance,
    requested_networks: Sequence[RequestedNetwork],
    extra_specs: Mapping[str, str],
    aliases: Mapping[str, list[Alias]],
    *,
    availability_zone: str = "nova",
    image_properties: Mapping[str, Any] | None = None,
    distinct_pf: bool = False,
    alias_source: str | None = None,
    qbh_physical_networks: frozenset[str] = frozenset(),
) -> list[PciRequest]:
    """Ports and PCI requests of ``instance``; flushes, the caller commits.

    NUMA: the flavor's (or image's) PCI NUMA policy applies to every request,
    a port's own ``numa_affinity_policy`` to its request; ``distinct_pf`` puts
    every SR-IOV port's device on a PF of its own.
    """
    try:
        numa = instance_numa(
            extra_specs, image_properties, vcpus=instance.vcpus, memory_mb=instance.memory_mb
        )
    except InvalidNumaRequest as exc:
        raise BadRequest(f"The flavor's or image's NUMA settings are invalid: {exc}") from None
    requests: list[PciRequest] = []
    port_policies: dict[str, NumaPolicy | None] = {}
    seen_ports: set[str] = set()
    for i, wanted in enumerate(requested_networks):
        port, network = _port_for(session, ctx, instance, wanted, i)
        if port.id in seen_ports:
            raise BadRequest(f"Port id {port.id} is requested twice (networks[{i}].port)")
        seen_ports.add(port.id)
        session.flush()
        # Take the port only if it is still free: of two servers racing for one
        # port, the second gets the 409 (the row write serialises them).
        taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(Port)
            .where(Port.id == port.id, Port.device_id.in_(("", instance.uuid)))
            .values(device_id=instance.uuid, device_owner=f"compute:{availability_zone}")
            .execution_options(synchronize_session="fetch")
        )
        if taken.rowcount != 1:
            raise Conflict(f"Port {port.id} is still in use.")
        if port.vnic_type in SRIOV_VNIC_TYPES:
            check_qbh_profile(port, network, qbh_physical_networks)
            request = request_for_port(
                network.physical_network,
                port.vnic_type,
                trusted=profile_trusted(port.binding_profile),
                distinct_pf=distinct_pf,
            )
            port_policies[request.request_id] = parse_numa_policy(
                port.numa_affinity_policy, "numa_affinity_policy"
            )
            request.label = port_label(port)
            port.pci_request_id = request.request_id
            requests.append(request)
    try:
        requests.extend(requests_from_flavor(extra_specs, aliases, source=alias_source))
    except (InvalidAlias, InvalidPciRequest) as exc:
        raise BadRequest(f"The flavor's extra specs are invalid: {exc}") from None
    apply_numa_policy(requests, numa, port_policies)
    for request in requests:
        session.add(
            InstancePciRequest(
                instance_uuid=instance.uuid,
                request_id=request.request_id,
                count=request.count,
                specs=request.specs,
                alias_name=request.alias_name,
                numa_policy=request.numa_policy.value,
                source=request.source,
                distinct_pf=request.distinct_pf,
            )
        )
    session.flush()
    return requests


def port_label(port: Port) -> str:
    """How messages name a port: by the name its owner gave it, and its id."""
    return _label(port.name, port.id)


def _label(name: str | None, port_id: str) -> str:
    return f"port {name!r} ({port_id})" if name else f"port {port_id}"


def instance_requests(session: Session, instance_uuid: str) -> list[PciRequest]:
    """The server's PCI requests; a port's request is labelled with its port."""
    rows = session.scalars(
        select(InstancePciRequest)
        .where(InstancePciRequest.instance_uuid == instance_uuid)
        .order_by(InstancePciRequest.id)
    ).all()
    ids = [r.request_id for r in rows if r.source == "port"]
    # the ports' names and ids only: loading them whole (with their fixed IPs)
    # cost two queries and a dozen objects per boot for a label
    named = (
        session.execute(
            select(Port.pci_request_id, Port.id, Port.name).where(Port.pci_request_id.in_(ids))
        ).all()
        if ids
        else []
    )
    labels = {request: _label(name, port_id) for request, port_id, name in named}
    return [
        PciRequest(
            count=r.count,
            specs=[dict(s) for s in r.specs],
            request_id=r.request_id,
            alias_name=r.alias_name,
            numa_policy=r.numa_policy,  # type: ignore[arg-type]
            source=r.source,
            distinct_pf=bool(r.distinct_pf),
            label=labels.get(r.request_id),
        )
        for r in rows
    ]
