"""Networking v2.0: version discovery, extensions and networks with provider
attributes (flat or vlan on a physical network, set by admins only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.catalog import base_url
from pcifleet.api.db_paging import db_page
from pcifleet.api.deps import (
    Context,
    ContextDep,
    SessionDep,
    SettingsDep,
    new_id,
    timestamp,
    utcnow,
)
from pcifleet.api.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.api.listing import select_fields
from pcifleet.api.paths import NETWORK as PREFIX
from pcifleet.compute.ports import owner_of, visible_network
from pcifleet.compute.schemas import Description, Id, Name, Strict
from pcifleet.store.cloud import Network, Port, Subnet

router = APIRouter(tags=["networking"])
NETWORK_TYPES = ("flat", "vlan")
PhysicalNetwork = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
EXTENSIONS = (
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("external-net", "Neutron external network", "Adds external network attribute"),
    ("port-security", "Port Security", "Provides port security"),
    ("project-id", "project_id field enabled", "Extension that indicates project_id is enabled"),
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions"),
    (
        "port-numa-affinity-policy",
        "Port NUMA affinity policy",
        "Expose the port NUMA affinity policy",
    ),
    ("port-trusted-vif", "Port trusted vif", "Expose port 'trusted' attribute"),
    (
        "port-numa-affinity-policy-socket",
        'Port NUMA affinity policy "socket"',
        'Adds "socket" to the port NUMA affinity policies',
    ),
)


@router.get("/networking")
def versions(request: Request, settings: SettingsDep) -> dict[str, Any]:
    href = f"{base_url(request, settings)}/networking/v2.0/"
    return {
        "versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"href": href, "rel": "self"}]}]
    }


@router.get(PREFIX)
def resources(request: Request, settings: SettingsDep) -> dict[str, Any]:
    base = f"{base_url(request, settings)}{PREFIX}"
    return {
        "resources": [
            {"name": n, "collection": f"{n}s", "links": [{"href": f"{base}/{n}s", "rel": "self"}]}
            for n in ("network", "subnet", "port")
        ]
    }


def _extension(alias: str, name: str, description: str) -> dict[str, Any]:
    # one shape for the list and the show: clients read ``updated`` from both
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": "2013-01-01T10:00:00-00:00",
        "links": [],
    }


@router.get(f"{PREFIX}/extensions")
def extensions(ctx: ContextDep) -> dict[str, Any]:
    return {"extensions": [_extension(a, n, d) for a, n, d in EXTENSIONS]}


@router.get(PREFIX + "/extensions/{alias}")
def extension(alias: str, ctx: ContextDep) -> dict[str, Any]:
    for a, n, d in EXTENSIONS:
        if a == alias:
            return {"extension": _extension(a, n, d)}
    raise NotFound(f"Extension with alias {alias[:64]} does not exist", kind="ExtensionNotFound")


# --- shapes -------------------------------------------------------------------


class NetworkCreate(Strict):
    name: Name = ""
    description: Description = ""
    admin_state_up: bool = True
    shared: bool = False
    router_external: Annotated[bool, Field(alias="router:external")] = False
    mtu: Annotated[int, Field(ge=68, le=9216)] = 1500
    network_type: Annotated[
        Literal["flat", "vlan"] | None, Field(alias="provider:network_type")
    ] = None
    physical_network: Annotated[
        PhysicalNetwork | None, Field(alias="provider:physical_network")
    ] = None
    segmentation_id: Annotated[
        int | None, Field(alias="provider:segmentation_id", ge=1, le=4094)
    ] = None
    port_security_enabled: bool = True
    availability_zone_hints: Annotated[
        list[Annotated[str, Field(max_length=255)]], Field(max_length=8)
    ] = Field(default_factory=list)
    project_id: Id | None = None
    tenant_id: Id | None = None


class NetworkUpdate(Strict):
    name: Name | None = None
    description: Description | None = None
    admin_state_up: bool | None = None
    shared: bool | None = None
    router_external: Annotated[bool | None, Field(alias="router:external")] = None
    mtu: Annotated[int | None, Field(ge=68, le=9216)] = None
    port_security_enabled: bool | None = None


class NetworkCreateRequest(Strict):
    network: NetworkCreate


class NetworkUpdateRequest(Strict):
    network: NetworkUpdate


def network_view(session: Session, net: Network, ctx: Context) -> dict[str, Any]:
    return network_views(session, [net], ctx)[0]


def network_views(session: Session, nets: Sequence[Network], ctx: Context) -> list[dict[str, Any]]:
    """The views of ``nets``, their subnets read in one query."""
    subnets: dict[str, list[str]] = {n.id: [] for n in nets}
    rows = session.execute(
        select(Subnet.network_id, Subnet.id)
        .where(Subnet.network_id.in_(list(subnets)))
        .order_by(Subnet.created_at, Subnet.id)
    )
    for network_id, subnet_id in rows:
        subnets[network_id].append(subnet_id)
    return [_network_view(n, subnets[n.id], ctx) for n in nets]


def _network_view(net: Network, subnets: list[str], ctx: Context) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": net.id,
        "name": net.name,
        "description": net.description,
        "tenant_id": net.project_id,
        "project_id": net.project_id,
        "admin_state_up": net.admin_state_up,
        "status": net.status,
        "subnets": subnets,
        "shared": net.shared,
        "router:external": net.external,
        "mtu": net.mtu,
        "port_security_enabled": True,
        "availability_zone_hints": [],
        "availability_zones": ["nova"],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "is_default": False,
        "l2_adjacency": True,
        "tags": [],
        "revision_number": 0,
        "created_at": timestamp(net.created_at),
        "updated_at": timestamp(net.updated_at),
    }
    if ctx.is_admin:  # Neutron's policy shows provider attributes to admins only
        view["provider:network_type"] = net.network_type
        view["provider:physical_network"] = net.physical_network
        view["provider:segmentation_id"] = net.segmentation_id
    return view


def check_provider(session: Session, body: NetworkCreate) -> tuple[str, str | None, int | None]:
    """The provider triple after Neutron's rules; 400/409 naming the field."""
    kind, physnet, seg = body.network_type, body.physical_network, body.segmentation_id
    if kind is None:
        if physnet is not None or seg is not None:
            raise BadRequest("provider:network_type is required with the other provider attributes")
        return "local", None, None
    if physnet is None:
        raise BadRequest(f"provider:physical_network is required for a {kind} network")
    if kind == "flat":
        if seg is not None:
            raise BadRequest("provider:segmentation_id is not allowed for a flat network")
        clash = select(Network.id).where(
            Network.network_type == "flat", Network.physical_network == physnet
        )
        if session.scalar(clash) is not None:
            raise Conflict(
                f"Unable to create the flat network. Physical network {physnet} is in use.",
                kind="FlatNetworkInUse",
            )
        return kind, physnet, None
    if seg is None:
        raise BadRequest("provider:segmentation_id (1..4094) is required for a vlan network")
    clash = select(Network.id).where(
        Network.network_type == "vlan",
        Network.physical_network == physnet,
        Network.segmentation_id == seg,
    )
    if session.scalar(clash) is not None:
        raise Conflict(
            f"Unable to create the network. The VLAN {seg} on physical network {physnet} "
            "is in use.",
            kind="VlanIdInUse",
        )
    return kind, physnet, seg


