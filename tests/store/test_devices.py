"""Pools computed from stored rows agree with the model's pools of the same devices."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, select

from pcifleet.pci import DeviceRecord, DeviceStatus, build_pools
from pcifleet.store.claims import claim
from pcifleet.store.devices import device_of, host_rows, pools_of_rows
from pcifleet.store.inventory import sync_inventory
from pcifleet.store.models import hosts_table as H
from tests.store.sample import classified, gpu, pf_port, vf_port


def test_pools_of_rows_match_the_models_pools_of_parsed_devices(engine: Engine) -> None:
    sync_inventory(engine, "h1", classified(4), None, vcpus=8, memory_mb=8192)
    # claims leave claimed, blocked (unavailable) and available rows behind
    claim(engine, "h1", str(uuid.uuid4()), [vf_port("physnet1")])
    claim(engine, "h1", str(uuid.uuid4()), [pf_port("physnet2")])
    claim(engine, "h1", str(uuid.uuid4()), [gpu()])
    with engine.connect() as conn:
        host_id = conn.execute(select(H.c.id).where(H.c.name == "h1")).scalar_one()
        rows = host_rows(conn, host_id)
    assert {r["status"] for r in rows} >= {"available", "claimed", "unavailable"}
    parsed = build_pools(
        DeviceRecord(
            device=device_of(r),
            tags=dict(r["tags"] or {}),
            status=DeviceStatus(r["status"]),
            instance_uuid=r["instance_uuid"],
            request_id=r["request_id"],
        )
        for r in rows
    )
    assert pools_of_rows(rows).to_json() == parsed.to_json()
