"""Making a network: its shape, Neutron's provider rules and create policy —
one function for ``POST /networks`` with one network or a bulk list."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute.context import Context, new_id, utcnow
from pcifleet.compute.errors import BadRequest, Conflict, Forbidden
from pcifleet.compute.ports import owner_of
from pcifleet.compute.schemas import Description, Id, Name, Strict
from pcifleet.store.cloud import Network

PhysicalNetwork = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


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


ADMIN_ONLY = frozenset({"network_type", "physical_network", "segmentation_id", "router_external"})


def create_network(session: Session, ctx: Context, spec: NetworkCreate) -> Network:
    """A new network after the policy and provider checks; flushed, the caller commits."""
    if (spec.model_fields_set & ADMIN_ONLY or spec.shared) and not ctx.is_admin:
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
    session.flush()
    return net