@router.post(f"{PREFIX}/networks", status_code=201)
def create_network(
    body: NetworkCreateRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    spec = body.network
    given = spec.model_fields_set
    admin_only = {"network_type", "physical_network", "segmentation_id", "router_external"}
    if (given & admin_only or spec.shared) and not ctx.is_admin:
        raise Forbidden(
            "(rule:create_network:provider:physical_network) is disallowed by policy: "
            "provider attributes, shared and router:external are admin-only"
        )
    kind, physnet, seg = check_provider(session, spec)
    now = utcnow()
    net = Network(
        id=new_id(),
        project_id=owner_of(ctx, spec.project_id, spec.tenant_id),
        name=spec.name,
        description=spec.description,
        admin_state_up=spec.admin_state_up,
        shared=spec.shared,
        external=spec.router_external,
        mtu=spec.mtu,
        status="ACTIVE",
        network_type=kind,
        physical_network=physnet,
        segmentation_id=seg,
        created_at=now,
        updated_at=now,
    )
    session.add(net)
    session.commit()
    return {"network": network_view(session, net, ctx)}


# the filters a column answers exactly; the rest are matched on the views
NETWORK_SQL_FILTERS = {
    "id": Network.id,
    "name": Network.name,
    "project_id": Network.project_id,
    "tenant_id": Network.project_id,
    "status": Network.status,
}


@router.get(f"{PREFIX}/networks")
def list_networks(request: Request, session: SessionDep, ctx: ContextDep) -> dict[str, Any]:
    query = select(Network)
    if not ctx.is_admin:
        # Neutron shows external networks to every project (read only)
        query = query.where(
            (Network.project_id == ctx.project_id) | Network.shared | Network.external
        )
    page = db_page(
        session,
        query,
        request.query_params,
        lambda rows: network_views(session, [row[0] for row in rows], ctx),
        id_column=Network.id,
        order=(Network.created_at, Network.id),
        sql_filters=NETWORK_SQL_FILTERS,
    )
    return {"networks": page}


@router.get(PREFIX + "/networks/{network_id}")
def show_network(
    network_id: str, request: Request, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    net = session.get(Network, network_id)
    if net is None or not net.external:
        net = visible_network(session, ctx, network_id)
    return {"network": select_fields(network_view(session, net, ctx), request.query_params)}


@router.put(PREFIX + "/networks/{network_id}")
def update_network(
    network_id: str, body: NetworkUpdateRequest, session: SessionDep, ctx: ContextDep
) -> dict[str, Any]:
    net = visible_network(session, ctx, network_id)
    if not ctx.may_see(net.project_id):
        raise Forbidden("A shared network may be changed by its owner or an admin only.")
    spec = body.network
    if spec.shared is not None and spec.shared != net.shared and not ctx.is_admin:
        raise Forbidden("(rule:update_network:shared) is disallowed by policy")
    if spec.router_external is not None and spec.router_external != net.external:
        if not ctx.is_admin:
            raise Forbidden("(rule:update_network:router:external) is disallowed by policy")
        net.external = spec.router_external
    for field in ("name", "description", "admin_state_up", "shared", "mtu"):
        value = getattr(spec, field)
        if value is not None:
            setattr(net, field, value)
    net.updated_at = utcnow()
    session.commit()
    return {"network": network_view(session, net, ctx)}


@router.delete(PREFIX + "/networks/{network_id}", status_code=204)
def delete_network(network_id: str, session: SessionDep, ctx: ContextDep) -> Response:
    net = visible_network(session, ctx, network_id)
    if not ctx.may_see(net.project_id):
        raise Forbidden("A shared network may be deleted by its owner or an admin only.")
    in_use = session.scalar(select(Port.id).where(Port.network_id == net.id).limit(1))
    if in_use is not None:
        raise Conflict(
            f"Unable to complete operation on network {net.id}. There are one or more ports "
            "still in use on the network.",
            kind="NetworkInUse",
        )
    session.delete(net)
    session.commit()
    return Response(status_code=204)
