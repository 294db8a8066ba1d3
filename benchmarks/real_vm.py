"""Time to ACTIVE of real QEMU domains, and what the agent costs in memory.

Starts ``pcifleet up --hosts 0`` (the API alone) and one ``pcifleet agent``
process of its own with the ``libvirt`` driver on this machine's libvirtd, for a
simulated host whose VF netdevs are real veths (one NIC, a few VFs). Then,
through the APIs, boots servers one after another, each with a ``macvtap`` port
and a normal port, and measures from the ``POST /servers`` to the first GET
that shows it ACTIVE (polled every 50 ms): image download (first boot only),
overlay disk, bridge, define and start of a real domain. The agent's resident
memory (VmRSS, and its peak VmHWM) is read from /proc before the first boot,
with all servers running, and after they are deleted.

    sudo .venv/bin/python benchmarks/real_vm.py             # 10 servers
    sudo .venv/bin/python benchmarks/real_vm.py --smoke     # CI: 2 servers

Needs root and libvirtd at qemu:///system (``.ci/libvirtd start``); without
them it says why and exits 0, or 2 when PCIFLEET_REQUIRE_SYSTEM is set (CI).
Exits 1 when a server does not become ACTIVE or the agent leaves a domain.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from pcifleet.cli.simnet import ensure_veths, remove_veths, vf_netdevs, with_unique_vf_netdevs
from pcifleet.host import fake_devices_from, write_fake_sysfs
from pcifleet.pci import HostLayout

BIN = Path(sys.executable).parent
URI = "qemu:///system"
COMPUTE, NETWORK, IMAGE = "/compute/v2.1", "/networking/v2.0", "/image/v2"
LAYOUT = """
hostname = "bench"
[[nics]]
address = "0000:3b:00.0"
vendor_id = "8086"
product_id = "1572"
vf_product_id = "154c"
numvfs = {vfs}
totalvfs = 64
numa_node = 0
ifname = "ens1f0"
driver = "i40e"
vf_driver = "iavf"
"""
console = Console()


def unavailable(reason: str) -> int:
    if os.environ.get("PCIFLEET_REQUIRE_SYSTEM", "") not in ("", "0"):
        console.print(f"[red]cannot run: {reason}[/red]")
        return 2
    console.print(f"skipped: {reason}")
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


@contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait(what: str, check: Any, timeout: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def token(url: str, data_dir: Path) -> str:
    password = (data_dir / "admin-password").read_text().strip()
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": "admin", "domain": {"id": "default"}, "password": password}
                },
            },
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }
    }
    r = httpx.post(url + "/v3/auth/tokens", json=body, timeout=30)
    r.raise_for_status()
    return r.headers["X-Subject-Token"]


def run(count: int, work: Path) -> int:
    data_dir = work / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up_args = [
        str(BIN / "pcifleet"),
        "up",
        "--hosts",
        "0",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--reconcile-interval",
        "0",
    ]
    with process(up_args, work / "up.log") as up:
        wait("the API", lambda: up.poll() is not None or _answers(url), 90, 0.2)
        if up.poll() is not None:
            console.print((work / "up.log").read_text()[-2000:])
            return 2
        client = httpx.Client(
            base_url=url, headers={"X-Auth-Token": token(url, data_dir)}, timeout=60
        )
        host = f"bench-{os.getpid()}"
        layout = HostLayout.from_dict(tomllib.loads(LAYOUT.format(vfs=count + 1)))
        devices = with_unique_vf_netdevs(layout.devices(), f"{os.getpid() % 65536:04x}", 1)
        sysfs = work / "sys"
        write_fake_sysfs(fake_devices_from(devices), sysfs)
        veths = vf_netdevs(devices)
        ensure_veths(veths)
        try:
            return _boots(client, url, work, host, sysfs, count)
        finally:
            remove_veths(veths)
            client.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url + "/v3", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _boots(client: httpx.Client, url: str, work: Path, host: str, sysfs: Path, count: int) -> int:
    cred = client.post(f"/pcifleet/v1/hosts/{host}/credential").json()["credential"]
    (work / "credential").write_text(cred)
    config = work / "agent.toml"
    config.write_text(
        '[pci]\ndevice_spec = [{ devname = "ens1f0", physical_network = "physnet1" }]\n'
        "[agent]\nreport_interval = 30\nvcpus = 64\nmemory_mb = 65536\n"
    )
    agent_args = [
        str(BIN / "pcifleet"),
        "agent",
        "--controller",
        url,
        "--host",
        host,
        "--config",
        str(config),
        "--credential-file",
        str(work / "credential"),
        "--driver",
        "libvirt",
        "--libvirt-uri",
        URI,
        "--state-dir",
        str(work / "state"),
        "--sysfs-root",
        str(sysfs),
    ]
    net = client.post(
        NETWORK + "/networks",
        json={
            "network": {
                "name": "bench-sriov",
                "provider:network_type": "flat",
                "provider:physical_network": "physnet1",
            }
        },
    ).json()["network"]
    plain = client.post(NETWORK + "/networks", json={"network": {"name": "bench-plain"}}).json()
    plain = plain["network"]
    for n, cidr in ((net, "10.81.0.0/24"), (plain, "10.82.0.0/24")):
        client.post(
            NETWORK + "/subnets",
            json={"subnet": {"network_id": n["id"], "cidr": cidr, "ip_version": 4}},
        ).raise_for_status()
    image = client.post(
        IMAGE + "/images",
        json={"name": "bench-tiny", "disk_format": "raw", "container_format": "bare"},
    ).json()
    client.put(
        f"{IMAGE}/images/{image['id']}/file",
        content=b"\0" * (1 << 20),
        headers={"Content-Type": "application/octet-stream"},
    ).raise_for_status()
    flavor = client.post(
        COMPUTE + "/flavors",
        json={"flavor": {"name": "bench.tiny", "vcpus": 1, "ram": 128, "disk": 1}},
    ).json()["flavor"]
    times: list[float] = []
    servers: list[str] = []
    failed = 0
    with process(agent_args, work / "agent.log") as agent:
        wait(
            "the agent's report",
            lambda: (
                client.get(f"/pcifleet/v1/hosts/{host}").json().get("host", {}).get("status")
                == "up"
            ),
            60,
            0.2,
        )
        before = memory_kb(agent.pid)
        for i in range(count):
            ports = [
                client.post(
                    NETWORK + "/ports", json={"port": {"network_id": n, "binding:vnic_type": v}}
                ).json()["port"]["id"]
                for n, v in ((net["id"], "macvtap"), (plain["id"], "normal"))
            ]
            started = time.perf_counter()
            sid = client.post(
                COMPUTE + "/servers",
                json={
                    "server": {
                        "name": f"bench-{i}",
                        "flavorRef": flavor["id"],
                        "imageRef": image["id"],
                        "networks": [{"port": p} for p in ports],
                    }
                },
            ).json()["server"]["id"]
            servers.append(sid)
            status = wait(f"server {sid}", lambda s=sid: _settled(client, s), 180)
            if status != "ACTIVE":
                failed += 1
                console.print(f"[red]{sid}: {status}[/red]")
                continue
            times.append(time.perf_counter() - started)
        running = memory_kb(agent.pid)
        for sid in servers:
            client.delete(f"{COMPUTE}/servers/{sid}")
        for sid in servers:
            wait(
                f"{sid} gone",
                lambda s=sid: client.get(f"{COMPUTE}/servers/{s}").status_code == 404,
                180,
                0.2,
            )
        after = memory_kb(agent.pid)
    left = [s for s in servers if f"pcifleet-{s}" in _domains()]
    _report(times, before, running, after, failed, left)
    return 1 if failed or left else 0


def _settled(client: httpx.Client, sid: str) -> str | None:
    server = client.get(f"{COMPUTE}/servers/{sid}").json()["server"]
    return server["status"] if server["status"] in ("ACTIVE", "ERROR") else None


def _domains() -> set[str]:
    out = subprocess.run(
        ["virsh", "-c", URI, "list", "--all", "--name"], capture_output=True, text=True, check=False
    ).stdout
    return set(out.split())


def _report(
    times: list[float],
    before: dict[str, int],
    running: dict[str, int],
    after: dict[str, int],
    failed: int,
    left: list[str],
) -> None:
    table = Table(title="real QEMU domains: server create -> ACTIVE (macvtap + normal port)")
    for col in ("servers", "first boot s", "p50 s", "max s", "failed", "domains left"):
        table.add_column(col, justify="right")
    later = times[1:] or times
    table.add_row(
        str(len(times) + failed),
        f"{times[0]:.2f}" if times else "-",
        f"{statistics.median(later):.2f}" if later else "-",
        f"{max(later):.2f}" if later else "-",
        str(failed),
        str(len(left)),
    )
    console.print(table)
    mem = Table(title="agent process memory (MiB)")
    for col in ("", "idle", f"{len(times)} running", "after delete", "peak"):
        mem.add_column(col, justify="right")
    mem.add_row(
        "RSS",
        f"{before['VmRSS'] / 1024:.1f}",
        f"{running['VmRSS'] / 1024:.1f}",
        f"{after['VmRSS'] / 1024:.1f}",
        f"{after['VmHWM'] / 1024:.1f}",
    )
    console.print(mem)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=10, help="servers to boot [10]")
    parser.add_argument("--smoke", action="store_true", help="CI: 2 servers")
    args = parser.parse_args()
    if os.geteuid() != 0:
        return unavailable("needs root (veths, bridges, qemu:///system)")
    if (
        shutil.which("virsh") is None
        or subprocess.run(
            ["virsh", "-c", URI, "version"], capture_output=True, check=False
        ).returncode
    ):
        return unavailable(f"no libvirtd at {URI} (start one: .ci/libvirtd start)")
    count = 2 if args.smoke else max(1, args.servers)
    work = Path(tempfile.mkdtemp(prefix="pcifleet-bench-real-"))
    work.chmod(0o711)  # libvirt's qemu user must reach the disks below it
    try:
        return run(count, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
