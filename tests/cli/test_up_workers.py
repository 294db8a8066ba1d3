"""``pcifleet up --workers N``: several API processes share one job queue.

The story on PostgreSQL: ``up --workers 2`` with two simulated hosts, many
boots fired at once over HTTP (so both processes take scheduling jobs), every
server ACTIVE, and no device handed to two servers, in the database and in the
ports' bindings. On SQLite the option is refused before anything is written.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from pcifleet.cli.main import cli
from pcifleet.store.db import make_engine
from pcifleet.store.models import pci_devices_table as D
from tests.store.pg import fresh_schema, pg_url_or_skip

SERVERS = 24
COMPUTE = "/compute/v2.1"
NETWORK = "/networking/v2.0"


def test_more_than_one_worker_on_sqlite_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["up", "--workers", "2", "--data-dir", str(data_dir)])
    assert result.exit_code != 0
    assert "--workers 2 needs PostgreSQL" in result.output
    assert not data_dir.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def token(client: httpx.Client, clouds: Path) -> str:
    auth = yaml.safe_load(clouds.read_text())["clouds"]["pcifleet"]["auth"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth["username"],
                        "domain": {"id": "default"},
                        "password": auth["password"],
                    }
                },
            },
            "scope": {"project": {"name": auth["project_name"], "domain": {"id": "default"}}},
        }
    }
    resp = client.post("/v3/auth/tokens?nocatalog", json=body)
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


def created(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = client.post(path, json=body)
    assert resp.status_code in (200, 201, 202), f"{path}: {resp.status_code} {resp.text}"
    result: dict[str, Any] = resp.json()
    return result


def wait_up(proc: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while "pcifleet is up" not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)


def boot_all(client: httpx.Client) -> list[str]:
    """A network on physnet1, one direct port per server, all boots at once."""
    net = created(
        client,
        NETWORK + "/networks",
        {
            "network": {
                "name": "w-net",
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": 100,
            }
        },
    )["network"]["id"]
    created(client, NETWORK + "/subnets", {"subnet": {"network_id": net, "cidr": "10.9.0.0/24"}})
    flavor = created(
        client, COMPUTE + "/flavors", {"flavor": {"name": "w", "vcpus": 1, "ram": 256, "disk": 1}}
    )["flavor"]["id"]
    image = client.post(
        "/image/v2/images", json={"name": "w", "disk_format": "raw", "container_format": "bare"}
    ).json()["id"]
    put = client.put(
        f"/image/v2/images/{image}/file",
        content=b"\0" * 4096,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204, put.text
    ports = [
        created(
            client,
            NETWORK + "/ports",
            {"port": {"network_id": net, "binding:vnic_type": "direct", "name": f"p{i}"}},
        )["port"]["id"]
        for i in range(SERVERS)
    ]

    def boot(i: int) -> str:
        body = {
            "server": {
                "name": f"w{i}",
                "flavorRef": flavor,
                "imageRef": image,
                "networks": [{"port": ports[i]}],
            }
        }
        for _ in range(10):  # a 503 (busy) says to retry
            resp = client.post(COMPUTE + "/servers", json=body)
            if resp.status_code != 503:
                break
            time.sleep(0.5)
        assert resp.status_code == 202, resp.text
        return str(resp.json()["server"]["id"])

    with ThreadPoolExecutor(max_workers=12) as pool:
        return list(pool.map(boot, range(SERVERS)))


def wait_active(client: httpx.Client, ids: list[str], timeout: float = 300) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        servers = client.get(COMPUTE + "/servers/detail").json()["servers"]
        mine = [s for s in servers if s["id"] in set(ids)]
        states = Counter(s["status"] for s in mine)
        assert not states["ERROR"], [s.get("fault") for s in mine if s["status"] == "ERROR"]
        if len(mine) == len(ids) and states["ACTIVE"] == len(ids):
            return mine
        assert time.monotonic() < deadline, states
        time.sleep(0.5)


def test_two_workers_on_postgresql_boot_many_servers_without_a_double_claim(
    tmp_path: Path,
) -> None:
    with fresh_schema(pg_url_or_skip(), prefix="t_workers_") as url:
        port, log = free_port(), tmp_path / "up.log"
        exe = Path(sys.executable).with_name("pcifleet")
        argv = [str(exe), "up", "--workers", "2", "--hosts", "2", "--database", url]
        argv += ["--port", str(port), "--data-dir", str(tmp_path / "data")]
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_up(proc, log)
            # the API runs in two processes of their own, the agents in this one
            children = subprocess.run(
                ["ps", "--ppid", str(proc.pid), "-o", "args="], capture_output=True, text=True
            ).stdout
            assert children.count("multiprocessing.spawn") == 2, children
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                client.headers["X-Auth-Token"] = token(client, tmp_path / "data" / "clouds.yaml")
                ids = boot_all(client)
                servers = wait_active(client, ids)
                bound = []
                for s in servers:
                    (vif,) = client.get(NETWORK + "/ports", params={"device_id": s["id"]}).json()[
                        "ports"
                    ]
                    bound.append((vif["binding:host_id"], vif["binding:profile"]["pci_slot"]))
            assert len(set(bound)) == SERVERS, Counter(bound).most_common(3)
            engine = make_engine(url)
            try:
                with engine.connect() as conn:
                    held = conn.execute(
                        select(D.c.host_id, D.c.address, D.c.instance_uuid).where(
                            D.c.instance_uuid.is_not(None)
                        )
                    ).all()
            finally:
                engine.dispose()
            assert sorted(r.instance_uuid for r in held) == sorted(ids)
            assert len({(r.host_id, r.address) for r in held}) == SERVERS
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        assert code == 0, log.read_text(errors="replace")[-3000:]
