"""Engines and upgrades: the settings the claim path relies on are really in force."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from pcifleet.store.db import (
    current_revision,
    default_database_url,
    fresh_schema,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from pcifleet.store.models import Host
from tests.store.pg import pg_url_or_skip


def test_default_url_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    url = default_database_url(tmp_path / "data")
    assert url.startswith("sqlite:///")
    assert url.endswith("/data/pcifleet.sqlite3")
    assert (tmp_path / "data").is_dir()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(default_database_url(tmp_path))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    engine.dispose()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported back end 'mysql'"):
        make_engine("mysql://localhost/x")


def test_fresh_schema_is_for_postgresql_only(tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    with (
        pytest.raises(ValueError, match=r"fresh_schema: .* is not a PostgreSQL URL"),
        fresh_schema(url),
    ):
        pass


def test_fresh_schema_is_empty_private_and_dropped_afterwards() -> None:
    url = pg_url_or_skip()
    with fresh_schema(url) as scoped:
        engine = make_engine(scoped)
        with engine.connect() as conn:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        assert schema is not None and schema.startswith("t_")
        assert inspect(engine).get_table_names(schema=schema) == []
        engine.dispose()
    admin = make_engine(url)
    with admin.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %(s)s", {"s": schema}
        ).scalar()
    admin.dispose()
    assert left == 0


def test_postgresql_url_uses_psycopg3() -> None:
    engine = make_engine("postgresql://u@localhost/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_upgrade_by_url_creates_the_tables(tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    upgrade(url)
    engine = make_engine(url)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"hosts", "pci_devices", "instances", "instance_pci_requests", "tasks"} <= tables
    engine.dispose()


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_foreign_keys_hold_after_upgrade(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(Exception, match=r"(?i)foreign key"):
        conn.execute(
            text(
                "INSERT INTO pci_devices (host_id, address, vendor_id, product_id, dev_type,"
                " extra, tags, pool_id, status, created_at, updated_at) VALUES (999,"
                " '0000:01:00.0', '8086', '1572', 'type-PF', '{}', '{}', 'p', 'available',"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )


def test_timestamps_come_back_aware_utc(engine: Engine) -> None:
    Session = session_factory(engine)
    with Session.begin() as s:
        s.add(Host(name="h1", pci_stats=[]))
    with Session() as s:
        host = s.query(Host).filter_by(name="h1").one()
        assert host.created_at.utcoffset() is not None
        assert host.created_at.utcoffset().total_seconds() == 0
        assert host.generation == 0


@pytest.mark.parametrize("url", ["", "not a url", "://x", "sqlite:/:"])
def test_garbage_urls_are_refused_naming_the_field(url: str) -> None:
    with pytest.raises(ValueError, match=r"^database url"):
        make_engine(url)
