"""Boots per second through the whole boot path over HTTP, to ACTIVE.

Starts ``pcifleet up`` (the API, the store and N simulated hosts, each a real
agent with the ``xml`` driver) as an operator would, on a free loopback port,
then through the OpenStack APIs alone: makes a vlan network with a subnet on
each physical network the hosts have VFs on, a flavor without and one with
``pci_passthrough:alias`` = ``gpu:1``, a small raw image, and one ``direct``
port per server, so every boot claims a VF (and every GPU boot a GPU too).
Then it fires the boots with bounded concurrency, polls
``GET /servers/detail?changes-since=...`` (one list call per interval, the
servers changed since shortly before the previous one; the whole list every
2 s) until each server is ACTIVE or ERROR, deletes them all and waits until
they are gone, and finally checks that every PCI pool has as many free
devices as it had before.

    .venv/bin/python benchmarks/boot.py                      # 3 hosts, 200 servers, SQLite
    .venv/bin/python benchmarks/boot.py --database postgresql+psycopg://...  # fresh schema
    .venv/bin/python benchmarks/boot.py --smoke              # CI: 2 hosts, 20 servers
    .venv/bin/python benchmarks/boot.py --url http://127.0.0.1:8774 --password-file PATH

With ``--url`` it runs against a controller that is already running and only
creates (and removes) its own resources, all named ``bench-<run id>-...``.
Time to ACTIVE is measured from sending the server's ``POST`` to the first
list that shows it ACTIVE, so it is as coarse as the poll interval plus one
list call. The controller's CPU time per boot and per delete (user + system,
all its threads: API, jobs and the simulated hosts' agents, from /proc) is
printed when the controller was started here; the watcher's polls are in it.
A 503 (the database is busy) is retried, as its message asks, and counted.
Exits 1 when a server went ERROR or never left BUILD, a device is still held
at the end, or any 5xx other than 503 was answered; 2 when the run cannot
start (the fleet is too small, the controller does not come up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from pcifleet.host import load_layout
from pcifleet.pci import DevType, classify, parse_aliases, parse_device_specs

COMPUTE = "/compute/v2.1"
NETWORK = "/networking/v2.0"
IMAGE = "/image/v2"
FLAVOR_VCPUS, FLAVOR_RAM_MB = 1, 512
IMAGE_BYTES = 1024 * 1024
GPU_ALIAS = "gpu"
MAX_503_RETRIES = 8
CHANGES_MARGIN_S = 1.0  # how far a changes-since poll looks back before the previous one
FULL_LIST_S = 2.0  # how often the watcher lists every server all the same
CLEANUP_S = 60.0  # the longest an interrupted run spends removing what it made
console = Console()
T = TypeVar("T")


class BenchError(Exception):
    """The run cannot go on (exit 2)."""


# --- the sample host: what a simulated host offers --------------------------------


def sample_host_vfs() -> dict[str, int]:
    """VFs per physical network of one sample host (what ``pcifleet up`` simulates)."""
    layout = load_layout()
    classified = classify(layout.devices(), parse_device_specs(list(layout.device_spec)))
    vfs: Counter[str] = Counter()
    for c in classified:
        net = (c.tags or {}).get("physical_network")
        if c.device.dev_type == DevType.VF and net:
            vfs[str(net)] += 1
    return dict(vfs)


# --- the controller: started here, or already running ------------------------------


@dataclass
class Target:
    url: str
    password: str
    user: str = "admin"
    project: str = "admin"
    database: str = "?"
    log: Path | None = None
    expected_hosts: int | None = None
    pid: int | None = None  # the controller's process, when started here


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the fields after the command name, which is in parentheses and may hold spaces
    return stat.rpartition(")")[2].split()


def _descendants(pid: int) -> list[int]:
    """``pid``'s living child processes, theirs, and so on (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU the process (all its threads) and its living child
    processes (``--workers``: the API processes) have used, from /proc."""
    if pid is None:
        return None
    ticks = 0
    for each in [pid, *_descendants(pid)]:
        fields = _stat_fields(each)
        if fields is None:
            if each == pid:
                return None
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return log.read_text(errors="replace")[-chars:]


def stop_process(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM (uvicorn and the agents shut down cleanly), then SIGKILL; bounded."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        console.print(f"[yellow]pcifleet up did not stop in {grace:.0f} s; killing it[/yellow]")
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def started_controller(
    hosts: int, database: str | None, tmp: Path, workers: int = 1
) -> Iterator[Target]:
    """``pcifleet up`` on a free loopback port, in its own session (Ctrl-C is ours to pass on)."""
    with ExitStack() as stack:
        url_db = database
        if database and make_url(database).get_backend_name() == "postgresql":
            from pcifleet.store.db import fresh_schema

            # Entered first, so the schema is dropped after the process has stopped.
            url_db = stack.enter_context(fresh_schema(database, prefix="bench_boot_"))
        port = free_port()
        data_dir = tmp / "data"
        log = tmp / "up.log"
        exe = Path(sys.executable).with_name("pcifleet")
        cmd = [str(exe), "up", "--bind", "127.0.0.1", "--port", str(port)]
        cmd += ["--data-dir", str(data_dir), "--hosts", str(hosts)]
        if url_db:
            cmd += ["--database", url_db]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        stack.callback(stop_process, proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        password_file = data_dir / "admin-password"
        while True:
            if proc.poll() is not None:
                raise BenchError(f"pcifleet up exited with {proc.returncode}:\n{log_tail(log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"pcifleet up did not answer in 120 s:\n{log_tail(log)}")
            try:
                httpx.get(url + "/v3", timeout=2).raise_for_status()
                if password_file.exists():
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        backend = make_url(url_db).get_backend_name() if url_db else "sqlite"
        yield Target(
            url=url,
            password=password_file.read_text().strip(),
            database=backend,
            log=log,
            expected_hosts=hosts,
            pid=proc.pid,
        )


# --- HTTP -------------------------------------------------------------------------


@dataclass
class Stats:
    """Every answer by (operation, status); transport failures as status 0."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)

    def count(self, op: str, status: int) -> None:
        self.answers[(op, status)] += 1

    def non_2xx(self) -> dict[str, int]:
        return {
            f"{op} {status or 'no answer'}": n
            for (op, status), n in sorted(self.answers.items())
            if not 200 <= status < 300
        }

    def bad_5xx(self) -> int:
        return sum(n for (_, s), n in self.answers.items() if s >= 500 and s != 503)


