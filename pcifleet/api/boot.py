"""The boot flow's controller side: the seam between ``POST /servers`` and the
scheduler, and what happens when a host's agent reports back.

1. ``prepare_boot`` (inside the request's transaction): each requested network
   gives a port — a ``port`` is looked up and must be free, a ``uuid`` gets a new
   ``normal`` port; every SR-IOV port (direct, macvtap, direct-physical) makes a
   PCI request on its network's physical network and keeps its ``request_id``;
   the flavor's ``pci_passthrough:alias`` adds its requests; all are recorded in
   ``instance_pci_requests``.
2. ``schedule_boot`` (after the response, in the background): the scheduler
   picks a host and claims the devices; the SR-IOV ports are bound to the VFs
   claimed for their request ids and a ``build`` task is queued for the host.
   Nothing fits: the server goes to ERROR with a fault saying why.
3. ``complete_build`` / ``fail_build`` when the agent reports the task's outcome;
   ``request_delete`` and ``complete_delete`` / ``fail_delete`` for the way back.

Nothing half-done is left: a failure releases the claim and unbinds the ports.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CursorResult, Engine, select, update
from sqlalchemy.orm import Session

from pcifleet import scheduler
from pcifleet.api.deps import Context, timestamp, utcnow
from pcifleet.api.errors import BadRequest, Conflict
from pcifleet.api.portbinding import bind_normal_port, bind_sriov_port, unbind_port
from pcifleet.api.routes.networks import visible_network
from pcifleet.api.routes.ports import FixedIp, PortCreate, create_port
from pcifleet.pci import (
    SRIOV_VNIC_TYPES,
    Alias,
    InvalidAlias,
    InvalidPciRequest,
    PciRequest,
    PciRequestsUnsatisfiable,
    request_for_port,
    requests_from_flavor,
)
from pcifleet.store import claims
from pcifleet.store.cloud import Image, Network, Port, ServerDetails
from pcifleet.store.errors import HostNotFound
from pcifleet.store.models import Instance, InstancePciRequest, Task

log = logging.getLogger(__name__)
NO_VALID_HOST = "No valid host was found."


@dataclass(frozen=True)
class RequestedNetwork:
    """One entry of a server's ``networks``: an existing port or a network."""

    port_id: str | None = None
    network_id: str | None = None
    fixed_ip: str | None = None


class NoValidHost(Exception):
    """No host can take the server; the message says why."""


def prepare_boot(
    session: Session,
    ctx: Context,
    instance: Instance,
    requested_networks: Sequence[RequestedNetwork],
    extra_specs: Mapping[str, str],
    aliases: Mapping[str, list[Alias]],
    *,
    availability_zone: str = "nova",
) -> list[PciRequest]:
    """Steps 1 and 2: ports and PCI requests of ``instance``; flushes, the caller commits.

    Raises 400 for an unknown port or network, 409 for a port in use.
    """
    requests: list[PciRequest] = []
    seen_ports: set[str] = set()
    for i, wanted in enumerate(requested_networks):
        if wanted.port_id is not None:
            port = session.get(Port, wanted.port_id)
            if port is None or not ctx.may_see(port.project_id):
                raise BadRequest(
                    f"Port id {wanted.port_id[:64]} could not be found. (networks[{i}].port)"
                )
            if port.id in seen_ports:
                raise BadRequest(f"Port id {port.id} is requested twice (networks[{i}].port)")
            if port.device_id and port.device_id != instance.uuid:
                raise Conflict(f"Port {port.id} is still in use by {port.device_id}.")
            network = session.get(Network, port.network_id)
            assert network is not None
        else:
            assert wanted.network_id is not None
            try:
                network = visible_network(session, ctx, wanted.network_id)
            except Exception:
                raise BadRequest(
                    f"Network {wanted.network_id[:64]} could not be found. (networks[{i}].uuid)"
                ) from None
            fixed = [FixedIp(ip_address=wanted.fixed_ip)] if wanted.fixed_ip else None
            spec = PortCreate(network_id=network.id, fixed_ips=fixed)
            port = create_port(session, ctx, spec, created_by_server=True)
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
            request = request_for_port(network.physical_network, port.vnic_type)
            port.pci_request_id = request.request_id
            requests.append(request)
    try:
        requests.extend(requests_from_flavor(extra_specs, aliases))
    except (InvalidAlias, InvalidPciRequest) as exc:
        raise BadRequest(f"The flavor's extra specs are invalid: {exc}") from None
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
            )
        )
    session.flush()
    return requests


def instance_requests(session: Session, instance_uuid: str) -> list[PciRequest]:
    rows = session.scalars(
        select(InstancePciRequest)
        .where(InstancePciRequest.instance_uuid == instance_uuid)
        .order_by(InstancePciRequest.id)
    )
    return [
        PciRequest(
            count=r.count,
            specs=[dict(s) for s in r.specs],
            request_id=r.request_id,
            alias_name=r.alias_name,
            numa_policy=r.numa_policy,  # type: ignore[arg-type]
            source=r.source,
        )
        for r in rows
    ]


