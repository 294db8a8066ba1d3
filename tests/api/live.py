"""A live API server for the client tests: uvicorn in a subprocess on a free
127.0.0.1 port (the app factory as an operator would start it), a store that is
migrated and bootstrapped first, a clouds.yaml, and a fake agent thread that
finishes the host's tasks through the real /pcifleet/v1 API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from pcifleet.api.bootstrap import bootstrap, clouds_yaml
from pcifleet.pci import HostLayout
from pcifleet.store.db import default_database_url, make_engine, upgrade
from tests.api.inventory import sample_layout, sample_report

ADMIN_PASSWORD = "live-admin"
DEMO_PASSWORD = "live-demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Live:
    url: str
    clouds_yaml: Path
    data_dir: Path

    def token(
        self, user: str = "admin", password: str = ADMIN_PASSWORD, project: str = "admin"
    ) -> str:
        return token_at(self.url, user, password, project)


@contextmanager
def live_server(tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Live]:
    data_dir = tmp / "data"
    url = default_database_url(data_dir)
    engine = make_engine(url)
    upgrade(engine)
    creds = bootstrap(engine, ADMIN_PASSWORD, DEMO_PASSWORD)
    engine.dispose()
    port = free_port()
    layout: HostLayout = sample_layout()
    env = dict(
        os.environ,
        PCIFLEET_DATABASE_URL=url,
        PCIFLEET_DATA_DIR=str(data_dir),
        PCIFLEET_PCI_ALIASES=json.dumps(list(layout.alias)),
        **(extra_env or {}),
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "pcifleet.api.app:app_from_env",
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/", timeout=1).status_code == 300:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError((tmp / "server.log").read_text())
            time.sleep(0.05)
        clouds = tmp / "clouds.yaml"
        clouds.write_text(yaml.safe_dump(clouds_yaml(base, creds)))
        yield Live(base, clouds, data_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@contextmanager
def api_processes(tmp: Path, database_url: str, count: int) -> Iterator[list[str]]:
    """``count`` API processes (uvicorn, as an operator starts them) sharing one
    migrated and bootstrapped store; yields their base URLs."""
    engine = make_engine(database_url)
    upgrade(engine)
    bootstrap(engine, ADMIN_PASSWORD, DEMO_PASSWORD)
    engine.dispose()
    env = dict(
        os.environ,
        PCIFLEET_DATABASE_URL=database_url,
        PCIFLEET_DATA_DIR=str(tmp / "data"),
        PCIFLEET_PCI_ALIASES=json.dumps(list(sample_layout().alias)),
    )
    procs: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for i in range(count):
            port = free_port()
            cmd = [sys.executable, "-m", "uvicorn", "--factory",
                   "pcifleet.api.app:app_from_env", "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning"]  # fmt: skip
            log = (tmp / f"api-{i}.log").open("wb")
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/", timeout=1).status_code == 300:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"API process exited: {url}")
                time.sleep(0.05)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def token_at(url: str, user: str, password: str, project: str) -> str:
    domain = {"name": "Default"}
    auth = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": user, "domain": domain, "password": password}},
            },
            "scope": {"project": {"name": project, "domain": domain}},
        }
    }
    return httpx.post(f"{url}/v3/auth/tokens", json=auth).headers["X-Subject-Token"]


class AgentThread(threading.Thread):
    """Reports the sample host, then finishes each task it is fed with ``done``."""

    def __init__(self, live: Live, host: str) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.host = host
        self.stop = threading.Event()
        admin = live.token()
        resp = httpx.post(
            f"{live.url}/pcifleet/v1/hosts/{host}/credential", headers={"X-Auth-Token": admin}
        )
        self.headers = {"Authorization": f"Bearer {resp.json()['credential']}"}
        report = httpx.post(
            f"{live.url}/pcifleet/v1/hosts/{host}/inventory",
            json=sample_report(0),
            headers=self.headers,
        )
        assert report.status_code == 200, report.text
        self.done: list[dict[str, Any]] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.live.url, headers=self.headers, timeout=30) as client:
            while not self.stop.is_set():
                resp = client.get(f"/pcifleet/v1/hosts/{self.host}/tasks", params={"wait": 0.5})
                for task in resp.json()["tasks"]:
                    client.post(f"/pcifleet/v1/tasks/{task['id']}/result", json={"state": "done"})
                    self.done.append(task)