class Api:
    def __init__(self, client: httpx.AsyncClient, stats: Stats) -> None:
        self.client = client
        self.stats = stats

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        retry_conflict: bool = False,
        **kw: Any,
    ) -> httpx.Response:
        """One request; raises BenchError for an unexpected answer.

        A 503 (database busy) is retried with backoff, and with ``retry_conflict``
        a 409 that says it lost a race with a concurrent change; both are counted.
        """
        for attempt in range(MAX_503_RETRIES + 1):
            try:
                resp = await self.client.request(method, path, **kw)
            except httpx.TransportError as exc:
                self.stats.count(op, 0)
                raise BenchError(f"{method} {path}: {exc!r}") from None
            self.stats.count(op, resp.status_code)
            lost_race = (
                retry_conflict and resp.status_code == 409 and "concurrent change" in resp.text
            )
            if (resp.status_code == 503 or lost_race) and attempt < MAX_503_RETRIES:
                await asyncio.sleep(min(1.0, 0.05 * 2**attempt) * (0.5 + random.random()))
                continue
            if resp.is_success or resp.status_code in ok:
                return resp
            raise BenchError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
        raise AssertionError("unreachable")


async def get_token(client: httpx.AsyncClient, target: Target) -> str:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": target.user,
                        "domain": {"id": "default"},
                        "password": target.password,
                    }
                },
            },
            "scope": {"project": {"name": target.project, "domain": {"id": "default"}}},
        }
    }
    resp = await client.post("/v3/auth/tokens?nocatalog", json=body)
    if resp.status_code != 201:
        raise BenchError(f"token: {resp.status_code} {resp.text[:300]}")
    return resp.headers["X-Subject-Token"]


# --- the run ----------------------------------------------------------------------


@dataclass
class Plan:
    servers: int
    concurrency: int
    poll_interval: float
    timeout: float
    gpu_share: float
    list_repeats: int = 5


@dataclass
class Boot:
    index: int
    name: str
    port_id: str = ""
    network: str = ""
    gpu: bool = False
    server_id: str | None = None
    t_post: float = 0.0
    post_s: float = 0.0
    post_status: int = 0
    t_final: float | None = None
    status: str = "BUILD"
    fault: str = ""


@dataclass
class Created:
    networks: list[str] = field(default_factory=list)
    flavors: list[str] = field(default_factory=list)
    image: str | None = None
    ports: list[str] = field(default_factory=list)
    servers: list[str] = field(default_factory=list)


def pool_key(host: str, pool: dict[str, Any]) -> str:
    return f"{host} {pool.get('pool_id') or json.dumps(pool, sort_keys=True)}"


