"""The ``schedule`` job: place a reservation's servers, then launch them.

Placing one server is one transaction: the scheduler claims its devices and,
in the same transaction (the claim's hook), the server moves from
``scheduling`` to ``networking`` on the chosen host — guarded by its state, so a
delete that came first makes the claim roll back and nothing is taken.

Launching is a second transaction per reservation: each placed server moves
from ``networking`` to ``spawning``, gets its ports bound to the claimed VFs
and a ``build`` task for its host's agent, and the job row is deleted. Fewer than ``min_count``
placed: every server of the reservation goes to ERROR and gives back what it
took. A crash anywhere re-runs the job from the rows as they are: placed
servers count as placed, launched ones are skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from pcifleet import scheduler
from pcifleet.compute import events, jobs, metrics
from pcifleet.compute.binding import bind_normal_port, bind_sriov_port
from pcifleet.compute.boot import CREATE, EVENT_BUILD, EVENT_SCHEDULE, instance_requests
from pcifleet.compute.faults import server_fault
from pcifleet.compute.release import (
    cancel_tasks,
    free_devices,
    server_ports,
    tell_scheduler,
    unbind_ports,
)
from pcifleet.compute.states import TaskState, VmState
from pcifleet.compute.transitions import Seen, load, swap
from pcifleet.pci import (
    DevType,
    InstanceNuma,
    InvalidNumaRequest,
    InvalidNumaTopology,
    NumaTopology,
    PciAddress,
    PciRequestsUnsatisfiable,
    instance_numa,
)
from pcifleet.store import claims
from pcifleet.store.cloud import Image, Port, ServerDetails
from pcifleet.store.models import Host, Instance, Task
from pcifleet.virt.tasks import (
    BindingProfile,
    BridgeBinding,
    BuildTask,
    MoveDisk,
    PortVnicType,
    TaskDevice,
    TaskImage,
    TaskInstance,
    TaskPort,
    VifDetails,
)

log = logging.getLogger(__name__)
NO_VALID_HOST = "No valid host was found."


class ServerGone(Exception):
    """The server left ``scheduling`` (deleted...) before its claim committed."""


def _reservation(session: Session, reservation: str) -> list[str]:
    return list(
        session.scalars(
            select(Instance.uuid)
            .where(Instance.reservation_id == reservation)
            .order_by(Instance.launch_index)
        )
    )


def run_schedule(
    engine: Engine, job: jobs.Job, *, qbh_physical_networks: frozenset[str] = frozenset()
) -> None:
    """Run one ``schedule`` job to its end (see the module docstring)."""
    reservation = job.subject or ""
    min_count = int(job.payload.get("min_count", 1))
    with Session(engine) as session:
        uuids = _reservation(session, reservation)
    placed: list[str] = []
    failed: dict[str, str] = {}
    for uuid in uuids:
        outcome = place(engine, uuid)
        if outcome is None:
            placed.append(uuid)
        elif outcome:
            failed[uuid] = outcome
    if placed and len(placed) < min_count:
        why = f"only {len(placed)} of the {min_count} servers asked for (min_count) fit"
        failed.update({u: f"{NO_VALID_HOST} {why}" for u in placed})
        placed = []
    hosts: set[str | None] = set()
    with Session(engine) as session, session.begin():
        for uuid in placed:
            launch(session, uuid, qbh_physical_networks)
        for uuid, message in failed.items():
            hosts.add(fail_build(session, uuid, message, event=EVENT_SCHEDULE))
        if not jobs.finish(session, job):
            raise jobs.LeaseLost(f"job {job.id} was taken over; its work is rolled back")
    for host in hosts:
        tell_scheduler(engine, host)


def place(engine: Engine, uuid: str) -> str | None:
    """Claim a host for one server. None: placed (now or by an earlier run);
    a message: it cannot be placed; "": it is not ours to place any more."""
    with Session(engine) as session:
        seen = load(session, uuid)
        if seen is None or seen.vm_state is not VmState.BUILDING:
            return ""
        if seen.task_state in (TaskState.NETWORKING, TaskState.SPAWNING) and seen.host:
            return None
        if seen.task_state is not TaskState.SCHEDULING:
            return ""
        requests = instance_requests(session, uuid)
        numa_nodes = server_numa(session, uuid).nodes

    def moved_on(conn: Connection, result: claims.ClaimResult) -> None:
        if not swap(
            conn,
            seen,
            task_state=TaskState.NETWORKING,
            host=result.host,
            numa_cells=result.numa_cells,
        ):
            raise ServerGone(uuid)

    started = time.perf_counter()
    try:
        claimed = scheduler.select_and_claim(
            engine,
            uuid,
            requests,
            vcpus=seen.vcpus,
            memory_mb=seen.memory_mb,
            numa_nodes=numa_nodes,
            then=moved_on,
        )
    except ServerGone:
        return ""
    except PciRequestsUnsatisfiable as exc:  # the scheduler's NoValidHost is one
        metrics.SCHEDULE_SECONDS.observe(time.perf_counter() - started)
        metrics.count_no_valid_host(getattr(exc, "failures", {}))
        # an operator sees this without -v: it is what a user will ask about
        log.warning("server %s: no valid host: %s", uuid, exc)
        return f"{NO_VALID_HOST} {exc}".strip()
    took = time.perf_counter() - started
    metrics.SCHEDULE_SECONDS.observe(took)
    metrics.CLAIMS.inc()
    metrics.CLAIMED_DEVICES.inc(len(claimed.devices))
    took_ms = took * 1000
    devices = ", ".join(
        f"{d.address} ({d.dev_type} {d.vendor_id}:{d.product_id})" for d in claimed.devices
    )
    log.info(
        "server %s scheduled on %s in %.1f ms; devices: %s",
        uuid,
        claimed.host,
        took_ms,
        devices or "none",
    )
    return None


def server_numa(session: Session, uuid: str) -> InstanceNuma:
    """The server's NUMA wishes from its flavor as it was at boot (checked then,
    so a flavor edited since cannot break a server already asked for)."""
    details = session.get(ServerDetails, uuid)
    flavor: dict[str, Any] = dict(details.flavor or {}) if details is not None else {}
    specs = flavor.get("extra_specs")
    try:
        return instance_numa(specs if isinstance(specs, dict) else {})
    except InvalidNumaRequest:
        return InstanceNuma()


def launch(session: Session, uuid: str, qbh_physical_networks: frozenset[str]) -> bool:
    """Bind a placed server's ports and queue its build; False if it moved on."""
    seen = load(session, uuid)
    if seen is None or not seen.host:
        return False
    if seen.task_state is TaskState.SPAWNING:
        return True  # launched by an earlier run of the job
    if seen.task_state is not TaskState.NETWORKING:
        return False
    # The swap is the launch's claim on the server: of two workers running the
    # same job (one whose lease ran out), one binds and asks for the build.
    if not swap(session, seen, task_state=TaskState.SPAWNING):
        return False
    devices = claims.instance_devices_in(session.connection(), uuid)
    ports = bind_ports(session, uuid, seen.host, devices, qbh_physical_networks)
    instance = session.get(Instance, uuid)
    assert instance is not None
    session.add(
        Task(
            host=seen.host,
            instance_uuid=uuid,
            kind="build",
            state="pending",
            payload=build_payload(session, instance, seen.host, ports, devices),
        )
    )
    events.finish_event(session, uuid, CREATE, EVENT_SCHEDULE, ok=True, final=False)
    events.begin_event(session, uuid, CREATE, EVENT_BUILD, seen.host)
    session.flush()
    return True


