"""Boots and deletes racing under real concurrency: many threads against one API
process on SQLite, two API processes sharing PostgreSQL. Every server is
deleted right after it is created, while an agent finishes whatever it is
sent; at the end no server may have come back, no device may be held and no
port may keep a binding."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from pcifleet.store.db import default_database_url, make_engine
from tests.api.inventory import sample_report
from tests.api.live import ADMIN_PASSWORD, DEMO_PASSWORD, api_processes, token_at
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.store.pg import fresh_schema, pg_url_or_skip

pytestmark = pytest.mark.slow
PAIRS = 48
COMPUTE = "/compute/v2.1"
NET = "/networking/v2.0"


class Agent(threading.Thread):
    """Finishes every task of one host as ``done`` until stopped."""

    def __init__(self, url: str, admin: str, host: str) -> None:
        super().__init__(daemon=True)
        self.url, self.host = url, host
        self.stop = threading.Event()
        resp = httpx.post(
            f"{url}/pcifleet/v1/hosts/{host}/credential", headers={"X-Auth-Token": admin}
        )
        self.headers = {"Authorization": f"Bearer {resp.json()['credential']}"}
        report = httpx.post(
            f"{url}/pcifleet/v1/hosts/{host}/inventory", json=sample_report(0), headers=self.headers
        )
        assert report.status_code == 200, report.text
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            while not self.stop.is_set():
                resp = client.get(f"/pcifleet/v1/hosts/{self.host}/tasks", params={"wait": 0.3})
                if resp.status_code != 200:
                    self.errors.append(resp.text)
                    continue
                for task in resp.json()["tasks"]:
                    done = client.post(
                        f"/pcifleet/v1/tasks/{task['id']}/result", json={"state": "done"}
                    )
                    if done.status_code != 200:
                        self.errors.append(done.text)


def _setup(url: str, admin: str) -> dict[str, Any]:
    h = {"X-Auth-Token": admin}
    net = httpx.post(
        f"{url}{NET}/networks",
        headers=h,
        json={
            "network": {
                "name": "sriov",
                "shared": True,
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": 100,
            }
        },
    ).json()
    httpx.post(
        f"{url}{NET}/subnets",
        headers=h,
        json={
            "subnet": {"network_id": net["network"]["id"], "cidr": "10.9.0.0/20", "ip_version": 4}
        },
    )
    flavor = httpx.post(
        f"{url}{COMPUTE}/flavors",
        headers=h,
        json={"flavor": {"name": "m1", "ram": 512, "vcpus": 1, "disk": 1}},
    ).json()["flavor"]
    image = httpx.post(
        f"{url}/image/v2/images",
        headers=h,
        json={
            "name": "img",
            "visibility": "public",
            "disk_format": "raw",
            "container_format": "bare",
        },
    ).json()
    httpx.put(f"{url}/image/v2/images/{image['id']}/file", headers=h, content=b"disk")
    return {"net": net["network"]["id"], "flavor": flavor["id"], "image": image["id"]}  # fmt: skip


def race(urls: list[str], engine_url: str) -> None:
    admin = token_at(urls[0], "admin", ADMIN_PASSWORD, "admin")
    demo = token_at(urls[0], "demo", DEMO_PASSWORD, "demo")
    env = _setup(urls[0], admin)
    agents = [Agent(urls[0], admin, f"compute{i}") for i in (1, 2)]
    ports = []
    for _ in range(PAIRS):
        body = {"port": {"network_id": env["net"], "binding:vnic_type": "direct"}}
        resp = httpx.post(f"{urls[0]}{NET}/ports", headers={"X-Auth-Token": demo}, json=body)
        ports.append(resp.json()["port"]["id"])
    for agent in agents:
        agent.start()
    answers: list[int] = []

    def pair(i: int) -> None:
        h = {"X-Auth-Token": demo}
        with httpx.Client(timeout=60) as client:
            server = {"name": f"vm{i}", "flavorRef": env["flavor"], "imageRef": env["image"]}
            body = {"server": {**server, "networks": [{"port": ports[i]}]}}
            created = client.post(f"{urls[i % len(urls)]}{COMPUTE}/servers", headers=h, json=body)
            answers.append(created.status_code)
            if created.status_code != 202:
                return
            uuid = created.json()["server"]["id"]
            if i % 3:  # some deletes wait a moment, landing later in the boot
                time.sleep(0.01 * (i % 7))
            gone = client.delete(f"{urls[(i + 1) % len(urls)]}{COMPUTE}/servers/{uuid}", headers=h)
            answers.append(gone.status_code)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(pair, range(PAIRS)))
    deadline = time.monotonic() + 60
    engine = make_engine(engine_url)
    try:
        while time.monotonic() < deadline and leftovers(engine) != CLEAN:
            time.sleep(0.2)
        for agent in agents:
            agent.stop.set()
            agent.join(timeout=10)
        assert set(answers) <= {202, 204}, answers
        assert all(not a.errors for a in agents), [a.errors for a in agents]
        assert leftovers(engine) == CLEAN
    finally:
        engine.dispose()


def test_boot_delete_races_with_threads_on_sqlite(tmp_path: Path) -> None:
    url = default_database_url(tmp_path / "data")
    with api_processes(tmp_path, url, 1) as urls:
        race(urls, url)


def test_boot_delete_races_with_processes_on_postgresql(tmp_path: Path) -> None:
    with fresh_schema(pg_url_or_skip()) as url, api_processes(tmp_path, url, 2) as urls:
        race(urls, url)


def test_concurrent_ports_on_one_subnet_all_get_addresses_on_postgresql(tmp_path: Path) -> None:
    """Two API processes creating ports on one subnet at once: every port gets
    its own address (the loser of a race takes the next one), none gets a 409."""
    with fresh_schema(pg_url_or_skip()) as url, api_processes(tmp_path, url, 2) as urls:
        admin = token_at(urls[0], "admin", ADMIN_PASSWORD, "admin")
        env = _setup(urls[0], admin)

        def make(i: int) -> httpx.Response:
            body = {"port": {"network_id": env["net"]}}
            return httpx.post(
                f"{urls[i % 2]}{NET}/ports", headers={"X-Auth-Token": admin}, json=body, timeout=60
            )

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(make, range(48)))
        assert [r.status_code for r in answers] == [201] * 48, [r.text for r in answers][:3]
        addresses = [r.json()["port"]["fixed_ips"][0]["ip_address"] for r in answers]
        assert len(set(addresses)) == 48