async def pools(api: Api) -> dict[str, tuple[int, int, dict[str, Any]]]:
    """{host + pool id: (free, total, pool)} over every up host."""
    body = (await api.call("capacity", "GET", "/pcifleet/v1/capacity")).json()
    out = {}
    for host in body["hosts"]:
        for pool in host["pools"]:
            out[pool_key(host["host"], pool)] = (
                int(pool.get("count", 0)),
                int(pool.get("total", pool.get("count", 0))),
                pool,
            )
    return out


async def wait_for_hosts(api: Api, expected: int | None, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        hosts = (await api.call("hosts", "GET", "/pcifleet/v1/hosts")).json()["hosts"]
        up = [h for h in hosts if h.get("status") == "up" and h.get("state") == "enabled"]
        if (expected is None and up) or (expected is not None and len(up) >= expected):
            return len(up)
        if time.monotonic() > deadline:
            raise BenchError(f"{len(up)} host(s) up after {timeout:.0f} s, want {expected or 1}")
        await asyncio.sleep(0.2)


def vf_free_by_physnet(before: dict[str, tuple[int, int, dict[str, Any]]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for free, _total, pool in before.values():
        net = (pool.get("tags") or {}).get("physical_network")
        if pool.get("dev_type") == "type-VF" and net:
            out[str(net)] += free
    return dict(out)


def gpu_free(before: dict[str, tuple[int, int, dict[str, Any]]]) -> int:
    """Free devices in pools the sample host's ``gpu`` alias matches."""
    aliases = parse_aliases(list(load_layout().alias)).get(GPU_ALIAS, [])
    total = 0
    for free, _total, pool in before.values():
        for a in aliases:
            if (
                str(pool.get("vendor_id")) == a.vendor_id
                and str(pool.get("product_id")) == a.product_id
                and (a.device_type is None or pool.get("dev_type") == a.device_type.value)
            ):
                total += free
                break
    return total


def subnet_for(k: int, ports: int) -> str:
    """An IPv4 subnet with room for ``ports`` addresses (gateway, network, broadcast aside)."""
    bits = max(8, math.ceil(math.log2(ports + 3)))
    if bits > 16:
        raise BenchError(f"{ports} ports on one network: more than a /16 holds")
    return str(ipaddress.ip_network(f"10.{200 + k}.0.0/{32 - bits}"))


async def gather_bounded(
    limit: int, fn: Callable[[T], Awaitable[Any]], items: list[T]
) -> list[Any]:
    """``fn(item)`` for every item, at most ``limit`` at a time; the first error propagates."""
    sem = asyncio.Semaphore(limit)

    async def one(item: T) -> Any:
        async with sem:
            return await fn(item)

    return await asyncio.gather(*(one(i) for i in items))


async def prepare(api: Api, run: str, boots: list[Boot], created: Created) -> dict[str, str]:
    """Networks (one per physical network the boots use), flavors, image, ports."""
    nets: dict[str, str] = {}
    for k, physnet in enumerate(sorted({b.network for b in boots})):
        for _ in range(40):  # a VLAN id nobody uses yet on that physical network
            body = {
                "network": {
                    "name": f"{run}-{physnet}",
                    "provider:network_type": "vlan",
                    "provider:physical_network": physnet,
                    "provider:segmentation_id": random.randint(2, 4094),
                }
            }
            resp = await api.call("prepare", "POST", NETWORK + "/networks", json=body, ok=(409,))
            if resp.status_code == 201:
                break
        else:
            raise BenchError(f"no free VLAN id on {physnet} after 40 tries")
        net_id = resp.json()["network"]["id"]
        created.networks.append(net_id)
        nets[physnet] = net_id
        count = sum(1 for b in boots if b.network == physnet)
        subnet = {"network_id": net_id, "cidr": subnet_for(k, count), "name": f"{run}-{physnet}"}
        await api.call("prepare", "POST", NETWORK + "/subnets", json={"subnet": subnet})

    flavors = {}
    for kind in ("plain", "gpu"):
        body = {
            "flavor": {
                "name": f"{run}-{kind}",
                "vcpus": FLAVOR_VCPUS,
                "ram": FLAVOR_RAM_MB,
                "disk": 1,
            }
        }
        resp = await api.call("prepare", "POST", COMPUTE + "/flavors", json=body)
        flavors[kind] = resp.json()["flavor"]["id"]
        created.flavors.append(flavors[kind])
    specs = {"extra_specs": {"pci_passthrough:alias": f"{GPU_ALIAS}:1"}}
    await api.call(
        "prepare", "POST", f"{COMPUTE}/flavors/{flavors['gpu']}/os-extra_specs", json=specs
    )

    image = {"name": f"{run}-raw", "disk_format": "raw", "container_format": "bare"}
    resp = await api.call("prepare", "POST", IMAGE + "/images", json=image)
    created.image = resp.json()["id"]
    await api.call(
        "prepare",
        "PUT",
        f"{IMAGE}/images/{created.image}/file",
        content=b"\0" * IMAGE_BYTES,
        headers={"Content-Type": "application/octet-stream"},
    )
    status = (await api.call("prepare", "GET", f"{IMAGE}/images/{created.image}")).json()["status"]
    if status != "active":
        raise BenchError(f"image {created.image} is {status} after its upload")

    async def make_port(b: Boot) -> None:
        body = {
            "port": {
                "network_id": nets[b.network],
                "name": b.name,
                "binding:vnic_type": "direct",
            }
        }
        resp = await api.call("prepare", "POST", NETWORK + "/ports", json=body, retry_conflict=True)
        b.port_id = resp.json()["port"]["id"]
        created.ports.append(b.port_id)

    await gather_bounded(8, make_port, boots)
    return {"plain": flavors["plain"], "gpu": flavors["gpu"], "image": created.image}


@dataclass
class Poller:
    """Lists this run's servers. ``changed()`` asks only for those changed since
    shortly before its previous list (``changes-since``, as clients that watch
    many servers do), so a poll costs the controller what changed, not the
    whole fleet; ``listing()`` lists them all."""

    api: Api
    run: str
    interval: float
    polls: int = 0
    poll_s: list[float] = field(default_factory=list)
    since: datetime | None = None
    # On a shared controller (--url) only this run's servers are asked for; on
    # its own, every server is this run's and the name filter is work saved.
    by_name: bool = True
    last_full: float | None = None

    async def listing(self, since: datetime | None = None) -> list[dict[str, Any]]:
        params = {"name": f"^{self.run}-"} if self.by_name else {}
        if since is not None:
            params["changes-since"] = since.isoformat()
        t = time.perf_counter()
        resp = await self.api.call("poll", "GET", COMPUTE + "/servers/detail", params=params)
        self.polls += 1
        self.poll_s.append(time.perf_counter() - t)
        servers: list[dict[str, Any]] = resp.json()["servers"]
        return servers

    async def changed(self) -> list[dict[str, Any]]:
        # A change is stamped when its transaction writes it and seen once it
        # commits: look back CHANGES_MARGIN_S before the previous list began.
        # A transaction slower than that (a busy machine) would slip through,
        # so every FULL_LIST_S the whole list is read instead.
        started = datetime.now(UTC)
        full = self.last_full is None or time.monotonic() - self.last_full >= FULL_LIST_S
        servers = await self.listing(None if full else self.since)
        if full:
            self.last_full = time.monotonic()
        self.since = started - timedelta(seconds=CHANGES_MARGIN_S)
        return servers


async def boot_all(
    api: Api,
    plan: Plan,
    boots: list[Boot],
    refs: dict[str, str],
    poller: Poller,
    created: Created,
) -> tuple[float, float]:
    """Fire the POSTs with bounded concurrency while one poller watches; (t0, t_end)."""
    by_id: dict[str, Boot] = {}
    posts_done = asyncio.Event()

    async def post(b: Boot) -> None:
        body = {
            "server": {
                "name": b.name,
                "flavorRef": refs["gpu" if b.gpu else "plain"],
                "imageRef": refs["image"],
                "networks": [{"port": b.port_id}],
            }
        }
        b.t_post = time.perf_counter()
        try:
            resp = await api.call("POST /servers", "POST", COMPUTE + "/servers", json=body)
        except BenchError as exc:
            b.status, b.fault, b.t_final = "REFUSED", str(exc)[:300], time.perf_counter()
            return
        finally:
            b.post_s = time.perf_counter() - b.t_post
        b.post_status = resp.status_code
        b.server_id = resp.json()["server"]["id"]
        by_id[b.server_id] = b
        created.servers.append(b.server_id)

    async def watch() -> None:
        deadline = time.perf_counter() + plan.timeout
        while True:
            for s in await poller.changed():
                b = by_id.get(s["id"])
                if b is None or b.t_final is not None or s["status"] not in ("ACTIVE", "ERROR"):
                    continue
                b.t_final, b.status = time.perf_counter(), s["status"]
                if s["status"] == "ERROR":
                    b.fault = str((s.get("fault") or {}).get("message", ""))[:300]
            pending = [b for b in boots if b.t_final is None]
            if posts_done.is_set() and not pending:
                return
            if time.perf_counter() > deadline:
                for b in pending:
                    b.status = "STUCK"
                return
            await asyncio.sleep(plan.poll_interval)

    t0 = time.perf_counter()
    watcher = asyncio.create_task(watch())
    try:
        await gather_bounded(plan.concurrency, post, boots)
    finally:
        posts_done.set()
    await watcher
    finals = [b.t_final for b in boots if b.t_final is not None]
    return t0, max(finals, default=t0)


async def delete_all(api: Api, poller: Poller, plan: Plan, ids: list[str]) -> tuple[float, int]:
    """DELETE every server, then poll until none is listed; (seconds, still listed)."""
    t0 = time.perf_counter()

    async def delete(server_id: str) -> BaseException | None:
        try:
            await api.call("DELETE /servers", "DELETE", f"{COMPUTE}/servers/{server_id}", ok=(404,))
        except BenchError as exc:
            return exc
        return None

    results = await gather_bounded(plan.concurrency, delete, ids)
    for r in results:
        if isinstance(r, BaseException):
            console.print(f"[red]delete: {r}[/red]")
    wanted = set(ids)
    deadline = time.perf_counter() + plan.timeout
    left = len(wanted)
    while left and time.perf_counter() < deadline:
        left = sum(1 for s in await poller.listing() if s["id"] in wanted)
        if left:
            await asyncio.sleep(plan.poll_interval)
    return time.perf_counter() - t0, left


async def cleanup(api: Api, created: Created) -> list[str]:
    """Best effort: ports, networks (their subnets go with them), flavors, image."""
    problems: list[str] = []

    async def gone(path: str) -> None:
        try:
            await api.call("cleanup", "DELETE", path, ok=(404,))
        except BenchError as exc:
            problems.append(str(exc))

    await gather_bounded(8, gone, [f"{NETWORK}/ports/{p}" for p in created.ports])
    for net in created.networks:
        await gone(f"{NETWORK}/networks/{net}")
    for flavor in created.flavors:
        await gone(f"{COMPUTE}/flavors/{flavor}")
    if created.image:
        await gone(f"{IMAGE}/images/{created.image}")
    return problems


async def tidy(api: Api, poller: Poller, plan: Plan, created: Created) -> None:
    if created.servers:
        await delete_all(api, poller, plan, created.servers)
    await cleanup(api, created)


def per_item_ms(before: float | None, after: float | None, items: int) -> float | None:
    """Controller CPU per item between two readings, in ms (None when not measured)."""
    if before is None or after is None or items <= 0:
        return None
    return round((after - before) * 1000 / items, 1)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def plan_boots(
    run: str, plan: Plan, vf_free: dict[str, int], gpus: int
) -> tuple[list[Boot], list[str]]:
    """Spread the ports over the physical networks by free VFs; every k-th boot a GPU one."""
    problems = []
    if plan.servers > sum(vf_free.values()):
        problems.append(
            f"{plan.servers} servers need {plan.servers} free VFs; the fleet has "
            f"{sum(vf_free.values())} ({', '.join(f'{k}: {v}' for k, v in vf_free.items())})"
        )
    left = dict(vf_free)
    boots = []
    for i in range(plan.servers):
        net = max(sorted(left), key=lambda n: left[n]) if left else "physnet1"
        left[net] = left.get(net, 0) - 1
        boots.append(Boot(index=i, name=f"{run}-{i:05d}", network=net))
    n_gpu = min(gpus, round(plan.servers * plan.gpu_share))
    if n_gpu:
        step = plan.servers / n_gpu
        for j in range(n_gpu):
            boots[int(j * step + step / 2)].gpu = True
    return boots, problems


async def run_bench(target: Target, plan: Plan) -> dict[str, Any]:
    stats = Stats()
    run = f"bench-{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(
        max_connections=plan.concurrency + 4, max_keepalive_connections=plan.concurrency + 4
    )
    async with httpx.AsyncClient(base_url=target.url, timeout=120, limits=limits) as client:
        client.headers["X-Auth-Token"] = await get_token(client, target)
        api = Api(client, stats)
        n_hosts = await wait_for_hosts(api, target.expected_hosts)
        before = await pools(api)
        boots, problems = plan_boots(run, plan, vf_free_by_physnet(before), gpu_free(before))
        if problems:
            raise BenchError("; ".join(problems))
        created = Created()
        poller = Poller(api, run, plan.poll_interval, by_name=target.expected_hosts is None)
        result: dict[str, Any] = {}
        try:
            refs = await prepare(api, run, boots, created)
            routes0 = await route_counts(api)
            cpu0 = cpu_seconds(target.pid)
            t0, t_end = await boot_all(api, plan, boots, refs, poller, created)
            cpu1 = cpu_seconds(target.pid)
            result["requests_per_boot"] = per_boot_requests(
                routes0, await route_counts(api), plan.servers
            )
            boot_polls, boot_poll_s = poller.polls, list(poller.poll_s)
            result["lists"] = await time_lists(api, plan.list_repeats)
            ids = list(created.servers)
            cpu2 = cpu_seconds(target.pid)
            delete_s, left = await delete_all(api, poller, plan, ids)
            cpu3 = cpu_seconds(target.pid)
            if not left:
                created.servers = []
        except BaseException:
            # An error or Ctrl-C midway. A controller started here goes away with its
            # data; on someone else's, take our servers and resources away (bounded).
            if target.expected_hosts is None:
                console.print("[yellow]removing this run's servers and resources[/yellow]")
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(tidy(api, poller, plan, created), CLEANUP_S)
            raise
        cleanup_problems = await cleanup(api, created)

        # Frees land in the delete's own transaction; give a late one a moment anyway.
        leaked: list[str] = []
        for _ in range(50):
            after = await pools(api)
            leaked = [
                f"{key}: {after.get(key, (0, 0, {}))[0]} free, was {free} (total {total})"
                for key, (free, total, _p) in before.items()
                if after.get(key, (None,))[0] != free
            ]
            if target.expected_hosts is not None:  # our own fleet: everything must be free
                leaked += [
                    f"{key}: {free} of {total} free"
                    for key, (free, total, _p) in after.items()
                    if free != total
                ]
            if not leaked:
                break
            await asyncio.sleep(0.2)

    active = sorted(b.t_final - b.t_post for b in boots if b.status == "ACTIVE" and b.t_final)
    posts = sorted(b.post_s for b in boots if b.post_status)
    wall = t_end - t0
    outcome = Counter(b.status for b in boots)
    poll_s = sorted(boot_poll_s)
    result.update(
        {
            "database": target.database,
            "hosts": n_hosts,
            "servers": plan.servers,
            "gpu_servers": sum(1 for b in boots if b.gpu),
            "networks": sorted({b.network for b in boots}),
            "concurrency": plan.concurrency,
            "list_repeats": plan.list_repeats,
            "active": outcome.get("ACTIVE", 0),
            "error": outcome.get("ERROR", 0),
            "stuck": outcome.get("STUCK", 0),
            "refused": outcome.get("REFUSED", 0),
            "wall_s": round(wall, 3),
            "boots_per_s": round(len(active) / wall, 2) if wall > 0 else 0.0,
            "active_p50_s": round(percentile(active, 0.5), 3),
            "active_p99_s": round(percentile(active, 0.99), 3),
            "active_max_s": round(active[-1], 3) if active else 0.0,
            "post_p50_ms": round(percentile(posts, 0.5) * 1000, 1),
            "post_p99_ms": round(percentile(posts, 0.99) * 1000, 1),
            "polls": boot_polls,
            "poll_p50_ms": round(percentile(poll_s, 0.5) * 1000, 1),
            "boot_cpu_ms": per_item_ms(cpu0, cpu1, plan.servers),
            "delete_cpu_ms": per_item_ms(cpu2, cpu3, len(ids)),
            "delete_s": round(delete_s, 3),
            "deletes_per_s": round(len(ids) / delete_s, 2) if delete_s > 0 else 0.0,
            "not_deleted": left,
            "non_2xx": stats.non_2xx(),
            "bad_5xx": stats.bad_5xx(),
            "leaked": leaked,
            "faults": sorted({f"{b.status}: {b.fault}" for b in boots if b.fault})[:10],
            "cleanup_problems": cleanup_problems[:10],
        }
    )
    result["ok"] = (
        result["active"] == plan.servers
        and not leaked
        and not left
        and result["bad_5xx"] == 0
        and not cleanup_problems
    )
    return result


SQL = "SQL statements"


async def route_counts(api: Api) -> Counter[str] | None:
    """Requests answered so far by "METHOD route template", from ``/metrics``
    (None when the controller does not offer it to this caller)."""
    resp = await api.call("metrics", "GET", "/metrics", ok=(401, 403, 404))
    if not resp.is_success:
        return None
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(resp.text):
        if family.name == "pcifleet_sql_statements":
            counts[SQL] += int(sum(x.value for x in family.samples if x.name.endswith("_total")))
        if family.name != "pcifleet_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                key = f"{sample.labels.get('method', '')} {sample.labels.get('route', '')}"
                counts[key] += int(sample.value)
    return counts


def per_boot_requests(
    before: Counter[str] | None, after: Counter[str] | None, boots: int
) -> list[tuple[str, float]]:
    """Requests per boot by route while the boots ran, most first."""
    if before is None or after is None or boots <= 0:
        return []
    diff = after - before
    diff.pop("GET /metrics", None)
    return [(route, n / boots) for route, n in diff.most_common() if route != SQL] + [
        (SQL, diff[SQL] / boots)
    ]


# Lists timed while every server is up: (label, path). The page of ten is the
# one a UI asks for; the full lists are what scripts read.
LISTS = (
    ("servers/detail, all", COMPUTE + "/servers/detail"),
    ("servers/detail?limit=10", COMPUTE + "/servers/detail?limit=10"),
    ("servers, all", COMPUTE + "/servers"),
    ("ports, all", NETWORK + "/ports"),
    ("ports?limit=10", NETWORK + "/ports?limit=10"),
    ("networks, all", NETWORK + "/networks"),
    ("os-pci/detail, all", COMPUTE + "/os-pci/detail"),
)


async def time_lists(api: Api, repeats: int) -> list[dict[str, Any]]:
    """Each list of ``LISTS`` ``repeats`` times in a row: p50 and max, items, bytes."""
    out = []
    for label, path in LISTS:
        took, size, items = [], 0, 0
        for _ in range(repeats):
            t = time.perf_counter()
            resp = await api.call("lists", "GET", path)
            took.append(time.perf_counter() - t)
            size = len(resp.content)
            body = resp.json()
            items = max((len(v) for v in body.values() if isinstance(v, list)), default=0)
        took.sort()
        out.append({"list": label, "items": items, "bytes": size,
                    "p50_ms": round(percentile(took, 0.5) * 1000, 1),
                    "max_ms": round(took[-1] * 1000, 1)})  # fmt: skip
    return out


def show_lists(rows: list[dict[str, Any]], repeats: int) -> None:
    table = Table(title=f"lists with every server up ({repeats} calls each)", title_justify="left")
    for name in ("list", "items", "bytes", "p50", "max"):
        table.add_column(name, justify="left" if name == "list" else "right")
    for row in rows:
        table.add_row(row["list"], str(row["items"]), f"{row['bytes']:,}",
                      f"{row['p50_ms']:.1f} ms", f"{row['max_ms']:.1f} ms")  # fmt: skip
    console.print(table)


def show(r: dict[str, Any]) -> None:
    table = Table(
        title=(
            f"boot through HTTP to ACTIVE: {r['servers']} servers ({r['gpu_servers']} with a GPU) "
            f"on {r['hosts']} simulated host(s), {r['database']}"
        ),
        caption=f"one direct port each on {', '.join(r['networks'])}; "
        f"{r['polls']} list polls, p50 {r['poll_p50_ms']:.0f} ms each",
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    non_2xx = ", ".join(f"{k}: {v}" for k, v in r["non_2xx"].items()) or "none"
    rows = [
        ("servers / concurrency", f"{r['servers']} / {r['concurrency']}"),
        ("database", r["database"]),
        ("ACTIVE / ERROR", f"{r['active']} / {r['error']}"),
        ("never left BUILD / POST refused", f"{r['stuck']} / {r['refused']}"),
        ("wall time (first POST to last ACTIVE)", f"{r['wall_s']:.2f} s"),
        ("boots/s to ACTIVE", f"{r['boots_per_s']:.1f}"),
        ("time to ACTIVE p50", f"{r['active_p50_s']:.2f} s"),
        ("time to ACTIVE p99", f"{r['active_p99_s']:.2f} s"),
        ("time to ACTIVE max", f"{r['active_max_s']:.2f} s"),
        ("POST /servers p50", f"{r['post_p50_ms']:.0f} ms"),
        ("POST /servers p99", f"{r['post_p99_ms']:.0f} ms"),
        ("controller CPU per boot (its polls included)", _ms(r["boot_cpu_ms"])),
        ("controller CPU per delete", _ms(r["delete_cpu_ms"])),
        ("non-2xx answers", non_2xx),
        ("deletes/s (all gone)", f"{r['deletes_per_s']:.1f} ({r['delete_s']:.2f} s)"),
        ("every pool free again", "yes" if not r["leaked"] else f"NO ({len(r['leaked'])})"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for line in r["faults"] + r["leaked"][:10] + r["cleanup_problems"]:
        console.print(f"[red]{line}[/red]")
    if r["bad_5xx"]:
        console.print(f"[red]{r['bad_5xx']} answer(s) were a 5xx other than 503[/red]")
    if r.get("requests_per_boot"):
        show_requests(r["requests_per_boot"], r.get("workers", 1))
    if r.get("lists"):
        show_lists(r["lists"], r["list_repeats"])


def show_requests(rows: list[tuple[str, float]], workers: int) -> None:
    caption = "the watcher's polls and the agents' periodic reports included"
    if workers > 1:
        caption += f"; one of {workers} API processes answered /metrics: its share only"
    table = Table(title="requests per boot, by route", caption=caption,
                  title_justify="left", caption_justify="left")  # fmt: skip
    table.add_column("route")
    table.add_column("per boot", justify="right")
    routes = [(r, n) for r, n in rows if r != SQL]
    for route, n in routes[:12]:
        table.add_row(route, f"{n:.2f}")
    table.add_row("all routes", f"{sum(n for _, n in routes):.2f}")
    table.add_row("SQL statements (all of the process)", f"{dict(rows).get(SQL, 0):.1f}")
    console.print(table)


def _ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f} ms"


def default_sizes(smoke: bool) -> tuple[int, int]:
    return (2, 20) if smoke else (3, 200)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=None, help="simulated hosts (default 3)")
    parser.add_argument("--servers", type=int, default=None, help="boots (default 200)")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight at most")
    parser.add_argument("--database", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--poll-interval", type=float, default=0.25, help="seconds between lists")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for ACTIVE")
    parser.add_argument(
        "--gpu-share", type=float, default=0.05, help="share of boots on the GPU flavor"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="API processes of pcifleet up (> 1: PostgreSQL)"
    )
    parser.add_argument("--url", default=None, help="use this running controller instead")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--project", default="admin")
    parser.add_argument(
        "--password-file", type=Path, default=None, help="the admin password (with --url)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--list-repeats", type=int, default=5, help="calls of each list once all are up"
    )
    parser.add_argument("--smoke", action="store_true", help="small run for CI")
    args = parser.parse_args(argv)
    hosts, servers = default_sizes(args.smoke)
    args.hosts = args.hosts if args.hosts is not None else hosts
    args.servers = args.servers if args.servers is not None else servers
    if args.hosts < 1 or args.servers < 1 or args.concurrency < 1 or args.poll_interval <= 0:
        parser.error("--hosts, --servers and --concurrency must be >= 1, --poll-interval > 0")
    if not 0 <= args.gpu_share <= 1:
        parser.error("--gpu-share must be between 0 and 1")
    if args.url and args.database:
        parser.error("--database is for the controller this starts; not with --url")
    plan = Plan(args.servers, args.concurrency, args.poll_interval, args.timeout, args.gpu_share,
                args.list_repeats)  # fmt: skip
    if args.url is None:  # check the size against the sample host before starting anything
        vfs = sample_host_vfs()
        fits = sum(vfs.values()) * args.hosts
        if args.servers > fits:
            parser.error(
                f"{args.servers} servers do not fit {args.hosts} sample host(s): "
                f"{fits} VFs ({', '.join(f'{v} on {k}' for k, v in vfs.items())} each)"
            )

    # SIGTERM ends the run like Ctrl-C: the finally blocks stop the controller.
    # SIGINT too: a shell starts background jobs with it ignored.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    target: Target | None = None
    try:
        with ExitStack() as stack:
            if args.url:
                try:
                    password = (
                        args.password_file.read_text().strip()
                        if args.password_file
                        else os.environ.get("PCIFLEET_BENCH_PASSWORD", "")
                    )
                except OSError as exc:
                    parser.error(f"--password-file: {exc}")
                if not password:
                    parser.error("--url needs --password-file or PCIFLEET_BENCH_PASSWORD")
                target = Target(args.url.rstrip("/"), password, args.user, args.project, "remote")
            else:
                tmp = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="pcifleet-boot-"))
                )
                with console.status(f"starting pcifleet up with {args.hosts} host(s)"):
                    target = stack.enter_context(
                        started_controller(args.hosts, args.database, tmp, args.workers)
                    )
                target.user, target.project = args.user, args.project
            try:
                result = asyncio.run(run_bench(target, plan))
                result["workers"] = args.workers
            except BenchError:
                if target.log:
                    console.print(f"[dim]{log_tail(target.log, 2000)}[/dim]")
                raise
            if not result["ok"] and target.log:
                console.print(f"[dim]pcifleet up log:\n{log_tail(target.log, 2000)}[/dim]")
    except BenchError as exc:
        console.print(f"[red]boot benchmark: {exc}[/red]")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the controller was stopped[/yellow]")
        return 130
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
