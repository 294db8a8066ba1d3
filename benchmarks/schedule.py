"""Schedule + claim throughput and latency on a big fleet (issue 5).

Fleet: N copies of the sample host (see fleet.py): two X710
ports, PF 8086:1572 with 64 VFs 8086:154c each, on physnet1 / NUMA 0 and
physnet2 / NUMA 1, and two GPUs 10de:1db4 — 132 device rows per host, and
two NUMA cells of 32 CPUs. Requests: 40% one port on physnet1, 15% a port on
physnet1 and one on physnet2, 15% one GPU by alias, and NUMA guests (issue
13): 15% one cell with a required physnet1 port, 10% one cell with a
preferred physnet2 port and a socket-policy GPU, 5% two cells with required
ports on both networks; each server also takes 2 vCPUs and 2 GiB. Every
request goes through the whole path: index -> filters (NUMA cells
included) -> weighers -> claim transaction.

    .venv/bin/python benchmarks/schedule.py --hosts 1000 --requests 10000
    .venv/bin/python benchmarks/schedule.py --hosts 10000 --requests 10000 --json
    .venv/bin/python benchmarks/schedule.py --smoke        # CI: tiny, a few seconds
    .venv/bin/python benchmarks/schedule.py --database postgresql+psycopg://...

At the end it checks from the database that no device is held twice, that
every request holds exactly what it asked for and that each host's pools agree
with its device rows; it exits 1 if not. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import uuid
from typing import Any

from fleet import HOST_DOWN_AFTER, database, load_fleet, percentile, sample_host
from rich.console import Console
from rich.table import Table

from pcifleet.pci import (
    NumaPolicy,
    PciRequest,
    request_for_port,
    requests_from_flavor,
)
from pcifleet.scheduler import NoValidHost, Scheduler, SchedulerConfig
from pcifleet.store.checks import check_consistency, held_by_request

VCPUS, MEMORY_MB = 2, 2048
MIX = (
    ("port physnet1", 0.40),
    ("ports physnet1+physnet2", 0.15),
    ("gpu alias", 0.15),
    ("numa 1 cell, required port", 0.15),
    ("numa 1 cell, preferred port + socket gpu", 0.10),
    ("numa 2 cells, required ports", 0.05),
)
Work = tuple[str, list[PciRequest], int | None]


def _one(kind: str, aliases: dict[str, Any]) -> tuple[list[PciRequest], int | None]:
    """The requests and guest cells (hw:numa_nodes) of one server of ``kind``."""
    gpu_flavor = {"pci_passthrough:alias": "gpu:1"}
    required, preferred = NumaPolicy.REQUIRED, NumaPolicy.PREFERRED
    if kind == "port physnet1":
        return [request_for_port("physnet1", "direct")], None
    if kind == "ports physnet1+physnet2":
        return [request_for_port(net, "direct") for net in ("physnet1", "physnet2")], None
    if kind == "gpu alias":
        return requests_from_flavor(gpu_flavor, aliases), None
    if kind == "numa 1 cell, required port":
        return [request_for_port("physnet1", "direct", numa_policy=required)], 1
    if kind == "numa 1 cell, preferred port + socket gpu":
        gpus = requests_from_flavor(gpu_flavor, aliases)
        gpus[0].numa_policy = NumaPolicy.SOCKET
        return [request_for_port("physnet2", "direct", numa_policy=preferred), *gpus], 1
    nets = ("physnet1", "physnet2")
    return [request_for_port(n, "direct", numa_policy=required) for n in nets], 2


def make_requests(n: int, aliases: dict[str, Any], seed: int) -> list[Work]:
    """The mix, in a seeded random order; every request gets fresh request ids."""
    rng = random.Random(seed)
    out: list[Work] = []
    for _ in range(n):
        r, edge = rng.random(), 0.0
        kind = MIX[-1][0]
        for name, share in MIX:
            edge += share
            if r < edge:
                kind = name
                break
        reqs, cells = _one(kind, aliases)
        out.append((kind, reqs, cells))
    return out


def run(hosts: int, n_requests: int, url: str | None, mode: str, seed: int) -> dict[str, Any]:
    classified, aliases = sample_host()
    work = make_requests(n_requests, aliases, seed)
    with database(url) as engine:
        t0 = time.perf_counter()
        rows = load_fleet(engine, hosts, classified)
        load_s = time.perf_counter() - t0
        sched = Scheduler(engine, SchedulerConfig(mode=mode, host_down_after=HOST_DOWN_AFTER))
        t0 = time.perf_counter()
        sched.refresh(force=True)
        index_s = time.perf_counter() - t0

        latencies: list[float] = []
        placed = failed = 0
        expected: dict[str, int] = {}
        by_kind: dict[str, list[float]] = {k: [] for k, _ in MIX}
        # Requests that end in "no valid host" apart: once the fleet fills up
        # (GPUs first), they are what the p99 is made of.
        failed_ms: list[float] = []
        t_start = time.perf_counter()
        for kind, reqs, cells in work:
            t = time.perf_counter()
            try:
                sched.select_and_claim(
                    str(uuid.uuid4()), reqs, vcpus=VCPUS, memory_mb=MEMORY_MB, numa_nodes=cells
                )
            except NoValidHost:
                failed += 1
                failed_ms.append((time.perf_counter() - t) * 1000)
            else:
                placed += 1
                for r in reqs:
                    expected[r.request_id] = r.count
            dt = (time.perf_counter() - t) * 1000
            latencies.append(dt)
            by_kind[kind].append(dt)
        total_s = time.perf_counter() - t_start
        sched.close()

        t0 = time.perf_counter()
        problems = check_consistency(engine)
        held = held_by_request(engine)
        if held != expected:
            wrong = sum(1 for k in set(held) | set(expected) if held.get(k) != expected.get(k))
            problems.append(f"{wrong} request(s) hold a different number of devices than asked")
        check_s = time.perf_counter() - t0
        backend = engine.dialect.name

    latencies.sort()
    return {
        "hosts": hosts,
        "requests": n_requests,
        "placed": placed,
        "failed": failed,
        "p50_ms": round(percentile(latencies, 0.50), 4),
        "p99_ms": round(percentile(latencies, 0.99), 4),
        "max_ms": round(latencies[-1] if latencies else 0.0, 3),
        "failed_p50_ms": round(percentile(sorted(failed_ms), 0.50), 4),
        "failed_p99_ms": round(percentile(sorted(failed_ms), 0.99), 4),
        "throughput_per_s": round(n_requests / total_s, 1) if total_s else 0.0,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "by_kind_p50_ms": {
            k: round(percentile(sorted(v), 0.5), 4) for k, v in by_kind.items() if v
        },
        "device_rows": rows,
        "backend": backend,
        "mode": mode,
        "load_s": round(load_s, 2),
        "index_load_s": round(index_s, 2),
        "check_s": round(check_s, 2),
        "devices_held_twice": sum(1 for p in problems if "rows" in p),
        "checks_ok": not problems,
        "problems": problems[:20],
    }


def show(result: dict[str, Any]) -> None:
    table = Table(
        title=(
            f"schedule + claim: {result['hosts']:,} hosts ({result['device_rows']:,} device rows), "
            f"{result['requests']:,} requests, {result['backend']}, {result['mode']}"
        )
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("placed / failed", f"{result['placed']:,} / {result['failed']:,}"),
        ("p50 per request", f"{result['p50_ms']:.3f} ms"),
        ("p99 per request", f"{result['p99_ms']:.3f} ms"),
        ("max", f"{result['max_ms']:.3f} ms"),
        (
            "p50 / p99 of those that failed",
            f"{result['failed_p50_ms']:.3f} / {result['failed_p99_ms']:.3f} ms",
        ),
        ("throughput", f"{result['throughput_per_s']:,.0f} /s"),
        ("peak RSS", f"{result['peak_rss_mb']:,.0f} MB"),
        *[(f"p50 {k}", f"{v:.3f} ms") for k, v in result["by_kind_p50_ms"].items()],
        ("fleet bulk load", f"{result['load_s']:.1f} s"),
        ("index load", f"{result['index_load_s']:.2f} s"),
        ("final DB checks", f"{result['check_s']:.1f} s"),
        ("no device twice, pools agree", "yes" if result["checks_ok"] else "NO"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console = Console()
    console.print(table)
    for problem in result["problems"]:
        console.print(f"[red]{problem}[/red]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--database", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--mode", choices=("pack", "spread"), default="pack")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.hosts, args.requests = 20, 300
    if args.hosts < 1 or args.requests < 0:
        parser.error("--hosts must be >= 1 and --requests >= 0")
    result = run(args.hosts, args.requests, args.database, args.mode, args.seed)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0 if result["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
