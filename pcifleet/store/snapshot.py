"""Read-only views of hosts: what the scheduler indexes and claims start from.

A ``HostSnapshot`` is one host row at one generation. A claim made from a
snapshot succeeds only if the host is still at that generation, so a snapshot
may be held in memory (the scheduler's index) for as long as one likes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row, or_, select

from pcifleet.store.errors import HostNotFound
from pcifleet.store.models import hosts_table as H

SNAPSHOT_COLUMNS = (
    H.c.id,
    H.c.name,
    H.c.state,
    H.c.last_report_at,
    H.c.forced_down,
    H.c.pci_stats,
    H.c.generation,
    H.c.vcpus,
    H.c.vcpus_used,
    H.c.memory_mb,
    H.c.memory_mb_used,
    H.c.numa_topology,
)
# Keep IN lists well under SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 500


class HostVersion(Protocol):
    """A host at one generation: all a claim plan needs to name its target."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def generation(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    id: int
    name: str
    state: str
    last_report_at: datetime | None
    # an operator marked the host down (os-services forced_down): never up
    forced_down: bool
    pci_stats: list[dict[str, Any]]
    generation: int
    vcpus: int
    vcpus_used: int
    memory_mb: int
    memory_mb_used: int
    numa_topology: list[dict[str, Any]] | None = None

    @classmethod
    def from_row(cls, row: Row[Any] | Any) -> HostSnapshot:
        m = row._mapping
        return cls(**{c.name: m[c.name] for c in SNAPSHOT_COLUMNS})


def load_host(conn: Connection, name: str) -> HostSnapshot:
    """The current snapshot of host ``name``; HostNotFound when there is none."""
    row = conn.execute(select(*SNAPSHOT_COLUMNS).where(H.c.name == name)).first()
    if row is None:
        raise HostNotFound(name)
    return HostSnapshot.from_row(row)


def load_hosts(conn: Connection, ids: Iterable[int] | None = None) -> list[HostSnapshot]:
    """Snapshots of the hosts with these ids (all hosts when ``ids`` is None)."""
    if ids is None:
        rows = conn.execute(select(*SNAPSHOT_COLUMNS).order_by(H.c.id))
        return [HostSnapshot.from_row(r) for r in rows]
    wanted = sorted(set(ids))
    out: list[HostSnapshot] = []
    for i in range(0, len(wanted), CHUNK):
        part = wanted[i : i + CHUNK]
        rows = conn.execute(select(*SNAPSHOT_COLUMNS).where(H.c.id.in_(part)).order_by(H.c.id))
        out.extend(HostSnapshot.from_row(r) for r in rows)
    return out


def host_generations(conn: Connection) -> dict[int, int]:
    """Every host's id and generation, in one cheap scan: what to reload."""
    return {int(i): int(g) for i, g in conn.execute(select(H.c.id, H.c.generation))}


def hosts_not_up(conn: Connection, reported_since: datetime) -> set[int]:
    """Ids of hosts that have not reported since ``reported_since`` (or never), or
    that an operator forced down."""
    rows = conn.execute(
        select(H.c.id).where(
            or_(
                H.c.last_report_at.is_(None),
                H.c.last_report_at < reported_since,
                H.c.forced_down.is_(True),
            )
        )
    )
    return {int(r[0]) for r in rows}
