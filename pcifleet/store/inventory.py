"""Inventory sync: a host reports all its assignable devices; the store catches up.

Rules (issue 5):
- a device never seen before is added (available, unless the PF/VF dependency
  blocks it);
- a free device that is no longer reported is marked ``removed``;
- a claimed or allocated device that is no longer reported is kept as it is and
  flagged (``vanished_at``), never silently dropped: a server still holds it;
- a device that comes back is available again (or loses its flag);
- the report carries the host generation the agent last saw, and a stale one is
  refused with ``StaleGeneration`` so two reports can never interleave.
The host's pools are then recomputed from its rows and the generation bumped,
all in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from pcifleet.pci import Classified, DeviceStatus, InvalidNumaTopology, NumaTopology, PciDevice
from pcifleet.store.devices import (
    IN_USE,
    blocked_addresses,
    facts_of,
    host_rows,
    new_device_row,
    pool_stats_json,
)
from pcifleet.store.errors import HostNotFound, InvalidInventory, StaleGeneration
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D
from pcifleet.store.models import utcnow

AVAILABLE = DeviceStatus.AVAILABLE.value
UNAVAILABLE = DeviceStatus.UNAVAILABLE.value
REMOVED = DeviceStatus.REMOVED.value
HOST_STATES = ("enabled", "disabled")

Reported = Classified | tuple[PciDevice, Mapping[str, str | None] | None]


@dataclass(slots=True)
class SyncResult:
    """What one report changed; addresses as strings, sorted."""

    host_id: int
    generation: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    # In use by a server but no longer reported by the host.
    flagged: list[str] = field(default_factory=list)
    # Reported again after being removed or flagged.
    returned: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    pci_stats: list[dict[str, Any]] = field(default_factory=list)


def assignable_devices(devices: Iterable[Reported]) -> dict[str, tuple[PciDevice, dict[str, Any]]]:
    """address -> (device, tags) for the devices a spec matched; duplicates refused."""
    out: dict[str, tuple[PciDevice, dict[str, Any]]] = {}
    for i, item in enumerate(devices):
        tags: Mapping[str, str | None] | None
        if isinstance(item, Classified):
            device, tags = item.device, item.tags
        elif isinstance(item, tuple) and len(item) == 2:
            device, tags = item
        else:
            raise InvalidInventory(f"devices[{i}]: expected a Classified or (device, tags) pair")
        if not isinstance(device, PciDevice):
            raise InvalidInventory(f"devices[{i}].device: expected a PciDevice, got {device!r}")
        if tags is None:
            continue  # no device_spec matched it: not assignable, not stored
        address = str(device.address)
        if address in out:
            raise InvalidInventory(f"devices[{i}].address: {address} is reported twice")
        out[address] = (device, dict(tags))
    return out


def _lock_host(
    conn: Connection,
    host: str,
    seen_generation: int | None,
    vcpus: int | None,
    memory_mb: int | None,
    now: datetime,
) -> tuple[int, int]:
    """Create or compare-and-swap the host row; (host id, new generation)."""
    row = conn.execute(select(H.c.id, H.c.generation).where(H.c.name == host)).first()
    if row is None:
        if seen_generation not in (None, 0):
            raise StaleGeneration(host, seen_generation, None)
        try:
            key = conn.execute(
                insert(H).values(
                    name=host,
                    pci_stats=[],
                    generation=1,
                    vcpus=vcpus or 0,
                    memory_mb=memory_mb or 0,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key
        except IntegrityError:
            raise StaleGeneration(host, seen_generation, 0) from None
        assert key is not None
        return int(key[0]), 1
    host_id, current = row
    if seen_generation != current:
        raise StaleGeneration(host, seen_generation, current)
    swapped = conn.execute(
        update(H).where(H.c.id == host_id, H.c.generation == current).values(generation=current + 1)
    ).rowcount
    if swapped != 1:
        raise StaleGeneration(host, seen_generation, None)
    return host_id, current + 1


def sync_inventory(
    engine: Engine,
    host: str,
    devices: Iterable[Reported],
    seen_generation: int | None,
    *,
    vcpus: int | None = None,
    memory_mb: int | None = None,
    numa_topology: list[dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Store host ``host``'s whole inventory; see the module docstring for the rules.

    ``devices`` are the host's classified devices (unmatched ones are ignored).
    ``seen_generation`` is the generation the reporter last saw; None or 0 for a
    host the store does not know yet (it is created). Raises StaleGeneration
    when the host changed meanwhile, InvalidInventory for a malformed report.
    ``numa_topology`` (``NumaTopology.to_json()``) replaces the host's cells when
    given.
    """
    if not isinstance(host, str) or not host or len(host) > 255:
        raise InvalidInventory(f"host: must be a name of 1 to 255 characters, got {host!r}")
    for name, value in (("vcpus", vcpus), ("memory_mb", memory_mb)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise InvalidInventory(f"{name}: must be a non-negative integer, got {value!r}")
    if numa_topology is not None:
        try:
            numa_topology = NumaTopology.from_json(numa_topology).to_json()
        except InvalidNumaTopology as exc:
            raise InvalidInventory(str(exc)) from None
    reported = assignable_devices(devices)
    now = now or utcnow()
    with engine.begin() as conn:
        host_id, generation = _lock_host(conn, host, seen_generation, vcpus, memory_mb, now)
        result = SyncResult(host_id=host_id, generation=generation)
        rows = {r["address"]: dict(r) for r in host_rows(conn, host_id)}
        changed: dict[str, dict[str, Any]] = {}  # address -> new column values

        for address, row in rows.items():
            if address in reported:
                device, tags = reported[address]
                facts = facts_of(device, tags)
                values = {k: v for k, v in facts.items() if row[k] != v}
                if values:
                    result.updated.append(address)
                if row["status"] == REMOVED:
                    values["status"] = AVAILABLE
                    result.returned.append(address)
                elif row["vanished_at"] is not None:
                    values["vanished_at"] = None
                    result.returned.append(address)
            elif row["status"] in IN_USE:
                if row["vanished_at"] is not None:
                    continue
                values = {"vanished_at": now}
                result.flagged.append(address)
            elif row["status"] != REMOVED:
                values = {"status": REMOVED}
                result.removed.append(address)
            else:
                continue
            if values:
                row.update(values)
                changed[address] = values

        new_rows = []
        for address in sorted(set(reported) - set(rows)):
            device, tags = reported[address]
            new = {"host_id": host_id, **new_device_row(device, tags, now)}
            new_rows.append(new)
            rows[address] = new
            result.added.append(address)

        # The PF/VF dependency over the new picture: a free device is blocked
        # exactly when its PF, or one of its VFs, is in use.
        blocked = blocked_addresses(rows.values())
        for address, row in rows.items():
            if row["status"] in (AVAILABLE, UNAVAILABLE):
                want = UNAVAILABLE if address in blocked else AVAILABLE
                if row["status"] != want:
                    row["status"] = want
                    changed.setdefault(address, {})["status"] = want

        if new_rows:
            conn.execute(insert(D), new_rows)
        for address, values in changed.items():
            if "id" not in rows[address]:
                continue  # a new row: inserted with its final values above
            conn.execute(
                update(D)
                .where(D.c.host_id == host_id, D.c.address == address)
                .values(**values, updated_at=now)
            )
        result.pci_stats = pool_stats_json(rows.values())
        host_values: dict[str, Any] = {
            "pci_stats": result.pci_stats,
            "last_report_at": now,
            "updated_at": now,
        }
        if vcpus is not None:
            host_values["vcpus"] = vcpus
        if memory_mb is not None:
            host_values["memory_mb"] = memory_mb
        if numa_topology is not None:
            host_values["numa_topology"] = numa_topology
        conn.execute(update(H).where(H.c.id == host_id).values(**host_values))
    for names in (result.added, result.removed, result.flagged, result.returned, result.updated):
        names.sort()
    return result


def heartbeat(engine: Engine, host: str, now: datetime | None = None) -> None:
    """Record that ``host`` is alive (no generation bump: its pools did not change)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(H).where(H.c.name == host).values(last_report_at=now or utcnow())
        ).rowcount
    if done != 1:
        raise HostNotFound(host)


def set_host_state(
    engine: Engine,
    host: str,
    state: str | None,
    *,
    disabled_reason: str | None = None,
    forced_down: bool | None = None,
) -> int:
    """Enable or disable a host for scheduling, or force it down; returns the new
    generation.

    ``state`` None leaves the state (and its reason) alone; enabling clears the
    reason. The generation is bumped so schedulers reload the host, and a claim
    planned on the old view loses its compare-and-swap: the change holds at once.
    """
    values: dict[str, Any] = {"generation": H.c.generation + 1, "updated_at": utcnow()}
    if state is not None:
        if state not in HOST_STATES:
            raise InvalidInventory(f"state: must be one of {', '.join(HOST_STATES)}, got {state!r}")
        values["state"] = state
        values["disabled_reason"] = disabled_reason if state == "disabled" else None
    if forced_down is not None:
        values["forced_down"] = forced_down
    with engine.begin() as conn:
        row = conn.execute(
            update(H).where(H.c.name == host).values(**values).returning(H.c.generation)
        ).first()
    if row is None:
        raise HostNotFound(host)
    return int(row[0])
