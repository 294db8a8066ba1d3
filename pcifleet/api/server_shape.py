"""The PCI requests, vCPUs and RAM of a server that is not booted yet: what
the capacity and explain-boot questions of ``/pcifleet/v1`` are asked about.

A shape is a flavor (its vCPUs, RAM and ``pci_passthrough:alias``), existing
ports (by name or id: their network's physical network and vnic_type), and
ports described as ``physnet:vnic_type``. Each bad part is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pcifleet.api.errors import BadRequest, NotFound
from pcifleet.compute.boot import port_label
from pcifleet.pci import (
    SRIOV_VNIC_TYPES,
    Alias,
    InvalidAlias,
    InvalidPciRequest,
    PciRequest,
    request_for_port,
    requests_from_flavor,
)
from pcifleet.store.cloud import Flavor, Network, Port


@dataclass(slots=True)
class ServerShape:
    requests: list[PciRequest] = field(default_factory=list)
    vcpus: int = 0
    memory_mb: int = 0

    @property
    def empty(self) -> bool:
        return not self.requests and not self.vcpus and not self.memory_mb


def _flavor(
    session: Session,
    shape: ServerShape,
    flavor: str,
    aliases: Mapping[str, list[Alias]],
    alias_source: str,
) -> None:
    row = session.get(Flavor, flavor) or session.scalar(select(Flavor).where(Flavor.name == flavor))
    if row is None:
        raise NotFound(f"flavor {flavor[:64]!r} is not known", kind="pcifleet.flavor_not_found")
    shape.vcpus, shape.memory_mb = row.vcpus, row.ram
    try:
        shape.requests += requests_from_flavor(
            {s.key: s.value for s in row.extra_specs}, aliases, source=alias_source
        )
    except (InvalidAlias, InvalidPciRequest) as exc:
        raise BadRequest(f"flavor {row.name}: {exc}") from None


def _port(session: Session, shape: ServerShape, i: int, wanted: str) -> None:
    found = session.scalars(select(Port).where(or_(Port.id == wanted, Port.name == wanted))).all()
    if not found:
        raise NotFound(
            f"ports[{i}]: port {wanted[:64]!r} is not known", kind="pcifleet.port_not_found"
        )
    if len(found) > 1:
        raise BadRequest(f"ports[{i}]: {len(found)} ports are named {wanted[:64]!r}; give its id")
    port = found[0]
    if port.vnic_type not in SRIOV_VNIC_TYPES:
        return  # a normal port needs no PCI device
    network = session.get(Network, port.network_id)
    assert network is not None  # ports cascade with their network
    request = request_for_port(network.physical_network, port.vnic_type)
    request.label = port_label(port)
    shape.requests.append(request)


def server_shape(
    session: Session,
    *,
    flavor: str | None,
    ports: Sequence[str] = (),
    sriov_ports: Sequence[str] = (),
    aliases: Mapping[str, list[Alias]],
    alias_source: str,
) -> ServerShape:
    """The shape from the query's parts; a 400 or 404 names the part that is wrong."""
    shape = ServerShape()
    if flavor is not None:
        _flavor(session, shape, flavor, aliases, alias_source)
    for i, wanted in enumerate(ports):
        _port(session, shape, i, wanted)
    for i, item in enumerate(sriov_ports):
        physnet, _, vnic_type = item.partition(":")
        try:
            request = request_for_port(physnet or None, vnic_type or "direct")
        except InvalidPciRequest as exc:
            raise BadRequest(f"sriov_ports[{i}]: {exc}") from None
        request.label = f"sriov_ports[{i}] port"
        shape.requests.append(request)
    return shape
