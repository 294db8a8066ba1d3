"""Compute servers: create (networks as ports or networks, multi-create), list,
show with host and fault for admins, rename, delete. The work is in
``pcifleet.compute``; scheduling runs as a durable job after the 202."""

from __future__ import annotations

import secrets
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
)
from pcifleet.api.errors import BadRequest, NotFound
from pcifleet.api.fast_json import json_response
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.api.server_views import (
    ServerRow,
    ViewParts,
    addresses_of,
    one_view,
    server_links,
    server_query,
    server_row,
    server_views,
    update_view,
)
from pcifleet.api.settings import ApiSettings
from pcifleet.compute import actions as server_actions
from pcifleet.compute import jobs as compute_jobs
from pcifleet.compute import keypairs
from pcifleet.compute.boot import BootRequest, RequestedNetwork, create_servers
from pcifleet.compute.delete import request_delete
from pcifleet.compute.locks import refuse_if_locked
from pcifleet.compute.lookup import flavor_snapshot, specs_of, visible_flavor, visible_image
from pcifleet.compute.release import tell_scheduler
from pcifleet.compute.schemas import Strict
from pcifleet.compute.worker import run_job_now
from pcifleet.store.cloud import Image, Network, ServerDetails
from pcifleet.store.models import Instance

router = APIRouter(tags=["compute"])
Text255 = Annotated[str, Field(max_length=255)]
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
            user_data=spec.user_data,
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
    answer: dict[str, Any] = {
        "id": first.uuid,
        "links": server_links(base_url(request, settings), first.uuid),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
    }
    if settings.enable_instance_password:
        answer["adminPass"] = spec.adminPass or secrets.token_urlsafe(9)
    return {"server": answer}


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


def visible_server(session: Session, ctx: Context, server_id: str) -> ServerRow:
    """The view's row of a server the caller may see; 404 otherwise."""
    row = server_row(session, server_id)
    if row is None or row.status == "DELETED" or not ctx.may_see(row.project_id or ""):
        raise NotFound(f"Instance {server_id[:64]} could not be found.")
    return row


def view_parts(
    request: Request, ctx: Context, mv: tuple[int, int], settings: ApiSettings
) -> ViewParts:
    return ViewParts(ctx, mv, base_url(request, settings), settings.host_down_after_seconds)


ID_LIST = server_filters.ServerList(select(Instance.uuid, Instance.name))
DETAIL_LIST = server_filters.ServerList(server_query())


# The lists answer plain dicts encoded by orjson (pcifleet.api.fast_json); the
# declared model stays for the OpenAPI document. They close their session once
# the rows are read: the connection goes back before the answer is encoded,
# and get_session has no connection left to give back on another thread.
@router.get(PREFIX + "/servers", response_model=dict[str, Any])
def list_servers(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> Response:
    base = base_url(request, settings)
    page = server_filters.list_servers(session, ctx, request.query_params, ID_LIST, mv)
    session.close()
    return json_response(
        {
            "servers": [
                {"id": s.uuid, "name": s.name, "links": server_links(base, s.uuid)} for s in page
            ]
        }
    )


@router.get(PREFIX + "/servers/detail", response_model=dict[str, Any])
def list_servers_detail(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    mv: MicroversionDep,
    settings: SettingsDep,
) -> Response:
    page = server_filters.list_servers(session, ctx, request.query_params, DETAIL_LIST, mv)
    views = server_views(session, page, view_parts(request, ctx, mv, settings))
    session.close()
    return json_response({"servers": views})


@router.get(PREFIX + "/servers/{server_id}")
def show_server(
    server_id: str, request: Request, session: SessionDep, ctx: ContextDep, mv: MicroversionDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    row = visible_server(session, ctx, server_id)
    return {"server": one_view(session, row, view_parts(request, ctx, mv, settings))}


@router.delete(PREFIX + "/servers/{server_id}", status_code=204)
def delete_server(
    server_id: str, request: Request, session: SessionDep, ctx: ContextDep, settings: SettingsDep
) -> Response:
    inst = visible_server(session, ctx, server_id)
    refuse_if_locked(inst, ctx)
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
    uuid = visible_server(session, ctx, server_id).uuid
    given = body.server.model_fields_set
    if "description" in given and mv < (2, 19):
        raise BadRequest("Additional properties are not allowed ('description' was unexpected)")
    if body.server.name is not None:
        server_actions.rename(session, uuid, body.server.name)
    details = session.get(ServerDetails, uuid)
    if details is not None:
        if "description" in given:
            details.description = body.server.description
        if "accessIPv4" in given:
            details.access_ip_v4 = str(body.server.accessIPv4) if body.server.accessIPv4 else None
        if "accessIPv6" in given:
            details.access_ip_v6 = str(body.server.accessIPv6) if body.server.accessIPv6 else None
    session.commit()
    row = server_row(session, uuid)
    if row is None:  # deleted meanwhile
        raise NotFound(f"Instance {uuid} could not be found.")
    view = one_view(session, row, view_parts(request, ctx, mv, settings))
    return {"server": update_view(view, mv)}


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
