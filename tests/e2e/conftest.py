"""``pcifleet up`` as a subprocess on a free port, shared by the end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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


def wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path, hosts: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pcifleet up exited early:\n{log.read_text()[-3000:]}")
        # Up means: listening, and every simulated host has reported its inventory.
        if "pcifleet is up" in log.read_text():
            try:
                httpx.get(url + "/v3", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"pcifleet up did not come up:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="package")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    data_dir = tmp_path_factory.mktemp("pcifleet-up")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir / "up.log"
    exe = Path(sys.executable).with_name("pcifleet")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "up",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--hosts",
                str(HOSTS),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_up(url, proc, log, HOSTS)
        clouds = data_dir / "clouds.yaml"
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds))
        for key in [k for k in env if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
            env.pop(key)
        yield Cloud(url, data_dir, clouds, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
