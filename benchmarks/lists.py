"""What the lists cost over HTTP once the fleet is full: pages and whole lists.

Starts ``pcifleet up`` (N simulated hosts, real agents, ``xml`` driver) on a
loopback port, boots S servers for real through the APIs (one ``direct``
port each, the boot benchmark's own steps), makes M more networks, then times
each list R times in a row: the whole list, the first page of ten, and a page
of ten in the middle (``marker``), of servers (detail and ids), ports,
networks and os-pci. It prints p50, p99, items, bytes and the controller's
CPU per call (every thread, from /proc, less its idle rate) per list next to the
issue's targets, then deletes everything and checks every pool is free again.

    .venv/bin/python benchmarks/lists.py                      # 16 hosts, 1,000 servers
    .venv/bin/python benchmarks/lists.py --database postgresql+psycopg://...
    .venv/bin/python benchmarks/lists.py --smoke              # CI: 2 hosts, 30 servers

Exits 1 when a boot or a list failed, 2 when the run cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from boot import (
    COMPUTE,
    NETWORK,
    Api,
    BenchError,
    Created,
    Plan,
    Poller,
    Stats,
    Target,
    boot_all,
    cleanup,
    console,
    cpu_seconds,
    delete_all,
    gather_bounded,
    get_token,
    gpu_free,
    percentile,
    plan_boots,
    pools,
    prepare,
    sample_host_vfs,
    started_controller,
    vf_free_by_physnet,
    wait_for_hosts,
)
from rich.table import Table

# (label, path, target p50 in ms or None); {mid:...} is filled with the id of
# an item in the middle of that list, so the page is one a client pages to
LISTS: tuple[tuple[str, str, float | None], ...] = (
    ("servers/detail, all", COMPUTE + "/servers/detail", 300.0),
    ("servers/detail?limit=10", COMPUTE + "/servers/detail?limit=10", 20.0),
    ("servers/detail, 10 after a marker", COMPUTE + "/servers/detail?limit=10&marker={mid}", 20.0),
    ("servers, all", COMPUTE + "/servers", None),
    ("ports, all", NETWORK + "/ports", 300.0),
    ("ports?limit=10", NETWORK + "/ports?limit=10", 20.0),
    ("ports, 10 after a marker", NETWORK + "/ports?limit=10&marker={mid}", 20.0),
    ("networks, all", NETWORK + "/networks", 300.0),
    ("networks?limit=10", NETWORK + "/networks?limit=10", 20.0),
    ("os-pci/detail, all", COMPUTE + "/os-pci/detail", None),
    ("os-pci/detail?limit=10", COMPUTE + "/os-pci/detail?limit=10", 20.0),
    ("os-pci/detail, 10 after a marker", COMPUTE + "/os-pci/detail?limit=10&marker={mid}", 20.0),
)


async def middle_id(api: Api, path: str) -> str:
    """The id of the item in the middle of the whole list at ``path``."""
    base = path.split("?", 1)[0]
    body = (await api.call("lists", "GET", base)).json()
    items = next(v for v in body.values() if isinstance(v, list))
    if not items:
        raise BenchError(f"{base} is empty; nothing to page through")
    return str(items[len(items) // 2]["id"])


async def idle_cpu_rate(pid: int | None, seconds: float = 3.0) -> float:
    """The controller's CPU per second with no list asked (its agents' reports
    and long-polls), taken off each list's CPU."""
    before, t = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    after = cpu_seconds(pid)
    if before is None or after is None:
        return 0.0
    return (after - before) / (time.perf_counter() - t)


async def time_lists(api: Api, repeats: int, pid: int | None) -> list[dict[str, Any]]:
    out = []
    idle = await idle_cpu_rate(pid)
    for label, path, target in LISTS:
        if "{mid}" in path:
            path = path.replace("{mid}", await middle_id(api, path))
        took, size, items = [], 0, 0
        # the controller's CPU (every thread) per call, less what it spends idle
        cpu_before, started = cpu_seconds(pid), time.perf_counter()
        for _ in range(repeats):
            t = time.perf_counter()
            resp = await api.call("lists", "GET", path)
            took.append(time.perf_counter() - t)
            size = len(resp.content)
            body = resp.json()
            items = max((len(v) for v in body.values() if isinstance(v, list)), default=0)
        cpu_after = cpu_seconds(pid)
        took.sort()
        cpu_ms = (
            None
            if cpu_before is None or cpu_after is None
            else round(
                (cpu_after - cpu_before - idle * (time.perf_counter() - started)) * 1000 / repeats,
                1,
            )
        )
        out.append(
            {
                "list": label,
                "items": items,
                "bytes": size,
                "p50_ms": round(percentile(took, 0.5) * 1000, 1),
                "p99_ms": round(percentile(took, 0.99) * 1000, 1),
                "cpu_ms": cpu_ms,
                "target_ms": target,
            }
        )
    return out