def select_and_claim(
    engine: Engine,
    instance_uuid: str,
    requests: Sequence[PciRequest],
    *,
    vcpus: int,
    memory_mb: int,
) -> claims.ClaimResult:
    """The scheduler's call site: pick a host for ``requests`` and claim there.

    The engine's shared scheduler (``pcifleet.scheduler``) filters out disabled
    hosts and hosts whose agents stopped reporting. Raises NoValidHost with why.
    """
    try:
        return scheduler.select_and_claim(
            engine, instance_uuid, list(requests), vcpus=vcpus, memory_mb=memory_mb
        )
    except PciRequestsUnsatisfiable as exc:  # the scheduler's NoValidHost is one
        raise NoValidHost(str(exc)) from None


def release_claim(
    engine: Engine, host: str, instance_uuid: str, *, vcpus: int, memory_mb: int
) -> None:
    """Free what the server holds on ``host`` (through the scheduler, so its index
    sees the devices come back at once)."""
    with contextlib.suppress(HostNotFound):
        scheduler.release(engine, host, instance_uuid, vcpus=vcpus, memory_mb=memory_mb)


def schedule_boot(
    engine: Engine, instance_uuid: str, *, qbh_physical_networks: frozenset[str] = frozenset()
) -> str | None:
    """Step 3: claim a host, bind the SR-IOV ports, queue the build task.

    Returns the host, or None when the server went to ERROR. Never raises for a
    scheduling failure: the server's fault carries it.
    """
    with Session(engine) as session:
        instance = session.get(Instance, instance_uuid)
        if instance is None or instance.status != "BUILD" or instance.host:
            return None
        requests = instance_requests(session, instance_uuid)
        vcpus, memory_mb = instance.vcpus, instance.memory_mb
    try:
        result = select_and_claim(engine, instance_uuid, requests, vcpus=vcpus, memory_mb=memory_mb)
    except NoValidHost as exc:
        fail_build(engine, instance_uuid, f"{NO_VALID_HOST} {exc}".strip(), release=False)
        return None
    except Exception as exc:  # the server must not stay in BUILD for ever
        log.exception("scheduling %s failed", instance_uuid)
        fail_build(
            engine, instance_uuid, f"{NO_VALID_HOST} Scheduling failed: {exc}", release=False
        )
        return None
    try:
        with Session(engine) as session, session.begin():
            instance = session.get(Instance, instance_uuid)
            if instance is None or instance.status != "BUILD":
                raise LookupError("the server was deleted while it was being scheduled")
            instance.host = result.host
            instance.task_state = "spawning"
            ports = bind_ports(session, instance_uuid, result, qbh_physical_networks)
            session.add(
                Task(
                    host=result.host,
                    instance_uuid=instance_uuid,
                    kind="build",
                    state="pending",
                    payload=build_payload(session, instance, ports, result),
                )
            )
    except Exception as exc:
        log.warning("binding %s on %s failed: %s", instance_uuid, result.host, exc)
        release_claim(engine, result.host, instance_uuid, vcpus=vcpus, memory_mb=memory_mb)
        fail_build(engine, instance_uuid, f"Build of the server failed: {exc}", release=False)
        return None
    return result.host


def server_ports(session: Session, instance_uuid: str) -> list[Port]:
    return list(
        session.scalars(
            select(Port).where(Port.device_id == instance_uuid).order_by(Port.created_at)
        )
    )


def bind_ports(
    session: Session,
    instance_uuid: str,
    result: claims.ClaimResult,
    qbh_physical_networks: frozenset[str],
) -> list[Port]:
    """Bind each port of the server: an SR-IOV port to the device of its request."""
    ports = server_ports(session, instance_uuid)
    for port in ports:
        if port.pci_request_id is None:
            bind_normal_port(session, port, host=result.host)
            continue
        devices = result.devices_for(port.pci_request_id)
        if len(devices) != 1:
            raise LookupError(f"port {port.id}: {len(devices)} devices claimed for its request")
        device = devices[0]
        bind_sriov_port(
            session,
            port,
            host=result.host,
            pci_vendor_info=f"{device.vendor_id}:{device.product_id}",
            pci_slot=device.address,
            qbh_physical_networks=qbh_physical_networks,
            profileid=(device.tags or {}).get("profileid"),
        )
    return ports


