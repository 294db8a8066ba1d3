"""Migrations under test: every step both ways, models agree, data survives.

After Placement's test_migrations: the schema an operator gets from the
migrations must be exactly what the models describe, and upgrading a database
that already holds hosts, devices and servers must keep every row.
"""

from __future__ import annotations

from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, insert, inspect, select

from pcifleet.store.base import Base
from pcifleet.store.db import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    load_table_modules,
    upgrade,
)

# The tables as revision 0001 made them (read back from the database, so rows
# written "at 0001" have exactly that revision's columns, whatever came later).
OLD_TABLES = ("hosts", "pci_devices", "instances", "instance_pci_requests", "tasks")


def tables_now(engine: Engine) -> dict[str, Table]:
    meta = MetaData()
    meta.reflect(engine, only=OLD_TABLES)
    return {name: meta.tables[name] for name in OLD_TABLES}


def revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [s.revision for s in reversed(list(script.walk_revisions()))]


def test_first_revision_is_0001() -> None:
    assert revisions_oldest_first()[0] == "0001"


def test_walk_every_revision_up_and_down(blank_engine: Engine) -> None:
    revisions = revisions_oldest_first()
    for rev in revisions:
        upgrade(blank_engine, rev)
        assert current_revision(blank_engine) == rev
    for rev in reversed(revisions[:-1]):
        downgrade(blank_engine, rev)
        assert current_revision(blank_engine) == rev
    downgrade(blank_engine, "base")
    assert current_revision(blank_engine) is None
    assert set(inspect(blank_engine).get_table_names()) <= {"alembic_version"}


def test_models_and_migrations_agree(engine: Engine) -> None:
    load_table_modules()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def populate_at_0001(engine: Engine) -> None:
    t = tables_now(engine)
    hosts_table, pci_devices_table, instances_table = t["hosts"], t["pci_devices"], t["instances"]
    instance_pci_requests_table, tasks_table = t["instance_pci_requests"], t["tasks"]
    with engine.begin() as conn:
        conn.execute(
            insert(hosts_table),
            [
                {
                    "id": 1,
                    "name": "compute-1",
                    "pci_stats": [{"vendor_id": "8086", "count": 1}],
                    "generation": 7,
                    "vcpus": 64,
                    "memory_mb": 262144,
                    "last_report_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )
        conn.execute(
            insert(pci_devices_table),
            [
                {
                    "host_id": 1,
                    "address": "0000:0a:10.0",
                    "vendor_id": "8086",
                    "product_id": "154c",
                    "dev_type": "type-VF",
                    "parent_addr": "0000:0a:00.0",
                    "numa_node": 0,
                    "extra": {"mac": "52:54:00:00:00:01"},
                    "tags": {"physical_network": "physnet1"},
                    "pool_id": "pool-a",
                    "status": "allocated",
                    "instance_uuid": "11111111-1111-1111-1111-111111111111",
                    "request_id": "22222222-2222-2222-2222-222222222222",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )
        conn.execute(
            insert(instances_table),
            [
                {
                    "uuid": "11111111-1111-1111-1111-111111111111",
                    "name": "vm1",
                    "host": "compute-1",
                    "status": "ACTIVE",
                    "vcpus": 2,
                    "memory_mb": 2048,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )
        conn.execute(
            insert(instance_pci_requests_table),
            [
                {
                    "instance_uuid": "11111111-1111-1111-1111-111111111111",
                    "request_id": "22222222-2222-2222-2222-222222222222",
                    "count": 1,
                    "specs": [{"physical_network": "physnet1", "dev_type": "type-VF"}],
                    "source": "port",
                }
            ],
        )
        conn.execute(
            insert(tasks_table),
            [
                {
                    "host": "compute-1",
                    "instance_uuid": "11111111-1111-1111-1111-111111111111",
                    "kind": "build",
                    "payload": {"x": 1},
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            ],
        )


def snapshot(engine: Engine, columns: dict[str, list[str]]) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the old tables, in the columns they had at 0001."""
    tables = tables_now(engine)
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for name, table in tables.items():
            cols = [table.c[c] for c in columns[name]]
            out[name] = [tuple(r) for r in conn.execute(select(*cols).order_by(cols[0]))]
    return out


def test_populated_0001_database_upgrades_to_head_without_loss(blank_engine: Engine) -> None:
    upgrade(blank_engine, "0001")
    populate_at_0001(blank_engine)
    columns = {name: list(t.c.keys()) for name, t in tables_now(blank_engine).items()}
    before = snapshot(blank_engine, columns)
    upgrade(blank_engine, "head")
    assert current_revision(blank_engine) == head_revision()
    assert snapshot(blank_engine, columns) == before
    assert before["pci_devices"][0][columns["pci_devices"].index("status")] == "allocated"
    # 0004 derives the server's vm_state and power_state from its status
    with blank_engine.connect() as conn:
        instances = tables_now(blank_engine)["instances"]
        row = conn.execute(select(instances.c.vm_state, instances.c.power_state)).one()
    assert tuple(row) == ("active", 1)


def test_0011_gives_existing_subnets_no_host_routes(blank_engine: Engine) -> None:
    upgrade(blank_engine, "0010_domains_groups")
    meta = MetaData()
    meta.reflect(blank_engine, only=("networks", "subnets"))
    networks, subnets = meta.tables["networks"], meta.tables["subnets"]
    net = {
        "id": "n1",
        "project_id": "p",
        "name": "net",
        "description": "",
        "admin_state_up": True,
        "status": "ACTIVE",
        "shared": False,
        "external": False,
        "mtu": 1500,
        "network_type": "local",
        "created_at": NOW,
        "updated_at": NOW,
    }
    sub = {
        "id": "s1",
        "project_id": "p",
        "network_id": "n1",
        "name": "sub",
        "description": "",
        "ip_version": 4,
        "cidr": "10.0.0.0/24",
        "gateway_ip": "10.0.0.1",
        "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.254"}],
        "dns_nameservers": ["8.8.8.8"],
        "enable_dhcp": True,
        "created_at": NOW,
        "updated_at": NOW,
    }
    with blank_engine.begin() as conn:
        conn.execute(insert(networks), [net])
        conn.execute(insert(subnets), [sub])
    upgrade(blank_engine, "head")
    meta = MetaData()
    meta.reflect(blank_engine, only=("subnets",))
    with blank_engine.connect() as conn:
        row = conn.execute(select(meta.tables["subnets"])).mappings().one()
    assert row["host_routes"] == [] and row["dns_nameservers"] == ["8.8.8.8"]
