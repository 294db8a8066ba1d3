"""Interface attach and detach (Nova's ``os-interface``): hot plug a port into a
server that runs on a host, or unplug it.

Attach takes three steps, each one transaction, so a crash between any two
leaves rows the reconciler can finish (``abandon_attach``):

1. ``begin_attach``: the server moves to ``interface_attaching`` (compare and
   swap from a state with no task), the port is taken for it (a network gets
   a new port), an SR-IOV port gets its PCI request, and the action is
   recorded.
2. ``send_attach``: an SR-IOV port's VF is claimed on the server's host with
   the boot's claim code (``store.claims.claim``); inside the claim's
   transaction the port is bound and the ``attach_interface`` task queued.
   A normal port is bound to its network's bridge. No VF free there: the
   attach is undone and the caller gets a 400 naming the physical network.
3. The agent's report (``attach_done``): devices allocated and port ACTIVE,
   or, on failure, the VF freed, the port unbound and given back.

Detach is one transaction (``request_detach``: ``interface_detaching`` and a
``detach_interface`` task); its report frees the port's VF, removes its PCI
request and unbinds the port (deleting it if the server made it), as Nova does.
Alias devices are never attached this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.binding import (
    bind_normal_port,
    bind_sriov_port,
    check_qbh_profile,
    unbind_port,
)
from pcifleet.compute.context import Context
from pcifleet.compute.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.placement import task_port
from pcifleet.compute.ports import FixedIp, PortCreate, create_port, visible_network
from pcifleet.compute.preconditions import ready_for
from pcifleet.compute.states import TaskState, VmState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.pci import (
    SRIOV_VNIC_TYPES,
    DevType,
    PciAddress,
    PciRequest,
    PciRequestsUnsatisfiable,
    profile_trusted,
    request_for_port,
)
from pcifleet.store import claims
from pcifleet.store.cloud import Network, Port
from pcifleet.store.errors import ClaimConflict, HostNotFound
from pcifleet.store.models import InstancePciRequest, Task
from pcifleet.virt.tasks import InstanceRef, InterfaceTask, TaskDevice

ATTACH = "attach_interface"
DETACH = "detach_interface"
EVENT_ATTACH = "compute_attach_interface"
EVENT_DETACH = "compute_detach_interface"
# Nova's check_instance_state for attach and detach.
PLUGGABLE = frozenset({VmState.ACTIVE, VmState.PAUSED, VmState.STOPPED})


@dataclass(frozen=True)
class Attaching:
    """What step 1 decided: the server, its host, the port and its PCI request."""

    uuid: str
    name: str
    host: str
    port_id: str
    request: PciRequest | None


def _pluggable(session: Session, uuid: str, verb: str, host_down_after: float) -> Seen:
    return ready_for(session, uuid, verb, PLUGGABLE, host_down_after=host_down_after)


def _port_to_attach(
    session: Session,
    ctx: Context,
    uuid: str,
    port_id: str | None,
    network_id: str | None,
    fixed_ip: str | None,
) -> Port:
    if port_id is not None:
        port = session.get(Port, port_id)
        if port is None or not ctx.may_see(port.project_id):
            raise NotFound(f"Port {port_id[:64]} could not be found.")
        if port.device_id:
            raise Conflict(f"Port {port.id} is still in use.")
        return port
    if network_id is None:
        raise BadRequest("Invalid input for field 'interfaceAttachment': give port_id or net_id")
    network = visible_network(session, ctx, network_id)
    fixed = [FixedIp(ip_address=fixed_ip)] if fixed_ip else None
    return create_port(
        session, ctx, PortCreate(network_id=network.id, fixed_ips=fixed), created_by_server=True
    )


def begin_attach(
    session: Session,
    ctx: Context,
    uuid: str,
    *,
    port_id: str | None = None,
    network_id: str | None = None,
    fixed_ip: str | None = None,
    request_id: str,
    host_down_after: float,
    qbh_physical_networks: frozenset[str] = frozenset(),
) -> Attaching:
    """Step 1 (see the module docstring), in the caller's transaction."""
    seen = _pluggable(session, uuid, ATTACH, host_down_after)
    port = _port_to_attach(session, ctx, uuid, port_id, network_id, fixed_ip)
    assert seen.host is not None
    if not swap(session, seen, task_state=TaskState.INTERFACE_ATTACHING):
        raise Conflict(f"Cannot '{ATTACH}' instance {uuid}: its state changed meanwhile")
    # Take the port only if still free: of two servers racing for it, one wins.
    taken = session.execute(
        update(Port)
        .where(Port.id == port.id, Port.device_id == "")
        .values(device_id=uuid, device_owner="compute:nova")
        .execution_options(synchronize_session="fetch")
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"Port {port.id} is still in use.")
    request = None
    if port.vnic_type in SRIOV_VNIC_TYPES:
        network = session.get(Network, port.network_id)
        assert network is not None
        check_qbh_profile(port, network, qbh_physical_networks)
        request = request_for_port(
            network.physical_network,
            port.vnic_type,
            trusted=profile_trusted(port.binding_profile),
        )
        port.pci_request_id = request.request_id
        session.add(
            InstancePciRequest(
                instance_uuid=uuid,
                request_id=request.request_id,
                count=request.count,
                specs=request.specs,
                alias_name=None,
                numa_policy=request.numa_policy.value,
                source=request.source,
            )
        )
    events.start_action(
        session,
        uuid,
        ATTACH,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=EVENT_ATTACH,
        host=seen.host,
    )
    session.flush()
    return Attaching(uuid, seen.name, seen.host, port.id, request)


