"""A cold move keeps what the guest wrote: two simulated hosts, each a real
agent (xml driver, its own state directory) talking to the controller
in-process through its real client, with real overlays made by qemu-img.

A pattern written into the server's overlay with ``qemu-io`` reads back on
the destination after a migrate and confirm, and after a resize and revert
the source's disk still has it. The same moves with placeholder disks (the
xml driver without qemu-img) carry them the same way, and a copy damaged on
the controller fails the move with a fault naming it, the source's disk
untouched.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from pcifleet.agent import Agent, AgentConfig, ControllerClient
from pcifleet.agent.bridges import NoHostNetworking
from pcifleet.agent.disks import GIB, Disks
from pcifleet.api.settings import ApiSettings
from pcifleet.virt import XmlDriver
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, sriov_network
from tests.api.test_servers import MV, boot, show
from tests.system import need_command

# Starlette's TestClient (the app in-process behind a sync httpx client, as
# the agent's client is) warns about its own httpx use and timeouts.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient
pytestmark = pytest.mark.filterwarnings("ignore::starlette.exceptions.StarletteDeprecationWarning")
BASE = "http://pcifleet.test"
PATTERN = "write -P 0xab 0 64k"


@dataclass
class Host:
    name: str
    agent: Agent
    disks: Disks

    def step(self) -> list[str]:
        """Run what the controller's feed hands this host now; their kinds."""
        tasks = self.agent.client.poll_tasks(0)
        self.agent.run_tasks(tasks)
        return [str(t["kind"]) for t in tasks]


def real_host(app: FastAPI, api: Api, tokens: Tokens, name: str, root: Path, qemu_img: str | None
              ) -> Host:  # fmt: skip
    registered = FakeAgent(api, tokens.admin, name)
    registered.report()  # the controller knows its devices; this agent claims none
    credential = registered.headers["Authorization"].removeprefix("Bearer ")
    config = AgentConfig(controller=BASE, host=name, credential=credential, driver="xml",
                         state_dir=root / name, plug_bridges_setting=False)  # fmt: skip
    client = ControllerClient(BASE, name, credential)
    client.close()
    # the app in-process, through the client's own calls
    client._http = TestClient(app, base_url=BASE, headers=registered.headers)
    disks = Disks(config.state_dir / "disks", qemu_img)
    agent = Agent(config, [], client=client, driver=XmlDriver(config.state_dir), disks=disks,
                  networking=NoHostNetworking())  # fmt: skip
    return Host(name, agent, disks)


@pytest.fixture
def world(app: FastAPI, api: Api, tokens: Tokens, tmp_path: Path) -> dict[str, Any]:
    return {"app": app, "api": api, "tokens": tokens, "root": tmp_path / "hosts"}


def flavor(api: Api, tokens: Tokens, name: str, disk: int) -> str:
    body = {"flavor": {"name": name, "ram": 512, "vcpus": 1, "disk": disk}}
    resp = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json=body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["flavor"]["id"])


def image(api: Api, tokens: Tokens) -> str:
    body = {"name": "blank", "visibility": "public", "disk_format": "raw",
            "container_format": "bare"}  # fmt: skip
    found = api.post("/image/v2/images", token=tokens.admin, json=body).json()
    resp = api.put(f"/image/v2/images/{found['id']}/file", token=tokens.admin,
                   content=b"\0" * (1 << 20))  # fmt: skip
    assert resp.status_code == 204, resp.text
    return str(found["id"])


def run_until(hosts: dict[str, Host], api: Api, tokens: Tokens, uuid: str, status: str) -> None:
    for _ in range(6):
        if show(api, tokens.admin, uuid)["status"] == status:
            return
        for host in hosts.values():
            host.step()
    assert show(api, tokens.admin, uuid)["status"] == status


def act(api: Api, tokens: Tokens, uuid: str, body: dict[str, Any]) -> None:
    resp = api.post(f"{COMPUTE}/servers/{uuid}/action", token=tokens.admin, json=body, headers=MV)
    assert resp.status_code in (202, 204), resp.text


def qemu_io(disk: Path, command: str) -> subprocess.CompletedProcess[str]:
    qemu = need_command("qemu-io", "qemu-utils")
    return subprocess.run([qemu, "-f", "qcow2", "-c", command, str(disk)],
                          capture_output=True, text=True, check=False)  # fmt: skip


def has_pattern(disk: Path) -> bool:
    done = qemu_io(disk, "read -P 0xab 0 64k")
    # qemu-io exits 0 either way; a mismatch says so on stdout
    return done.returncode == 0 and "Pattern verification failed" not in done.stdout


def booted(world: dict[str, Any], qemu_img: str | None) -> tuple[str, Host, Host, dict[str, Host]]:
    """An active server: (its uuid, its host, the other host, both)."""
    api, tokens = world["api"], world["tokens"]
    hosts = {n: real_host(world["app"], api, tokens, n, world["root"], qemu_img)
             for n in ("compute1", "compute2")}  # fmt: skip
    env = {"flavor": flavor(api, tokens, "d1", 1), "image": image(api, tokens),
           "net": sriov_network(api, tokens.admin)}  # fmt: skip
    resp = boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}])
    assert resp.status_code == 202, resp.text
    uuid = str(resp.json()["server"]["id"])
    run_until(hosts, api, tokens, uuid, "ACTIVE")
    source = hosts[host_of(api, tokens, uuid)]
    return uuid, source, next(h for h in hosts.values() if h is not source), hosts


