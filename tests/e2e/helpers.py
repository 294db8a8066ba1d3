"""Shared pieces of the end-to-end tests: the real CLI, an API client, bounded waits."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

OPENSTACK = str(Path(sys.executable).with_name("openstack"))
PCIFLEET = str(Path(sys.executable).with_name("pcifleet"))
COMPUTE = "/compute/v2.1"
NETWORK = "/networking/v2.0"


class OscRunner:
    """The real ``openstack`` CLI, one command at a time in one long-lived process
    (``osc_runner.py``): same code path as the script, without re-importing it for
    every command. One runner serves one thread."""

    def __init__(self, env: dict[str, str]) -> None:
        runner = Path(__file__).with_name("osc_runner.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(runner)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise AssertionError(f"openstack {' '.join(argv)} took over {timeout:.0f} s")
        line = self.proc.stdout.readline()
        assert line, f"the openstack runner died running {' '.join(argv)}"
        done = json.loads(line)
        return subprocess.CompletedProcess(
            ["openstack", *argv], done["rc"], done["out"], done["err"]
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


Cli = dict[str, str] | OscRunner


def run_osc(cli: Cli, *args: str, who: str = "pcifleet") -> subprocess.CompletedProcess[str]:
    """``openstack --os-cloud WHO ARGS``; the finished command, whatever its exit code.
    ``cli`` is a runner, or the environment of a fresh ``openstack`` process."""
    argv = ["--os-cloud", who, *args]
    if isinstance(cli, OscRunner):
        return cli.run(argv)
    return subprocess.run([OPENSTACK, *argv], env=cli, capture_output=True, text=True, timeout=180)


def osc_ok(cli: Cli, *args: str) -> str:
    proc = run_osc(cli, *args)
    assert proc.returncode == 0, f"openstack {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def osc_json(cli: Cli, *args: str) -> Any:
    return json.loads(osc_ok(cli, *args, "-f", "json"))


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 0.3) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class Api:
    """A thin, bounded httpx client with one token (all traffic to 127.0.0.1)."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = httpx.Client(
            base_url=url, headers={"X-Auth-Token": token}, timeout=httpx.Timeout(60.0)
        )

    def close(self) -> None:
        self.client.close()

    def req(self, method: str, path: str, expect: Iterable[int] = (200,), **kw: Any) -> Any:
        r = self.client.request(method, path, **kw)
        assert r.status_code in tuple(expect), f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def server(self, server_id: str) -> dict[str, Any] | None:
        r = self.client.get(f"{COMPUTE}/servers/{server_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return dict(r.json()["server"])

    def wait_status(self, server_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until the server shows one of ``statuses`` with no task in flight."""

        def settled() -> dict[str, Any] | None:
            s = self.server(server_id)
            if s is None:
                raise AssertionError(f"server {server_id} is gone")
            if s["status"] in statuses and s.get("OS-EXT-STS:task_state") is None:
                return s
            return None

        return dict(wait_for(f"server {server_id} in {statuses}", settled, timeout))

    def wait_gone(self, server_id: str, timeout: float = 60) -> None:
        wait_for(f"server {server_id} deleted", lambda: self.server(server_id) is None, timeout)

    def network(self, name: str, physnet: str, vlan: int, *, shared: bool = False) -> str:
        body = {
            "network": {
                "name": name,
                "provider:network_type": "vlan",
                "provider:physical_network": physnet,
                "provider:segmentation_id": vlan,
                "shared": shared,
            }
        }
        net = self.req("POST", NETWORK + "/networks", (201,), json=body)["network"]
        sub = {
            "subnet": {
                "network_id": net["id"],
                "cidr": f"10.{vlan % 250}.0.0/16",
                "ip_version": 4,
                "name": name + "-sub",
            }
        }
        self.req("POST", NETWORK + "/subnets", (201,), json=sub)
        return str(net["id"])

    def direct_port(self, network_id: str, name: str) -> str:
        body = {"port": {"network_id": network_id, "name": name, "binding:vnic_type": "direct"}}
        return str(self.req("POST", NETWORK + "/ports", (201,), json=body)["port"]["id"])

    def flavor(self, name: str) -> str:
        body = {"flavor": {"name": name, "vcpus": 1, "ram": 256, "disk": 1}}
        return str(self.req("POST", COMPUTE + "/flavors", (200, 201), json=body)["flavor"]["id"])

    def image(self, name: str, data: bytes = b"\0" * 65536, visibility: str = "shared") -> str:
        body = {
            "name": name,
            "disk_format": "raw",
            "container_format": "bare",
            "visibility": visibility,
        }
        image = self.req("POST", "/image/v2/images", (201,), json=body)
        self.req(
            "PUT",
            f"/image/v2/images/{image['id']}/file",
            (204,),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return str(image["id"])

    def boot(self, name: str, flavor: str, image: str, port: str) -> str:
        body = {
            "server": {
                "name": name,
                "flavorRef": flavor,
                "imageRef": image,
                "networks": [{"port": port}],
            }
        }
        return str(self.req("POST", COMPUTE + "/servers", (202,), json=body)["server"]["id"])

    def ports(self) -> list[dict[str, Any]]:
        return list(self.req("GET", NETWORK + "/ports")["ports"])

    def pools(self) -> list[dict[str, Any]]:
        """Every pool of every host (``count`` free of ``total``)."""
        caps = self.req("GET", "/pcifleet/v1/capacity", params={"include_down": "true"})
        return [dict(p, host=h["host"]) for h in caps["hosts"] for p in h["pools"]]


def assert_nothing_leaked(api: Api, network_id: str | None = None) -> None:
    """Every pool is whole again and no port (of ``network_id``, when given: other
    tests sharing the cloud keep servers of their own) keeps a binding or a device."""
    pools = api.pools()
    assert pools, "no pools reported"
    used = [p for p in pools if p["count"] != p["total"]]
    assert not used, f"pools not freed: {used}"
    bound = [
        p
        for p in api.ports()
        if network_id in (None, p["network_id"])
        if p.get("binding:host_id") or p.get("binding:profile") or p.get("device_id")
    ]
    assert not bound, f"ports still bound: {bound}"


def start_up(data_dir: Path, *extra: str, hosts: int = 2) -> tuple[subprocess.Popen[bytes], str]:
    """``pcifleet up`` as a child this test owns (kill it itself); the process and URL.

    Unlike ``running_up`` it hands the process back, so a test may ``kill -9`` it.
    """
    from .conftest import free_port, wait_until_up

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = data_dir.parent / f"up-{port}.log"
    args = ["up", "--port", str(port), "--data-dir", str(data_dir), "--hosts", str(hosts)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PCIFLEET, *args, *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until_up(url, proc, log)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def start_agent(
    url: str, work: Path, host: str, credential: str, *driver: str
) -> subprocess.Popen[bytes]:
    """``pcifleet agent`` for ``host`` as its own process, on the sample host's sysfs tree
    (written once under ``work``); ``driver`` are its --driver/--libvirt-uri options."""
    from pcifleet.host import write_sysfs
    from tests.pci.sample import sample_layout

    sysfs = work / "sys"
    if not sysfs.exists():
        write_sysfs(sample_layout(), sysfs)
    config = work / "pcifleet.toml"
    config.write_text(
        "[pci]\ndevice_spec = [\n"
        '  { devname = "ens1f0", physical_network = "physnet1" },\n'
        '  { devname = "ens2f0", physical_network = "physnet2" },\n'
        "]\n[agent]\nreport_interval = 5\nvcpus = 64\nmemory_mb = 262144\n"
    )
    cred = work / "credential"
    cred.write_text(credential)
    args = [
        PCIFLEET,
        "agent",
        "--controller",
        url,
        "--host",
        host,
        "--config",
        str(config),
        "--credential-file",
        str(cred),
        "--state-dir",
        str(work / "state"),
        "--sysfs-root",
        str(sysfs),
        *driver,
    ]
    with (work / "agent.log").open("ab") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def stop(proc: subprocess.Popen[bytes] | None, *, kill: bool = False) -> None:
    """End a child this test started: SIGKILL (``kill``) or SIGTERM, then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    if kill:
        proc.kill()
    else:
        proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def host_credential(api: Api, host: str) -> str:
    return str(api.req("POST", f"/pcifleet/v1/hosts/{host}/credential", (201,))["credential"])


def wait_host_up(api: Api, host: str, timeout: float = 60) -> None:
    def up() -> bool:
        r = api.client.get(f"/pcifleet/v1/hosts/{host}")
        return r.status_code == 200 and r.json()["host"]["status"] == "up"

    wait_for(f"host {host} up", up, timeout)


def admin_token(url: str, data_dir: Path) -> str:
    auth = yaml.safe_load((data_dir / "clouds.yaml").read_text())["clouds"]["pcifleet"]["auth"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth["username"],
                        "domain": {"name": "Default"},
                        "password": auth["password"],
                    }
                },
            },
            "scope": {"project": {"name": auth["project_name"], "domain": {"name": "Default"}}},
        }
    }
    r = httpx.post(url + "/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.headers["X-Subject-Token"]