def build_payload(
    session: Session, instance: Instance, ports: Sequence[Port], result: claims.ClaimResult
) -> dict[str, Any]:
    """What the agent needs to build the domain, so it never reads the store."""
    port_requests = {p.pci_request_id for p in ports if p.pci_request_id}
    image = session.get(Image, instance.image_id) if instance.image_id else None
    return {
        "image": {
            "id": image.id,
            "disk_format": image.disk_format,
            "size": image.size,
            "checksum": image.checksum,
            # what the agent GETs with its host credential (routes/agent_images.py)
            "file": f"/pcifleet/v1/hosts/{instance.host}/images/{image.id}/file",
        }
        if image
        else None,
        "instance": {
            "uuid": instance.uuid,
            "name": instance.name,
            "vcpus": instance.vcpus,
            "memory_mb": instance.memory_mb,
            "image_id": instance.image_id,
            "numa_cells": result.numa_cells,
        },
        "ports": [
            {
                "id": p.id,
                "mac_address": p.mac_address,
                "vnic_type": p.vnic_type,
                "network_id": p.network_id,
                "pci_request_id": p.pci_request_id,
                "binding:profile": p.binding_profile,
                "binding:vif_type": p.vif_type,
                "binding:vif_details": p.vif_details,
            }
            for p in ports
        ],
        "devices": [
            {
                "address": d.address,
                "vendor_id": d.vendor_id,
                "product_id": d.product_id,
                "dev_type": d.dev_type,
                "parent_addr": d.parent_addr,
                "request_id": d.request_id,
                "for_port": d.request_id in port_requests,
            }
            for d in result.devices
        ],
    }


def complete_build(engine: Engine, instance_uuid: str) -> None:
    """The agent built the domain: devices allocated, ports and server ACTIVE."""
    with Session(engine) as session:
        instance = session.get(Instance, instance_uuid)
        host = instance.host if instance else None
    if instance is None or host is None:
        return
    claims.allocate(engine, host, instance_uuid)
    with Session(engine) as session, session.begin():
        instance = session.get(Instance, instance_uuid)
        assert instance is not None
        instance.status = "ACTIVE"
        instance.task_state = None
        instance.fault = None
        for port in server_ports(session, instance_uuid):
            port.status = "ACTIVE"
        details = session.get(ServerDetails, instance_uuid)
        if details is not None:
            details.launched_at = utcnow()


def fail_build(engine: Engine, instance_uuid: str, message: str, *, release: bool = True) -> None:
    """ERROR with ``message`` as the fault; the claim released, the ports unbound
    (they stay attached to the server until it is deleted)."""
    with Session(engine) as session:
        instance = session.get(Instance, instance_uuid)
        if instance is None:
            return
        host, vcpus, memory_mb = instance.host, instance.vcpus, instance.memory_mb
    if release and host:
        release_claim(engine, host, instance_uuid, vcpus=vcpus, memory_mb=memory_mb)
    with Session(engine) as session, session.begin():
        instance = session.get(Instance, instance_uuid)
        if instance is None or instance.status == "DELETED":
            return
        instance.status = "ERROR"
        instance.task_state = None
        instance.fault = server_fault(message)
        for port in server_ports(session, instance_uuid):
            device_id, owner = port.device_id, port.device_owner
            unbind_port(port)
            port.device_id, port.device_owner = device_id, owner


def server_fault(message: str) -> dict[str, Any]:
    """A server's ``fault`` as Nova shows it."""
    return {"code": 500, "message": message[:1000], "created": timestamp(utcnow())}


def request_delete(session: Session, instance: Instance) -> bool:
    """Ask the host's agent to destroy the domain; False when there is no host to
    ask (the caller then completes the delete at once)."""
    if instance.task_state == "deleting":
        return True
    if not instance.host:
        return False
    instance.task_state = "deleting"
    session.add(
        Task(
            host=instance.host,
            instance_uuid=instance.uuid,
            kind="delete",
            state="pending",
            payload={"instance": {"uuid": instance.uuid, "name": instance.name}},
        )
    )
    return True


def fail_delete(engine: Engine, instance_uuid: str, message: str) -> None:
    """The host could not destroy the domain: ERROR with ``message``; the claim
    stays, as the domain may still run there."""
    with Session(engine) as session, session.begin():
        instance = session.get(Instance, instance_uuid)
        if instance is None:
            return
        instance.status = "ERROR"
        instance.task_state = None
        instance.fault = server_fault(message)


def complete_delete(engine: Engine, instance_uuid: str) -> None:
    """The domain is gone: free the devices, unbind the ports (deleting the ones
    the server made) and mark the server DELETED."""
    with Session(engine) as session:
        instance = session.get(Instance, instance_uuid)
        if instance is None:
            return
        host, vcpus, memory_mb = instance.host, instance.vcpus, instance.memory_mb
    if host:
        release_claim(engine, host, instance_uuid, vcpus=vcpus, memory_mb=memory_mb)
    with Session(engine) as session, session.begin():
        instance = session.get(Instance, instance_uuid)
        if instance is None:
            return
        for port in server_ports(session, instance_uuid):
            if port.created_by_server:
                session.delete(port)
            else:
                unbind_port(port)
        instance.status = "DELETED"
        instance.task_state = None