def copies(settings: ApiSettings) -> list[Path]:
    root = settings.data_dir / "move-disks"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def host_of(api: Api, tokens: Tokens, uuid: str) -> str:
    return str(show(api, tokens.admin, uuid)["OS-EXT-SRV-ATTR:host"])


@pytest.fixture
def qemu_img() -> str:
    need_command("qemu-io", "qemu-utils")
    return need_command("qemu-img", "qemu-utils")


def info(qemu_img: str, disk: Path) -> dict[str, Any]:
    out = subprocess.run([qemu_img, "info", "-f", "qcow2", "--output=json", str(disk)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    found: dict[str, Any] = json.loads(out)
    return found


def test_a_migrate_and_confirm_keeps_what_the_guest_wrote(
    world: dict[str, Any], settings: ApiSettings, qemu_img: str
) -> None:
    api, tokens = world["api"], world["tokens"]
    uuid, source, dest, _ = booted(world, qemu_img)
    written = qemu_io(source.disks.path_of(uuid), PATTERN)
    assert written.returncode == 0, written.stderr

    act(api, tokens, uuid, {"migrate": None})
    assert source.step() == ["move_source"]
    (copy,) = copies(settings)
    # the overlay as it is on the source, without the image it is backed by
    assert copy.read_bytes() == source.disks.path_of(uuid).read_bytes()
    assert copy.parent.name == uuid and info(qemu_img, copy)["virtual-size"] == 1 * GIB
    assert dest.step() == ["move_dest"]
    assert show(api, tokens.admin, uuid)["status"] == "VERIFY_RESIZE"
    moved = dest.disks.path_of(uuid)
    assert has_pattern(moved)
    backing = info(qemu_img, moved)["full-backing-filename"]
    assert backing.startswith(str(world["root"] / dest.name))  # its own cached image
    assert has_pattern(source.disks.path_of(uuid))  # kept until confirmed

    act(api, tokens, uuid, {"confirmResize": None})
    assert copies(settings) == []
    assert source.step() == ["confirm_source"]
    assert not source.disks.path_of(uuid).exists()
    assert has_pattern(moved) and host_of(api, tokens, uuid) == dest.name


def test_a_resize_grows_the_disk_and_a_revert_keeps_the_sources(
    world: dict[str, Any], settings: ApiSettings, qemu_img: str
) -> None:
    api, tokens = world["api"], world["tokens"]
    uuid, source, dest, hosts = booted(world, qemu_img)
    assert qemu_io(source.disks.path_of(uuid), PATTERN).returncode == 0
    bigger = flavor(api, tokens, "d2", 2)

    act(api, tokens, uuid, {"resize": {"flavorRef": bigger}})
    run_until(hosts, api, tokens, uuid, "VERIFY_RESIZE")
    moved = dest.disks.path_of(uuid)
    assert has_pattern(moved) and info(qemu_img, moved)["virtual-size"] == 2 * GIB
    assert qemu_io(moved, "write -P 0xcd 0 64k").returncode == 0  # the guest writes on

    act(api, tokens, uuid, {"revertResize": None})
    run_until(hosts, api, tokens, uuid, "ACTIVE")
    assert host_of(api, tokens, uuid) == source.name
    assert not moved.exists()
    kept = source.disks.path_of(uuid)
    assert has_pattern(kept) and info(qemu_img, kept)["virtual-size"] == 1 * GIB
    assert copies(settings) == []


def test_placeholder_disks_travel_the_same_way(
    world: dict[str, Any], settings: ApiSettings
) -> None:
    api, tokens = world["api"], world["tokens"]
    uuid, source, dest, hosts = booted(world, None)
    before = json.loads(source.disks.path_of(uuid).read_text())
    bigger = flavor(api, tokens, "d3", 3)

    act(api, tokens, uuid, {"resize": {"flavorRef": bigger}})
    run_until(hosts, api, tokens, uuid, "VERIFY_RESIZE")
    after = json.loads(dest.disks.path_of(uuid).read_text())
    assert after["virtual_size"] == 3 * GIB and before["virtual_size"] == 1 * GIB
    assert after["backing_file"].startswith(str(world["root"] / dest.name))
    assert before["backing_file"].startswith(str(world["root"] / source.name))

    act(api, tokens, uuid, {"confirmResize": None})
    assert source.step() == ["confirm_source"]
    assert not source.disks.path_of(uuid).exists()
    assert copies(settings) == []


def test_a_disk_damaged_on_the_controller_fails_the_move_and_spares_the_source(
    world: dict[str, Any], settings: ApiSettings
) -> None:
    api, tokens = world["api"], world["tokens"]
    uuid, source, dest, _ = booted(world, None)
    kept = source.disks.path_of(uuid).read_bytes()

    act(api, tokens, uuid, {"migrate": None})
    assert source.step() == ["move_source"]
    (copy,) = copies(settings)
    copy.write_bytes(copy.read_bytes().replace(b"placeholder", b"Placeholder"))
    assert dest.step() == ["move_dest"]
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ERROR" and host_of(api, tokens, uuid) == source.name
    assert "SHA-256" in server["fault"]["message"]
    assert "the download was deleted" in server["fault"]["message"]
    (migration,) = api.get(f"{COMPUTE}/os-migrations", token=tokens.admin).json()["migrations"]
    assert migration["status"] == "error"
    assert source.disks.path_of(uuid).read_bytes() == kept
    assert not dest.disks.path_of(uuid).exists() and list(dest.disks.disks_dir.iterdir()) == []
    assert copies(settings) == []
