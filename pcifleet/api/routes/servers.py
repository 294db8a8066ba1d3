"""Compute servers: create (networks as ports or networks, multi-create), list,
show with host and fault for admins, rename, delete. The work is in
``pcifleet.compute``; scheduling runs as a durable job after the 202."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Request, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api import server_filters
from pcifleet.api.catalog import base_url
from pcifleet.api.deps import (
    Context,
    ContextDep,
    MicroversionDep,
    SessionDep,
    SettingsDep,
    new_id,
    timestamp,
)
from pcifleet.api.errors import BadRequest, NotFound
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.api.paths import flavor_links
from pcifleet.compute import actions as server_actions
from pcifleet.compute import jobs as compute_jobs
from pcifleet.compute import keypairs
from pcifleet.compute.boot import BootRequest, RequestedNetwork, create_servers
from pcifleet.compute.delete import request_delete
from pcifleet.compute.hosts import host_state
from pcifleet.compute.lookup import flavor_snapshot, specs_of, visible_flavor, visible_image
from pcifleet.compute.release import tell_scheduler
from pcifleet.compute.schemas import Strict
from pcifleet.compute.worker import run_job_now
from pcifleet.store.cloud import Image, IpAllocation, Network, Port, ServerDetails
from pcifleet.store.models import Host, Instance

router = APIRouter(tags=["compute"])
Text255 = Annotated[str, Field(max_length=255)]
# Nova shows a server's progress only in the statuses that make progress
PROGRESS_STATUSES = frozenset(
    {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}
)
# Nova's cap on one multi-create request (its quota would stop it sooner)
MAX_COUNT = 64


class NetworkRequest(Strict):
    uuid: Annotated[str | None, Field(min_length=1, max_length=36)] = None
    port: Annotated[str | None, Field(min_length=1, max_length=36)] = None
    fixed_ip: Annotated[str | None, Field(max_length=64)] = None
    tag: Annotated[str | None, Field(max_length=60)] = None


class BlockDevice(Strict):
    uuid: Annotated[str | None, Field(max_length=255)] = None
    boot_index: int | str | None = None
    source_type: Literal["image", "blank"] | None = None
    destination_type: Literal["local"] | None = None
    delete_on_termination: bool | None = None


class SecurityGroupRef(Strict):
    name: Text255


class ServerCreate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    flavorRef: Annotated[str, Field(min_length=1, max_length=255)]  # Nova's name
    imageRef: Annotated[str, Field(max_length=255)] = ""
    networks: (
        Literal["auto", "none"] | Annotated[list[NetworkRequest], Field(max_length=16)] | None
    ) = None
    metadata: Annotated[
        dict[Annotated[str, Field(min_length=1, max_length=255)], Text255], Field(max_length=128)
    ] = Field(default_factory=dict)
    availability_zone: Text255 | None = None
    description: Text255 | None = None
    min_count: Annotated[int, Field(ge=1, le=MAX_COUNT)] = 1
    max_count: Annotated[int, Field(ge=1, le=MAX_COUNT)] | None = None
    adminPass: Text255 | None = None
    key_name: Annotated[str | None, Field(max_length=255)] = None
    user_data: Annotated[str | None, Field(max_length=65535)] = None
    config_drive: bool | str | None = None
    security_groups: Annotated[list[SecurityGroupRef], Field(max_length=8)] | None = None
    block_device_mapping_v2: Annotated[list[BlockDevice], Field(max_length=1)] | None = None
    disk_config: Annotated[Literal["AUTO", "MANUAL"] | None, Field(alias="OS-DCF:diskConfig")] = (
        None
    )
    tags: Annotated[list[Text255], Field(max_length=50)] = Field(default_factory=list)
    return_reservation_id: bool = False
    accessIPv4: IPv4Address | None = None  # Nova's names
    accessIPv6: IPv6Address | None = None


class ServerCreateRequest(Strict):
    server: ServerCreate
    scheduler_hints: Annotated[dict[str, Any] | None, Field(alias="os:scheduler_hints")] = None
    scheduler_hints_ext: Annotated[
        dict[str, Any] | None, Field(alias="OS-SCH-HNT:scheduler_hints")
    ] = None


DISTINCT_PF_HINT = "pcifleet:distinct_pf"


def distinct_pf_hint(hints: dict[str, Any] | None) -> bool:
    """The ``pcifleet:distinct_pf`` scheduler hint: a boolean word (the CLI's
    ``--hint`` sends strings, and a repeated hint comes as a list)."""
    value = (hints or {}).get(DISTINCT_PF_HINT)
    if value is None:
        return False
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str) else ""
    if word in ("true", "yes", "1", "on"):
        return True
    if word in ("false", "no", "0", "off"):
        return False
    raise BadRequest(
        f"Invalid input for field 'os:scheduler_hints': {DISTINCT_PF_HINT} "
        f"({str(value)[:40]!r}) must be true or false"
    )


def server_links(base: str, server_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}{PREFIX}/servers/{server_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/servers/{server_id}"},
    ]


def requested_networks(
    session: Session, ctx: Context, networks: Any, mv: tuple[int, int]
) -> list[RequestedNetwork]:
    if networks is None:
        if mv >= (2, 37):
            raise BadRequest(
                "Invalid input for field 'server.networks': 'networks' is a required property"
            )
        networks = "auto"
    if networks == "none":
        return []
    if networks == "auto":
        # Nova's auto-allocation needs a network ready for the project: use the one
        # there is (a project's own network, else a shared one).
        own = session.scalars(select(Network.id).where(Network.project_id == ctx.project_id)).all()
        shared = session.scalars(select(Network.id).where(Network.shared)).all()
        choice = own or shared
        if len(choice) != 1:
            raise BadRequest(
                "Unable to automatically allocate a network: give networks as a list of "
                "{'uuid': ...} or {'port': ...}, or 'none'"
            )
        return [RequestedNetwork(network_id=choice[0])]
    out = []
    for i, item in enumerate(networks):
        if (item.port is None) == (item.uuid is None) and item.port is None:
            raise BadRequest(
                f"Invalid input for field 'server.networks[{i}]': give 'uuid' or 'port'"
            )
        if item.port is not None:
            out.append(RequestedNetwork(port_id=item.port))
        else:
            out.append(RequestedNetwork(network_id=item.uuid, fixed_ip=item.fixed_ip))
    return out


@router.post(PREFIX + "/servers", status_code=202)
def create_server(
    body: ServerCreateRequest,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    spec = body.server
    if spec.description is not None and mv < (2, 19):
        raise BadRequest("Additional properties are not allowed ('description' was unexpected)")
    flavor = _resolve(
        lambda: visible_flavor(session, ctx, spec.flavorRef), f"Flavor {spec.flavorRef[:64]}"
    )
    image_id = spec.imageRef or next(
        (b.uuid for b in spec.block_device_mapping_v2 or [] if b.source_type == "image" and b.uuid),
        "",
    )
    if not image_id:
        raise BadRequest(
            "Invalid input for field 'server.imageRef': an image is required "
            "(volumes are not supported)"
        )
    image_ref = image_id.rstrip("/").rsplit("/", 1)[-1]
    image: Image = _resolve(
        lambda: visible_image(session, ctx, image_ref), f"Image {image_ref[:64]}"
    )
    if image.status != "active":
        raise BadRequest(f"Image {image.id} is not active.")
    if flavor.ram < image.min_ram:
        raise BadRequest("Flavor's memory is too small for requested image.")
    if flavor.disk and flavor.disk < image.min_disk:
        raise BadRequest("Flavor's disk is too small for requested image.")
    for group in spec.security_groups or []:
        # every port has the one default group; any other name does not exist
        if group.name != "default":
            raise BadRequest(
                f"Security group {group.name[:64]} not found for project {ctx.project_id}."
            )
    if spec.availability_zone not in (None, "", "nova"):
        raise BadRequest(
            f"The requested availability zone is not available: {spec.availability_zone[:64]}"
        )
    key = keypairs.for_boot(session, ctx.user_id, spec.key_name) if spec.key_name else None
    wanted = requested_networks(session, ctx, spec.networks, mv)
    max_count = spec.max_count if spec.max_count is not None else spec.min_count
    instances = create_servers(
        session,
        ctx,
        BootRequest(
            name=spec.name,
            flavor=flavor,
            image=image,
            networks=wanted,
            extra_specs=specs_of(flavor),
            aliases=settings.aliases,
            alias_source=settings.alias_source,
            flavor_snapshot=flavor_snapshot(flavor),
            metadata=dict(spec.metadata),
            description=spec.description,
            min_count=spec.min_count,
            max_count=max_count,
            request_id=request_id_of(request),
            access_ip_v4=str(spec.accessIPv4) if spec.accessIPv4 else None,
            access_ip_v6=str(spec.accessIPv6) if spec.accessIPv6 else None,
            key_name=key.name if key else None,
            key_data=key.public_key if key else None,
            distinct_pf=distinct_pf_hint(body.scheduler_hints or body.scheduler_hints_ext),
            qbh_physical_networks=settings.qbh_physical_networks,
        ),
    )
    session.commit()
    job_ids = compute_jobs.pending_ids(session, instances[0].reservation_id or "")
    session.close()
    if settings.run_jobs_inline:
        for job_id in job_ids:
            background.add_task(
                run_job_now, request.app.state.engine, job_id, settings.compute_config()
            )
    else:
        worker = getattr(request.app.state, "worker", None)
        if worker is not None:
            worker.kick()
    if spec.return_reservation_id:
        return {"reservation_id": instances[0].reservation_id}
    first = instances[0]
    return {
        "server": {
            "id": first.uuid,
            "links": server_links(base_url(request, settings), first.uuid),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{"name": "default"}],
            "adminPass": spec.adminPass or secrets.token_urlsafe(9),
        }
    }


def request_id_of(request: Request) -> str:
    """The request id the middleware gave this request (x-openstack-request-id)."""
    found = getattr(request.state, "request_id", None)
    return str(found) if found else f"req-{new_id()}"


def _resolve(load: Any, what: str) -> Any:
    """Nova answers 400 (not 404) for a missing flavor or image in a create."""
    try:
        return load()
    except NotFound:
        raise BadRequest(f"{what} could not be found.") from None


def _when(t: datetime | None) -> str | None:
    return timestamp(t) if t else None


def addresses_of(session: Session, uuids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Nova's ``addresses`` (fixed IPs by network name) of each server, read in
    one query: a list of a thousand servers needs only their ports' addresses."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {u: {} for u in uuids}
    if not uuids:
        return found
    rows = session.execute(
        select(
            Port.device_id, Port.network_id, Port.mac_address, Network.name, IpAllocation.ip_address
        )
        .join(IpAllocation, IpAllocation.port_id == Port.id)
        .outerjoin(Network, Network.id == Port.network_id)
        .where(Port.device_id.in_(uuids))
        .order_by(Port.created_at, Port.id, IpAllocation.ip_address)
    )
    for device_id, network_id, mac, network_name, ip in rows:
        found[device_id].setdefault(network_name or network_id, []).append(
            {
                "version": 6 if ":" in ip else 4,
                "addr": ip,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": mac,
            }
        )
    return found


def server_view(
    session: Session,
    inst: Instance,
    ctx: Context,
    mv: tuple[int, int],
    base: str,
    down_after: float = 60.0,
    loaded: Preloaded | None = None,
) -> dict[str, Any]:
    """Nova's server view; ``loaded`` holds what a list read for all its servers at once."""
    found = loaded.details.get(inst.uuid) if loaded else session.get(ServerDetails, inst.uuid)
    details = found or ServerDetails(metadata_={}, flavor={})
    snapshot = details.flavor or {}
    if mv >= (2, 47):
        flavor: dict[str, Any] = {k: v for k, v in snapshot.items() if k != "id"}
    else:
        flavor = {"id": inst.flavor_id, "links": flavor_links(base, inst.flavor_id or "")}
    host = inst.host or ""
    view: dict[str, Any] = {
        "id": inst.uuid,
        "name": inst.name,
        "status": inst.status,
        "tenant_id": inst.project_id,
        "user_id": inst.user_id,
        "metadata": details.metadata_ or {},
        "hostId": hashlib.sha224(f"{inst.project_id}{host}".encode()).hexdigest() if host else "",
        "image": {
            "id": inst.image_id,
            "links": [{"rel": "bookmark", "href": f"{base}/compute/images/{inst.image_id}"}],
        },
        "flavor": flavor,
        "created": _when(inst.created_at),
        "updated": _when(inst.updated_at),
        "addresses": (
            loaded.addresses[inst.uuid] if loaded else addresses_of(session, [inst.uuid])[inst.uuid]
        ),
        "accessIPv4": details.access_ip_v4 or "",
        "accessIPv6": details.access_ip_v6 or "",
        "links": server_links(base, inst.uuid),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": details.availability_zone or "nova",
        "config_drive": "",
        "key_name": details.key_name,
        "OS-SRV-USG:launched_at": _when(details.launched_at),
        "OS-SRV-USG:terminated_at": _when(inst.deleted_at),
        "OS-EXT-STS:task_state": inst.task_state,
        "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
    }
    if inst.status in PROGRESS_STATUSES:
        view["progress"] = 0
    if mv >= (2, 9):
        view["locked"] = False
    if mv >= (2, 19):
        view["description"] = details.description
    if mv >= (2, 26):
        view["tags"] = []
    if mv >= (2, 63):
        view["trusted_image_certificates"] = None
    if mv >= (2, 71):
        view["server_groups"] = []
    if mv >= (2, 73):
        view["locked_reason"] = None
    if inst.status == "ERROR" and inst.fault:
        fault = {k: inst.fault.get(k) for k in ("code", "message", "created")}
        if ctx.is_admin:
            fault["details"] = inst.fault.get("details", "")
        view["fault"] = fault
    if ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = inst.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.host
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.uuid}"
        if mv >= (2, 3):
            view["OS-EXT-SRV-ATTR:hostname"] = inst.name
            view["OS-EXT-SRV-ATTR:reservation_id"] = inst.reservation_id or ""
            view["OS-EXT-SRV-ATTR:launch_index"] = inst.launch_index
            view["OS-EXT-SRV-ATTR:kernel_id"] = ""
            view["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
            view["OS-EXT-SRV-ATTR:root_device_name"] = None
            view["OS-EXT-SRV-ATTR:user_data"] = None
        if mv >= (2, 16):
            view["host_status"] = _host_status(session, inst.host, down_after, loaded)
    return view


def _host_status(
    session: Session, host: str | None, down_after: float, loaded: Preloaded | None = None
) -> str:
    """Nova's host_status: UP while the host's agent reports, DOWN once it stops."""
    if not host:
        return ""
    if loaded is not None:
        row = loaded.hosts.get(host)
    else:
        row = session.scalar(select(Host).where(Host.name == host))
    if row is None:
        return "UNKNOWN"
    if row.state != "enabled":
        return "MAINTENANCE"
    return host_state(row.last_report_at, down_after).upper()


def visible_server(session: Session, ctx: Context, server_id: str) -> Instance:
    inst = session.get(Instance, server_id)
    if inst is None or inst.status == "DELETED" or not ctx.may_see(inst.project_id or ""):
        raise NotFound(f"Instance {server_id[:64]} could not be found.")
    return inst


def _list(request: Request, session: Session, ctx: Context) -> list[Instance]:
    return server_filters.list_servers(session, ctx, request.query_params)


@dataclass
class Preloaded:
    """What the views of a page of servers need, read in one query per table
    instead of a few per server."""

    details: dict[str, ServerDetails] = field(default_factory=dict)
    addresses: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)


