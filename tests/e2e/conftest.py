"""``pcifleet up`` as a subprocess on a free port, shared by the end-to-end tests,
with the clients a CLI test drives it through: ``cli`` (the real ``openstack``
CLI reading the clouds.yaml ``pcifleet up`` wrote: ``pcifleet`` is the admin,
``pcifleet-demo`` a member) and ``api`` (the admin over HTTP, for setup and
for polling). A module with a cloud of its own overrides them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .helpers import Api, OscRunner, admin_token

HOSTS = 2


@dataclass
class Cloud:
    url: str
    data_dir: Path
    clouds_yaml: Path
    env: dict[str, str]

    def domain_xml(self, host: str, server_id: str) -> str:
        return (self.data_dir / "hosts" / host / "domains" / f"{server_id}.xml").read_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pcifleet up exited early:\n{log.read_text()[-3000:]}")
        # "up" is printed once the API listens and every simulated host has reported.
        if "pcifleet is up" in log.read_text():
            try:
                httpx.get(url + "/v3", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"pcifleet up did not come up:\n{log.read_text()[-3000:]}")


@contextmanager
def running_up(data_dir: Path, *extra: str, hosts: int = 1) -> Iterator[str]:
    """``pcifleet up`` on a free port with ``data_dir``; yields its URL, stops it after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir.parent / f"up-{port}.log"
    exe = Path(sys.executable).with_name("pcifleet")
    args = ["up", "--port", str(port), "--data-dir", str(data_dir), "--hosts", str(hosts), *extra]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(exe), *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="package")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    data_dir = tmp_path_factory.mktemp("pcifleet-up") / "data"
    with running_up(data_dir, hosts=HOSTS) as url:
        clouds = data_dir / "clouds.yaml"
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds))
        for key in [k for k in env if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
            env.pop(key)
        yield Cloud(url, data_dir, clouds, env)


@pytest.fixture(scope="module")
def cli(cloud: Cloud) -> Iterator[OscRunner]:
    runner = OscRunner(cloud.env)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="module")
def api(cloud: Cloud) -> Iterator[Api]:
    client = Api(cloud.url, admin_token(cloud.url, cloud.data_dir))
    try:
        yield client
    finally:
        client.close()
