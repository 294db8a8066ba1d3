"""A second ``pcifleet up`` on the same data directory keeps what the first stored;
``--database`` runs it on PostgreSQL."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.system import unavailable

from .conftest import running_up
from .helpers import admin_token

pytestmark = pytest.mark.slow
PCIFLEET = str(Path(sys.executable).with_name("pcifleet"))


def check_restart_keeps_state(data_dir: Path, *extra: str) -> None:
    with running_up(data_dir, *extra) as url:
        token = admin_token(url, data_dir)
        r = httpx.post(
            url + "/networking/v2.0/networks",
            headers={"X-Auth-Token": token},
            json={"network": {"name": "kept-net"}},
        )
        assert r.status_code == 201, r.text
        net_id = r.json()["network"]["id"]
    with running_up(data_dir, *extra) as url:
        token = admin_token(url, data_dir)  # the same credentials still work
        r = httpx.get(f"{url}/networking/v2.0/networks/{net_id}", headers={"X-Auth-Token": token})
        assert r.status_code == 200 and r.json()["network"]["name"] == "kept-net"
        hosts = httpx.get(url + "/pcifleet/v1/hosts", headers={"X-Auth-Token": token}).json()[
            "hosts"
        ]
        assert [h["name"] for h in hosts] == ["compute-1"]
        assert sum(p["count"] for p in hosts[0]["pci_stats"]) == 132


def test_second_up_on_the_same_data_dir_keeps_state(tmp_path: Path) -> None:
    check_restart_keeps_state(tmp_path / "data")


def test_up_on_postgresql(tmp_path: Path) -> None:
    base = os.environ.get("PCIFLEET_TEST_PG_URL")
    if not base:
        unavailable("PostgreSQL: set PCIFLEET_TEST_PG_URL to run pcifleet up on PostgreSQL")
    name = f"pcifleet_up_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        check_restart_keeps_state(tmp_path / "data", "--database", url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