def preload(session: Session, servers: list[Instance]) -> Preloaded:
    uuids = [s.uuid for s in servers]
    if not uuids:
        return Preloaded()
    loaded = Preloaded(addresses=addresses_of(session, uuids))
    loaded.details = {
        d.instance_uuid: d
        for d in session.scalars(
            select(ServerDetails).where(ServerDetails.instance_uuid.in_(uuids))
        )
    }
    names = {s.host for s in servers if s.host}
    if names:
        loaded.hosts = {
            h.name: h for h in session.scalars(select(Host).where(Host.name.in_(names)))
        }
    return loaded


@router.get(PREFIX + "/servers")
def list_servers(
    request: Request, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> dict[str, Any]:
    base = base_url(request, settings)
    page = _list(request, session, ctx)
    return {
        "servers": [
            {"id": s.uuid, "name": s.name, "links": server_links(base, s.uuid)} for s in page
        ]
    }


@router.get(PREFIX + "/servers/detail")
def list_servers_detail(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    base = base_url(request, settings)
    page = _list(request, session, ctx)
    loaded = preload(session, page)
    down_after = settings.host_down_after_seconds
    return {"servers": [server_view(session, s, ctx, mv, base, down_after, loaded) for s in page]}


@router.get(PREFIX + "/servers/{server_id}")
def show_server(
    server_id: str, request: Request, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    inst = visible_server(session, ctx, server_id)
    return {
        "server": server_view(
            session, inst, ctx, mv, base_url(request, settings), settings.host_down_after_seconds
        )
    }


@router.delete(PREFIX + "/servers/{server_id}", status_code=204)
def delete_server(
    server_id: str, request: Request, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> Response:
    inst = visible_server(session, ctx, server_id)
    freed = request_delete(
        session,
        inst.uuid,
        request_id=request_id_of(request),
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        host_down_after=settings.host_down_after_seconds,
    )
    session.commit()
    tell_scheduler(request.app.state.engine, freed)
    return Response(status_code=204)


class ServerUpdate(Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    description: Annotated[str | None, Field(max_length=255)] = None
    accessIPv4: IPv4Address | None = None  # Nova's names
    accessIPv6: IPv6Address | None = None
    disk_config: Annotated[Literal["AUTO", "MANUAL"] | None, Field(alias="OS-DCF:diskConfig")] = (
        None
    )


class ServerUpdateRequest(Strict):
    server: ServerUpdate


@router.put(PREFIX + "/servers/{server_id}")
def update_server(
    server_id: str,
    body: ServerUpdateRequest,
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Rename (and, from 2.19, describe) a server; no host work is involved."""
    inst = visible_server(session, ctx, server_id)
    given = body.server.model_fields_set
    if "description" in given and mv < (2, 19):
        raise BadRequest("Additional properties are not allowed ('description' was unexpected)")
    if body.server.name is not None:
        inst = server_actions.rename(session, inst.uuid, body.server.name)
    details = session.get(ServerDetails, inst.uuid)
    if details is not None:
        if "description" in given:
            details.description = body.server.description
        if "accessIPv4" in given:
            details.access_ip_v4 = str(body.server.accessIPv4) if body.server.accessIPv4 else None
        if "accessIPv6" in given:
            details.access_ip_v6 = str(body.server.accessIPv6) if body.server.accessIPv6 else None
    session.commit()
    view = server_view(
        session, inst, ctx, mv, base_url(request, settings), settings.host_down_after_seconds
    )
    return {"server": update_view(view, mv)}


# What Nova's update answer leaves out before 2.75 (strict clients refuse them
# there); from 2.75 it is the whole server, as show answers.
UPDATE_OMITS = ("OS-EXT-", "OS-SRV-USG:", "os-extended-volumes:")
UPDATE_OMITS_KEYS = {"config_drive", "key_name", "security_groups", "host_status"}


def update_view(view: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    if mv >= (2, 75):
        return view
    return {
        k: v
        for k, v in view.items()
        if k not in UPDATE_OMITS_KEYS and not k.startswith(UPDATE_OMITS)
    }


def _basic(addresses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nova's view of addresses under ``ips``: ``version`` and ``addr`` only (the
    ``OS-EXT-IPS`` keys are the server view's)."""
    return [{"version": a["version"], "addr": a["addr"]} for a in addresses]


@router.get(PREFIX + "/servers/{server_id}/ips")
def server_ips(server_id: str, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    inst = visible_server(session, ctx, server_id)
    found = addresses_of(session, [inst.uuid])[inst.uuid]
    return {"addresses": {label: _basic(addrs) for label, addrs in found.items()}}


@router.get(PREFIX + "/servers/{server_id}/ips/{network_label}")
def server_ips_on_network(
    server_id: str, network_label: str, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    """One network's addresses, keyed by its label, as ``ips`` shows them."""
    inst = visible_server(session, ctx, server_id)
    found = addresses_of(session, [inst.uuid])[inst.uuid].get(network_label)
    if found is None:
        raise NotFound("Instance is not a member of specified network")
    return {network_label: _basic(found)}
