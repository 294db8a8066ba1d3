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
from sqlalchemy import Connection, Engine, MetaData, Table, insert, inspect, select

from pcifleet.store.base import Base
from pcifleet.store.db import (
    alembic_config,
    current_revision,
    downgrade,
    head_revision,
    load_table_modules,
    upgrade,
)
from pcifleet.store.models import (
    hosts_table,
    instance_pci_requests_table,
    instances_table,
    pci_devices_table,
    tasks_table,
)


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


def as_in_db(conn: Connection, table: Table) -> Table:
    """``table`` with only the columns the database has now: rows written at an old
    revision must not name (or default) columns that later revisions add."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    return Table(table.name, MetaData(), *[c._copy() for c in table.c if c.name in present])


def populate_at_0001(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(as_in_db(conn, hosts_table)),
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
            insert(as_in_db(conn, pci_devices_table)),
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
            insert(as_in_db(conn, instances_table)),
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
            insert(as_in_db(conn, instance_pci_requests_table)),
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
            insert(as_in_db(conn, tasks_table)),
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


TABLES = (hosts_table, pci_devices_table, instances_table, instance_pci_requests_table, tasks_table)


def snapshot(
    engine: Engine, columns: dict[str, set[str]] | None = None
) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the core tables, in ``columns`` (default: those the database has)."""
    tables = (hosts_table, pci_devices_table, instances_table, instance_pci_requests_table)
    out: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as conn:
        for table in (*tables, tasks_table):
            names = columns[table.name] if columns else set(as_in_db(conn, table).c.keys())
            cols = [c for c in table.c if c.name in names]
            out[table.name] = [tuple(r) for r in conn.execute(select(*cols).order_by(cols[0]))]
    return out


def test_populated_0001_database_upgrades_to_head_without_loss(blank_engine: Engine) -> None:
    upgrade(blank_engine, "0001")
    populate_at_0001(blank_engine)
    before = snapshot(blank_engine)
    with blank_engine.connect() as conn:
        at_0001 = {t.name: set(as_in_db(conn, t).c.keys()) for t in TABLES}
    upgrade(blank_engine, "head")
    assert current_revision(blank_engine) == head_revision()
    assert snapshot(blank_engine, at_0001) == before
    kept = [c.name for c in pci_devices_table.c if c.name in at_0001["pci_devices"]]
    status = kept.index("status")
    assert before["pci_devices"][0][status] == "allocated"