class _AttachGone(Exception):
    """The server left ``interface_attaching`` (deleted...) before the claim committed."""


def send_attach(
    engine: Engine, attaching: Attaching, qbh_physical_networks: frozenset[str] = frozenset()
) -> int | None:
    """Step 2: claim, bind and queue the agent's task; the task id.

    None when the server moved on meanwhile (a delete won; nothing was taken).
    A VF that cannot be claimed undoes step 1 and raises ``BadRequest``.
    """
    found: list[int] = []

    def bind_and_queue(conn: Connection, result: claims.ClaimResult | None) -> None:
        session = Session(bind=conn)
        seen = load(session, attaching.uuid)
        if (
            seen is None
            or seen.task_state is not TaskState.INTERFACE_ATTACHING
            or seen.host != attaching.host
        ):
            raise _AttachGone(attaching.uuid)
        port = session.get(Port, attaching.port_id)
        if port is None or port.device_id != attaching.uuid:
            raise _AttachGone(attaching.uuid)
        device = None
        if result is None:
            bind_normal_port(session, port, host=attaching.host)
        else:
            (claimed,) = result.devices
            bind_sriov_port(
                session,
                port,
                host=attaching.host,
                device=claimed,
                qbh_physical_networks=qbh_physical_networks,
            )
            device = task_device(claimed)
        task = Task(
            host=attaching.host,
            instance_uuid=attaching.uuid,
            kind=ATTACH,
            state="pending",
            payload=InterfaceTask(
                InstanceRef(attaching.uuid, attaching.name), task_port(port), device
            ).to_dict(),
        )
        session.add(task)
        session.flush()
        found.append(task.id)

    try:
        if attaching.request is None:
            with engine.begin() as conn:
                bind_and_queue(conn, None)
        else:
            claims.claim(
                engine,
                attaching.host,
                attaching.uuid,
                [attaching.request],
                then=bind_and_queue,
            )
    except _AttachGone:
        return None
    except (PciRequestsUnsatisfiable, ClaimConflict, HostNotFound) as exc:
        physnet = attaching.request.specs[0].get("physical_network") if attaching.request else None
        why = (
            f"Failed to claim a PCI device for port {attaching.port_id} on host "
            f"{attaching.host} (physical_network {physnet}): {exc}"
        )
        with Session(engine) as session, session.begin():
            abandon_attach(session, attaching.uuid, why)
        raise BadRequest(why) from None
    return found[0] if found else None


def task_device(d: claims.ClaimedDevice) -> TaskDevice:
    return TaskDevice(
        address=PciAddress.parse(d.address),
        request_id=d.request_id,
        vendor_id=d.vendor_id,
        product_id=d.product_id,
        dev_type=DevType(d.dev_type),
        parent_addr=None if d.parent_addr is None else PciAddress.parse(d.parent_addr),
        for_port=True,
    )


def _unplugged_ports(session: Session, uuid: str) -> list[Port]:
    """The server's ports not plugged on its host: the one an unfinished attach
    took (every plugged port is bound to the host)."""
    return list(
        session.scalars(select(Port).where(Port.device_id == uuid, Port.status != "ACTIVE"))
    )


def _give_back(session: Session, uuid: str, host: str | None, port: Port) -> None:
    """Free the port's VF (if any) on ``host``, drop its request, unbind it, and
    hand it back to its owner (deleted when the server made it)."""
    request_id = port.pci_request_id
    if request_id is not None:
        if host:
            claims.free(session.connection(), host, uuid, request_id=request_id)
        session.execute(
            delete(InstancePciRequest).where(InstancePciRequest.request_id == request_id)
        )
    if port.created_by_server:
        session.delete(port)
    else:
        unbind_port(port)
    session.flush()


