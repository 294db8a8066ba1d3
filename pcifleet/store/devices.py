"""Device rows and the PCI model: conversions, and pools computed from rows.

The host's ``pci_stats`` is always a summary of its device rows; this module
is the one place that computes it, with the model's own ``build_pools``, so the
scheduler, the claim path and the consistency checks agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from pcifleet.pci import (
    DeviceRecord,
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


def record_of(row: Mapping[str, Any]) -> DeviceRecord:
    return DeviceRecord(
        device=device_of(row),
        tags=dict(row["tags"] or {}),
        status=DeviceStatus(row["status"]),
        instance_uuid=row["instance_uuid"],
        request_id=row["request_id"],
    )


def host_rows(conn: Connection, host_id: int) -> list[RowMapping]:
    """All device rows of a host, in address order."""
    rows = conn.execute(select(D).where(D.c.host_id == host_id).order_by(D.c.address))
    return list(rows.mappings())


def pools_of_rows(rows: Iterable[Mapping[str, Any]]) -> PciPools:
    """The pools the rows add up to (removed devices count for nothing)."""
    return build_pools(record_of(r) for r in rows)


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
