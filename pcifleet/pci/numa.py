"""NUMA: a host's cells as its agent reports them, and what a server asks of them.

A host reports its cells from ``/sys/devices/system/node`` (CPUs, memory, and
the socket its CPUs sit in). A server asks with its flavor's extra specs
``hw:numa_nodes`` (how many host cells it spans), ``hw:cpu_policy``
(``dedicated`` pins its vCPUs and implies one cell, as in Nova) and
``hw:pci_numa_affinity_policy`` (or the image property
``hw_pci_numa_affinity_policy``), which sets the NUMA policy of its PCI
requests; a port's own ``numa_affinity_policy`` wins for that port's request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pcifleet.pci.alias import NumaPolicy
from pcifleet.pci.errors import InvalidNumaRequest, InvalidNumaTopology
from pcifleet.pci.ranges import format_index_list, parse_index_list
from pcifleet.pci.request import PciRequest

NUMA_NODES_SPEC = "hw:numa_nodes"
CPU_POLICY_SPEC = "hw:cpu_policy"
PCI_NUMA_POLICY_SPEC = "hw:pci_numa_affinity_policy"
PCI_NUMA_POLICY_PROPERTY = "hw_pci_numa_affinity_policy"
CPU_POLICIES = ("shared", "dedicated")
# The kernel's MAX_NUMNODES is at most 1024 and CPU ids stay below 8192 on any
# machine Linux runs on; larger numbers are a broken or hostile report.
MAX_NODE = 1023
MAX_CPU = 8191
# A guest spread over more cells than this is a typo, not a server.
MAX_GUEST_NODES = 8


def _int(value: Any, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise InvalidNumaTopology(f"{field} must be an integer from 0 to {maximum}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class NumaCell:
    """One host NUMA node: its CPUs, its memory, and its socket when known."""

    id: int
    cpus: frozenset[int]
    memory_mb: int
    socket: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cpus": format_index_list(self.cpus),
            "memory_mb": self.memory_mb,
            "socket": self.socket,
        }

    @classmethod
    def from_dict(cls, data: Any, field: str = "cell") -> NumaCell:
        if not isinstance(data, Mapping):
            raise InvalidNumaTopology(f"{field} must be an object, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - {"id", "cpus", "memory_mb", "socket"})
        if unknown:
            raise InvalidNumaTopology(f"{field}: unknown field(s) {', '.join(unknown)}")
        socket = data.get("socket")
        return cls(
            id=_int(data.get("id"), f"{field}.id", MAX_NODE),
            cpus=parse_index_list(
                data.get("cpus", ""), f"{field}.cpus", MAX_CPU, InvalidNumaTopology
            ),
            memory_mb=_int(data.get("memory_mb", 0), f"{field}.memory_mb", 2**40),
            socket=None if socket is None else _int(socket, f"{field}.socket", MAX_NODE),
        )


@dataclass(frozen=True, slots=True)
class NumaTopology:
    """A host's NUMA cells, by id."""

    cells: tuple[NumaCell, ...] = ()

    def __post_init__(self) -> None:
        ids = [c.id for c in self.cells]
        if len(set(ids)) != len(ids):
            raise InvalidNumaTopology(f"cell ids repeat: {sorted(ids)}")
        object.__setattr__(self, "cells", tuple(sorted(self.cells, key=lambda c: c.id)))

    def cell(self, cell_id: int) -> NumaCell | None:
        return next((c for c in self.cells if c.id == cell_id), None)

    def socket_mates(self, cells: Iterable[int]) -> frozenset[int]:
        """``cells`` and every cell sharing a socket with one of them (the
        ``socket`` policy's reach); cells of unknown socket reach only themselves."""
        wanted = set(cells)
        sockets = {c.socket for c in self.cells if c.id in wanted and c.socket is not None}
        return frozenset(wanted | {c.id for c in self.cells if c.socket in sockets})

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.cells]

    @classmethod
    def from_json(cls, data: Any, field: str = "numa_topology") -> NumaTopology:
        if data is None:
            return cls()
        if not isinstance(data, list):
            raise InvalidNumaTopology(f"{field} must be a list of cells")
        if len(data) > MAX_NODE + 1:
            raise InvalidNumaTopology(f"{field} has more than {MAX_NODE + 1} cells")
        return cls(tuple(NumaCell.from_dict(c, f"{field}[{i}]") for i, c in enumerate(data)))


