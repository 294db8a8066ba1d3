"""192 ports created at once on one subnet by 32 threads: every create
succeeds and no address is handed out twice, on SQLite (one API process) and
on PostgreSQL (two API processes sharing it). IP allocation retries its own
conflicts; a client never sees them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from pcifleet.store.db import default_database_url
from tests.api.live import ADMIN_PASSWORD, api_processes, token_at
from tests.store.pg import fresh_schema, pg_url_or_skip

pytestmark = pytest.mark.slow
PORTS = 192
THREADS = 32
NET = "/networking/v2.0"


def create_ports(urls: list[str]) -> None:
    admin = token_at(urls[0], "admin", ADMIN_PASSWORD, "admin")
    h = {"X-Auth-Token": admin}
    net = httpx.post(f"{urls[0]}{NET}/networks", headers=h, json={"network": {"name": "n"}})
    assert net.status_code == 201, net.text
    net_id = net.json()["network"]["id"]
    body = {"subnet": {"network_id": net_id, "cidr": "10.9.0.0/24", "ip_version": 4}}
    sub = httpx.post(f"{urls[0]}{NET}/subnets", headers=h, json=body)
    assert sub.status_code == 201, sub.text
    clients = [httpx.Client(base_url=u, headers=h, timeout=60) for u in urls]

    def one(i: int) -> httpx.Response:
        return clients[i % len(clients)].post(
            f"{NET}/ports", json={"port": {"network_id": net_id, "name": f"p{i}"}}
        )

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(one, range(PORTS)))
    finally:
        for c in clients:
            c.close()
    failed = [(r.status_code, r.text[:200]) for r in answers if r.status_code != 201]
    assert failed == []
    addresses = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in answers]
    assert len(set(addresses)) == PORTS
    listed = httpx.get(f"{urls[0]}{NET}/ports", headers=h, params={"network_id": net_id})
    assert len({p["fixed_ips"][0]["ip_address"] for p in listed.json()["ports"]}) == PORTS


def test_concurrent_ports_on_one_subnet_sqlite(tmp_path: Path) -> None:
    with api_processes(tmp_path, default_database_url(tmp_path / "data"), 1) as urls:
        create_ports(urls)


def test_concurrent_ports_on_one_subnet_postgresql(tmp_path: Path) -> None:
    with fresh_schema(pg_url_or_skip()) as url, api_processes(tmp_path, url, 2) as urls:
        create_ports(urls)