async def make_networks(api: Api, run: str, count: int, created: list[str]) -> None:
    async def one(i: int) -> None:
        body = {"network": {"name": f"{run}-net-{i:05d}"}}
        resp = await api.call("networks", "POST", NETWORK + "/networks", json=body)
        created.append(resp.json()["network"]["id"])

    await gather_bounded(8, one, list(range(count)))


async def run_lists(target: Target, plan: Plan, networks: int) -> dict[str, Any]:
    stats = Stats()
    run = f"bench-{uuid.uuid4().hex[:8]}"
    limits = httpx.Limits(max_connections=plan.concurrency + 4)
    async with httpx.AsyncClient(base_url=target.url, timeout=120, limits=limits) as client:
        client.headers["X-Auth-Token"] = await get_token(client, target)
        client.headers["OpenStack-API-Version"] = "compute 2.88"
        api = Api(client, stats)
        n_hosts = await wait_for_hosts(api, target.expected_hosts)
        before = await pools(api)
        boots, problems = plan_boots(run, plan, vf_free_by_physnet(before), gpu_free(before))
        if problems:
            raise BenchError("; ".join(problems))
        created = Created()
        poller = Poller(api, run, plan.poll_interval)
        with console.status(f"booting {plan.servers} servers"):
            refs = await prepare(api, run, boots, created)
            t0, t_end = await boot_all(api, plan, boots, refs, poller, created)
        extra: list[str] = []
        with console.status(f"making {networks} networks"):
            await make_networks(api, run, networks, extra)
        with console.status("timing the lists"):
            rows = await time_lists(api, plan.list_repeats, target.pid)
        await delete_all(api, poller, plan, list(created.servers))
        created.networks.extend(extra)
        problems = await cleanup(api, created)
        after = await pools(api)
    active = sum(1 for b in boots if b.status == "ACTIVE")
    leaked = [k for k, (free, total, _p) in after.items() if free != total]
    return {
        "database": target.database,
        "hosts": n_hosts,
        "servers": plan.servers,
        "active": active,
        "networks": networks + len({b.network for b in boots}),
        "boots_per_s": round(active / (t_end - t0), 1) if t_end > t0 else 0.0,
        "repeats": plan.list_repeats,
        "lists": rows,
        "bad_5xx": stats.bad_5xx(),
        "leaked": leaked,
        "problems": problems[:10],
        "ok": active == plan.servers and not leaked and not problems and stats.bad_5xx() == 0,
    }


def show(r: dict[str, Any]) -> None:
    table = Table(
        title=(
            f"lists over HTTP: {r['active']} servers ACTIVE, {r['networks']} networks, "
            f"{r['hosts']} simulated host(s), {r['database']} ({r['repeats']} calls each)"
        ),
        title_justify="left",
    )
    for name in ("list", "items", "bytes", "p50", "p99", "CPU per call", "target p50", "met"):
        table.add_column(name, justify="left" if name == "list" else "right")
    for row in r["lists"]:
        target = row["target_ms"]
        met = "" if target is None else ("yes" if row["p50_ms"] < target else "[red]no[/red]")
        table.add_row(
            row["list"],
            str(row["items"]),
            f"{row['bytes']:,}",
            f"{row['p50_ms']:.1f} ms",
            f"{row['p99_ms']:.1f} ms",
            "" if row["cpu_ms"] is None else f"{row['cpu_ms']:.1f} ms",
            "" if target is None else f"< {target:.0f} ms",
            met,
        )
    console.print(table)
    for line in r["problems"] + r["leaked"]:
        console.print(f"[red]{line}[/red]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=None, help="simulated hosts (default 16)")
    parser.add_argument("--servers", type=int, default=None, help="servers (default 1000)")
    parser.add_argument("--networks", type=int, default=None, help="more networks (default 1000)")
    parser.add_argument("--repeats", type=int, default=None, help="calls of each list (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="POSTs in flight at most")
    parser.add_argument("--database", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--smoke", action="store_true", help="small run for CI")
    args = parser.parse_args(argv)
    small = (2, 30, 20, 3) if args.smoke else (16, 1000, 1000, 20)
    hosts, servers, networks, repeats = (
        given if given is not None else default
        for given, default in zip(
            (args.hosts, args.servers, args.networks, args.repeats), small, strict=True
        )
    )
    if min(hosts, servers, repeats, args.concurrency) < 1 or networks < 0:
        parser.error("--hosts, --servers, --repeats and --concurrency must be >= 1")
    fits = sum(sample_host_vfs().values()) * hosts
    if servers > fits:
        parser.error(f"{servers} servers do not fit {hosts} sample host(s): {fits} VFs")
    plan = Plan(servers, args.concurrency, 0.25, 600.0, 0.0, repeats)
    try:
        with ExitStack() as stack:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pcifleet-lists-")))
            with console.status(f"starting pcifleet up with {hosts} host(s)"):
                target = stack.enter_context(started_controller(hosts, args.database, tmp))
            result = asyncio.run(run_lists(target, plan, networks))
    except BenchError as exc:
        console.print(f"[red]list benchmark: {exc}[/red]")
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