def abandon_attach(session: Session, uuid: str, why: str, port_id: str | None = None) -> str | None:
    """Undo an attach that will not finish: the port's VF freed, the port given
    back, the server's task cleared, the action marked Error. Returns the host
    whose devices were freed (tell the scheduler after commit)."""
    seen = load(session, uuid)
    if seen is None or seen.task_state is not TaskState.INTERFACE_ATTACHING:
        return None
    if not swap(session, seen, task_state=None):
        return None
    ports = _unplugged_ports(session, uuid)
    for port in ports:
        if port_id is None or port.id == port_id:
            _give_back(session, uuid, seen.host, port)
    events.finish_event(session, uuid, ATTACH, EVENT_ATTACH, ok=False, details=why, host=seen.host)
    return seen.host


def attach_done(session: Session, task: Task, ok: bool, message: str) -> str | None:
    """The agent's report of an attach; the host whose devices were freed, if any."""
    uuid = task.instance_uuid
    assert uuid is not None
    port_id = str((task.payload.get("port") or {}).get("id", ""))
    if not ok:
        why = message or "Failed to attach network adapter device on the host"
        return abandon_attach(session, uuid, why, port_id)
    seen = load(session, uuid)
    if seen is None or seen.task_state is not TaskState.INTERFACE_ATTACHING:
        return None  # deleted meanwhile: the delete gave everything back
    if not swap(session, seen, task_state=None):
        return None
    claims.allocate(session.connection(), task.host, uuid)
    port = session.get(Port, port_id)
    if port is not None and port.device_id == uuid:
        port.status = "ACTIVE"
    events.finish_event(session, uuid, ATTACH, EVENT_ATTACH, ok=True, host=task.host)
    session.flush()
    return None


def request_detach(
    session: Session,
    ctx: Context,
    uuid: str,
    port_id: str,
    *,
    request_id: str,
    host_down_after: float,
) -> int:
    """Start unplugging ``port_id`` from the server; the agent task's id."""
    port = session.get(Port, port_id)
    if port is None or port.device_id != uuid:
        raise NotFound(f"Port {port_id[:64]} is not attached to instance {uuid}.")
    seen = _pluggable(session, uuid, DETACH, host_down_after)
    assert seen.host is not None
    if not swap(session, seen, task_state=TaskState.INTERFACE_DETACHING):
        raise Conflict(f"Cannot '{DETACH}' instance {uuid}: its state changed meanwhile")
    device = None
    if port.pci_request_id is not None:
        held = [
            d
            for d in claims.instance_devices_in(session.connection(), uuid, seen.host)
            if d.request_id == port.pci_request_id
        ]
        device = task_device(held[0]) if held else None
    events.start_action(
        session,
        uuid,
        DETACH,
        request_id=request_id,
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        event=EVENT_DETACH,
        host=seen.host,
    )
    payload: dict[str, Any] = InterfaceTask(
        InstanceRef(uuid, seen.name), task_port(port), device
    ).to_dict()
    task = Task(host=seen.host, instance_uuid=uuid, kind=DETACH, state="pending", payload=payload)
    session.add(task)
    session.flush()
    return task.id


def detach_done(session: Session, task: Task, ok: bool, message: str) -> str | None:
    """The agent's report of a detach; the host whose devices were freed, if any."""
    uuid = task.instance_uuid
    assert uuid is not None
    seen = load(session, uuid)
    if seen is None or seen.task_state is not TaskState.INTERFACE_DETACHING:
        return None
    if not swap(session, seen, task_state=None):
        return None
    if not ok:
        why = message or "Failed to detach network adapter device from the host"
        events.finish_event(
            session, uuid, DETACH, EVENT_DETACH, ok=False, details=why, host=seen.host
        )
        return None
    port_id = str((task.payload.get("port") or {}).get("id", ""))
    port = session.get(Port, port_id)
    freed = None
    if port is not None and port.device_id == uuid:
        freed = seen.host if port.pci_request_id else None
        _give_back(session, uuid, seen.host, port)
    events.finish_event(session, uuid, DETACH, EVENT_DETACH, ok=True, host=seen.host)
    return freed


def end_lost_detach(session: Session, uuid: str) -> bool:
    """A detach whose host task is gone ends; the port stays attached."""
    seen = load(session, uuid)
    if seen is None or seen.task_state is not TaskState.INTERFACE_DETACHING:
        return False
    if not swap(session, seen, task_state=None):
        return False
    events.finish_event(
        session, uuid, DETACH, EVENT_DETACH, ok=False,
        details="the host's task for this detach was lost", host=seen.host,
    )  # fmt: skip
    return True