def bind_ports(
    session: Session,
    uuid: str,
    host: str,
    devices: Sequence[claims.ClaimedDevice],
    qbh_physical_networks: frozenset[str],
) -> list[Port]:
    """Bind each port of the server: an SR-IOV port to the device of its request."""
    ports = server_ports(session, uuid)
    for port in ports:
        if port.pci_request_id is None:
            bind_normal_port(session, port, host=host)
            continue
        mine = [d for d in devices if d.request_id == port.pci_request_id]
        if len(mine) != 1:
            raise LookupError(f"port {port.id}: {len(mine)} devices claimed for its request")
        device = mine[0]
        bind_sriov_port(
            session,
            port,
            host=host,
            device=device,
            qbh_physical_networks=qbh_physical_networks,
        )
    return ports


def build_payload(
    session: Session,
    instance: Instance,
    host: str,
    ports: Sequence[Port],
    devices: Sequence[claims.ClaimedDevice],
    *,
    start: bool = True,
    disk: MoveDisk | None = None,
) -> dict[str, Any]:
    """What the agent needs to build the domain, so it never reads the store.
    ``start`` False: define it only (a stopped server's move); ``disk``: the
    overlay a cold move's source handed over, taken instead of a fresh one."""
    port_requests = {p.pci_request_id for p in ports if p.pci_request_id}
    image = session.get(Image, instance.image_id) if instance.image_id else None
    details = session.get(ServerDetails, instance.uuid)
    # The flavor as it was at boot (Nova's embedded flavor), not as it is now.
    flavor: dict[str, Any] = dict(details.flavor or {}) if details is not None else {}
    task = BuildTask(
        image=TaskImage(
            id=image.id,
            disk_format=image.disk_format,
            size=image.size,
            checksum=image.checksum,
            os_hash_algo=image.os_hash_algo,
            os_hash_value=image.os_hash_value,
            # what the agent GETs with its host credential (routes/agent_images.py)
            file=f"/pcifleet/v1/hosts/{host}/images/{image.id}/file",
        )
        if image
        else None,
        instance=TaskInstance(
            uuid=instance.uuid,
            name=instance.name,
            vcpus=instance.vcpus,
            memory_mb=instance.memory_mb,
            image_id=instance.image_id,
            numa_cells=None if instance.numa_cells is None else tuple(instance.numa_cells),
            cell_cpus=pinned_cpus(session, instance, host),
            root_gb=_flavor_int(flavor, "disk"),
            project_id=instance.project_id,
            flavor_name=_flavor_text(flavor, "original_name") or _flavor_text(flavor, "name"),
        ),
        ports=tuple(task_port(p) for p in ports),
        devices=tuple(
            TaskDevice(
                address=PciAddress.parse(d.address),
                vendor_id=d.vendor_id,
                product_id=d.product_id,
                dev_type=DevType(d.dev_type),
                parent_addr=None if d.parent_addr is None else PciAddress.parse(d.parent_addr),
                request_id=d.request_id,
                for_port=d.request_id in port_requests,
            )
            for d in devices
        ),
        start=start,
        disk=disk,
    )
    return task.to_dict()