@dataclass(frozen=True, slots=True)
class InstanceNuma:
    """What a server asks of NUMA: how many cells, its CPU policy and its PCI policy."""

    nodes: int | None = None
    cpu_policy: str = "shared"
    pci_policy: NumaPolicy | None = None

    @property
    def dedicated(self) -> bool:
        return self.cpu_policy == "dedicated"


def parse_numa_policy(value: Any, field: str) -> NumaPolicy | None:
    """A NUMA policy word, or None; raises InvalidNumaRequest naming ``field``."""
    if value is None:
        return None
    try:
        return NumaPolicy(str(value).strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in NumaPolicy)
        raise InvalidNumaRequest(f"{field} ({str(value)[:64]!r}) must be one of {known}") from None


def instance_numa(
    extra_specs: Mapping[str, Any],
    image_properties: Mapping[str, Any] | None = None,
    *,
    vcpus: int | None = None,
    memory_mb: int | None = None,
) -> InstanceNuma:
    """The server's NUMA wishes from its flavor and image; refuses conflicts and
    sizes that do not split over the cells asked for."""
    nodes_text = extra_specs.get(NUMA_NODES_SPEC)
    nodes: int | None = None
    if nodes_text is not None:
        text = str(nodes_text).strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_GUEST_NODES:
            raise InvalidNumaRequest(
                f"{NUMA_NODES_SPEC} ({str(nodes_text)[:32]!r}) must be an integer "
                f"from 1 to {MAX_GUEST_NODES}"
            )
        nodes = int(text)
    cpu_policy = str(extra_specs.get(CPU_POLICY_SPEC, "shared")).strip().lower()
    if cpu_policy not in CPU_POLICIES:
        raise InvalidNumaRequest(
            f"{CPU_POLICY_SPEC} ({cpu_policy[:32]!r}) must be one of {', '.join(CPU_POLICIES)}"
        )
    if cpu_policy == "dedicated" and nodes is None:
        nodes = 1  # pinned vCPUs live in one cell unless asked otherwise (Nova)
    flavor_policy = parse_numa_policy(extra_specs.get(PCI_NUMA_POLICY_SPEC), PCI_NUMA_POLICY_SPEC)
    image_policy = parse_numa_policy(
        (image_properties or {}).get(PCI_NUMA_POLICY_PROPERTY), PCI_NUMA_POLICY_PROPERTY
    )
    if flavor_policy and image_policy and flavor_policy is not image_policy:
        raise InvalidNumaRequest(
            f"the flavor's {PCI_NUMA_POLICY_SPEC} ({flavor_policy}) and the image's "
            f"{PCI_NUMA_POLICY_PROPERTY} ({image_policy}) disagree"
        )
    if nodes is not None:
        for name, size in (("vcpus", vcpus), ("ram", memory_mb)):
            if size is not None and (size < nodes or size % nodes):
                raise InvalidNumaRequest(
                    f"{NUMA_NODES_SPEC} ({nodes}): the flavor's {name} ({size}) must split "
                    f"evenly over {nodes} NUMA node(s)"
                )
    return InstanceNuma(
        nodes=nodes, cpu_policy=cpu_policy, pci_policy=flavor_policy or image_policy
    )


def apply_numa_policy(
    requests: Sequence[PciRequest],
    numa: InstanceNuma,
    port_policies: Mapping[str, NumaPolicy | None] | None = None,
) -> None:
    """Set each request's NUMA policy: a port's own policy first, then the
    flavor's or image's, else what it had (its alias's, or legacy)."""
    ports = port_policies or {}
    for request in requests:
        chosen = ports.get(request.request_id) or numa.pci_policy
        if chosen is not None:
            request.numa_policy = chosen
