"""Device rows and the PCI model: conversions, and pools computed from rows.

The host's ``pci_stats`` is always a summary of its device rows; this module
is the one place that computes it, with the model's own ``build_pools``, so the
scheduler, the claim path and the consistency checks agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, RowMapping, select

from pcifleet.pci import (
    DeviceStatus,
    DevType,
    PciDevice,
    PciPools,
    build_pools,
    pool_id_of,
)
from pcifleet.store.models import pci_devices_table as D

IN_USE = (DeviceStatus.CLAIMED.value, DeviceStatus.ALLOCATED.value)


def facts_of(device: PciDevice, tags: Mapping[str, str | None]) -> dict[str, Any]:
    """The stored columns describing ``device`` (everything but its address and state)."""
    facts = device.to_dict()
    del facts["address"]
    facts["tags"] = dict(tags)
    facts["pool_id"] = pool_id_of(device, tags)
    return facts


def new_device_row(
    device: PciDevice, tags: Mapping[str, str | None], now: datetime
) -> dict[str, Any]:
    """A device's row as its first report stores it (no host_id): available, held by no one."""
    return {
        "address": str(device.address),
        **facts_of(device, tags),
        "status": DeviceStatus.AVAILABLE.value,
        "instance_uuid": None,
        "request_id": None,
        "vanished_at": None,
        "created_at": now,
        "updated_at": now,
    }


# The columns of a row that are ``PciDevice.from_dict`` keys.
_DEVICE_KEYS = tuple(f.name for f in fields(PciDevice))


def device_of(row: Mapping[str, Any]) -> PciDevice:
    """The model's device for a stored row."""
    return PciDevice.from_dict({k: row[k] for k in _DEVICE_KEYS})


def host_rows(conn: Connection, host_id: int) -> list[RowMapping]:
    """All device rows of a host, in address order."""
    rows = conn.execute(select(D).where(D.c.host_id == host_id).order_by(D.c.address))
    return list(rows.mappings())


class _RowDevice(NamedTuple):
    """A stored row's pooling columns, as written from a parsed ``PciDevice``."""

    vendor_id: str
    product_id: str
    dev_type: DevType
    numa_node: int | None
    address: str
    parent_addr: str | None


class _RowEntry(NamedTuple):
    device: _RowDevice
    tags: dict[str, str | None]
    status: DeviceStatus


def _row_entry(row: Mapping[str, Any]) -> _RowEntry:
    device = _RowDevice(
        row["vendor_id"],
        row["product_id"],
        _DEV_TYPES[row["dev_type"]],
        row["numa_node"],
        row["address"],
        row["parent_addr"],
    )
    return _RowEntry(device, dict(row["tags"] or {}), _STATUSES[row["status"]])


_DEV_TYPES = {t.value: t for t in DevType}
_STATUSES = {s.value: s for s in DeviceStatus}


def pools_of_rows(rows: Iterable[Mapping[str, Any]]) -> PciPools:
    """The pools the rows add up to (removed devices count for nothing).

    Rows are pooled from their columns as stored: every row was written from a
    parsed ``PciDevice`` (addresses in canonical form), and parsing a host's
    hundred-odd rows again on every claim, free and report cost more than the
    rest of a free. ``tests/store`` checks both ways give the same pools."""
    return build_pools(_row_entry(r) for r in rows)


def blocked_addresses(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """Devices the PF/VF dependency blocks: the PF of a VF in use, the VFs of a PF in use."""
    rows = list(rows)
    in_use = [r for r in rows if r["status"] in IN_USE]
    pfs_in_use = {r["address"] for r in in_use if r["dev_type"] == DevType.PF.value}
    blocked = {
        r["parent_addr"] for r in in_use if r["dev_type"] == DevType.VF.value and r["parent_addr"]
    }
    blocked.update(
        r["address"]
        for r in rows
        if r["dev_type"] == DevType.VF.value and r["parent_addr"] in pfs_in_use
    )
    return blocked


def pool_stats_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return pools_of_rows(rows).to_json()