def pinned_cpus(
    session: Session, instance: Instance, host: str
) -> tuple[frozenset[int], ...] | None:
    """With ``hw:cpu_policy=dedicated``, the host CPUs of each cell the server
    was placed on (its vCPUs are pinned there); None otherwise, or when the
    host did not report its cells."""
    if not instance.numa_cells or not server_numa(session, instance.uuid).dedicated:
        return None
    row = session.scalar(select(Host.numa_topology).where(Host.name == host))
    try:
        topology = NumaTopology.from_json(row)
    except InvalidNumaTopology:
        return None
    cells = [topology.cell(n) for n in instance.numa_cells]
    if any(c is None or not c.cpus for c in cells):
        return None
    return tuple(c.cpus for c in cells if c is not None)


def _flavor_int(flavor: dict[str, Any], key: str) -> int | None:
    value = flavor.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _flavor_text(flavor: dict[str, Any], key: str) -> str | None:
    value = flavor.get(key)
    return value if isinstance(value, str) and value else None


def task_port(port: Port) -> TaskPort:
    """The port as the build task carries it.

    An SR-IOV port's binding was written by ``bind_ports`` just before and is read
    into its typed fields; any other port's binding belongs to the network backend
    and goes as the JSON it is (the agent judges it; a bad one fails the build,
    not this transaction).
    """
    bridge = None
    if port.vnic_type == "normal":
        profile = BindingProfile(extra=dict(port.binding_profile or {}))
        raw = dict(port.vif_details or {})
        if port.vif_type == "bridge":
            # written by bind_normal_port just before, so it reads back typed
            bridge, raw = BridgeBinding.split(raw, "binding:vif_details")
        details = VifDetails(extra=raw)
    else:
        profile = BindingProfile.from_dict(port.binding_profile, "binding:profile")
        details = VifDetails.from_dict(port.vif_details, "binding:vif_details")
    return TaskPort(
        id=port.id,
        mac_address=port.mac_address,
        vnic_type=cast(PortVnicType, port.vnic_type),
        network_id=port.network_id,
        pci_request_id=port.pci_request_id,
        profile=profile,
        vif_type=port.vif_type,
        vif_details=details,
        bridge=bridge,
    )


def fail_build(
    session: Session,
    uuid: str,
    message: str,
    *,
    event: str = EVENT_BUILD,
    expect: Seen | None = None,
) -> str | None:
    """A building server goes to ERROR with ``message`` as its fault and gives
    back its claim and bindings (its ports stay attached until it is deleted).

    In the caller's transaction; returns the host whose devices were freed (to
    tell the scheduler after commit), None when nothing was done.
    """
    seen = expect or load(session, uuid)
    if seen is None or seen.vm_state is not VmState.BUILDING:
        return None
    if not swap(
        session,
        seen,
        vm_state=VmState.ERROR,
        task_state=None,
        fault=server_fault(message),
        host=None,
    ):
        return None
    free_devices(session, seen)
    unbind_ports(session, uuid, detach=False)
    cancel_tasks(session, uuid)
    events.finish_event(session, uuid, CREATE, event, ok=False, details=message, host=seen.host)
    return seen.host
