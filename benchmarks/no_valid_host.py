"""What "no valid host" costs next to a fit, on a big fleet (issue 15).

Fleet: N sample hosts (see fleet.py). Each kind of request is sent
``--repeat`` times to one scheduler and timed (wall clock and CPU time of the
process per request); all but ``fits`` end in NoValidHost:

- fits: one physnet1 port, 2 vCPUs (placed and claimed: the comparison);
- unknown physical network: one port on physnet9, which no host has;
- too many vCPUs: one physnet1 port with 1,000 vCPUs (a host has 256);
- NUMA, ports on two cells: required ports on physnet1 (NUMA 0) and
  physnet2 (NUMA 1) for a guest of one NUMA node;
- NUMA, too few cells: a physnet1 port for a guest of three NUMA nodes;
- no free VF: one physnet1 port after every host's physnet1 VFs were taken
  (written straight into the database: a full fleet without a million claims).

For each unsatisfiable kind it also works the answer out the slow way —
every host through the filters one by one, as the scheduler did before it
answered from its index — and checks that the failure counts are the same and
that the message lists the same reasons (prints them). Exits 1 if not.

    .venv/bin/python benchmarks/no_valid_host.py --hosts 10000
    .venv/bin/python benchmarks/no_valid_host.py --smoke        # CI: tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleet import HOST_DOWN_AFTER, database, load_fleet, percentile, sample_host
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, select, update

from pcifleet.pci import NumaPolicy, PciRequest, request_for_port
from pcifleet.scheduler import NoValidHost, Scheduler, SchedulerConfig
from pcifleet.scheduler.filters import cell_options, fit_pci, host_up, pci_failure, resources
from pcifleet.scheduler.index import describe
from pcifleet.store.devices import pool_stats_json
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import pci_devices_table as D

VCPUS, MEMORY_MB = 2, 2048
FULL = "physnet1"


@dataclass(slots=True)
class Kind:
    name: str
    ports: Callable[[], list[PciRequest]]
    vcpus: int = VCPUS
    numa_nodes: int | None = None
    # Run after the fleet's physnet1 VFs are all taken.
    after_fill: bool = False
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    message: str = ""
    same_as_slow: bool | None = None


def port(net: str, label: str, policy: NumaPolicy | None = None) -> PciRequest:
    # A fixed label in place of the random request id: messages compare across runs.
    request = request_for_port(net, "direct", numa_policy=policy)
    request.label = f"port {label!r}"
    return request


def kinds() -> list[Kind]:
    required = NumaPolicy.REQUIRED
    return [
        Kind("fits (one physnet1 port)", lambda: [port("physnet1", "a")]),
        Kind("unknown physical network", lambda: [port("physnet9", "a")]),
        Kind("too many vCPUs", lambda: [port("physnet1", "a")], vcpus=1000),
        Kind(
            "NUMA: ports on two cells, 1 node",
            lambda: [port("physnet1", "a", required), port("physnet2", "b", required)],
            numa_nodes=1,
        ),
        Kind("NUMA: 3 nodes, hosts have 2", lambda: [port("physnet1", "a")], numa_nodes=3),
        Kind("no free VF (fleet full)", lambda: [port(FULL, "a")], after_fill=True),
    ]


def slow_failures(
    sched: Scheduler, requests: list[PciRequest], vcpus: int, numa_nodes: int | None
) -> Counter[str]:
    """The failure counts found by putting every host through every filter."""
    index, config = sched.index, sched.config
    tally: Counter[str] = Counter()
    driving = min(requests, key=index.population)
    walked = {e.id for e in index.walk(driving, ascending=True)}
    for entry in index.hosts.values():
        if entry.id not in index.eligible:
            tally[host_up(entry) or "host up: no report within the down interval"] += 1
            continue
        if entry.id not in walked:
            tally[sched._unserved(driving)] += 1
            continue
        reason = resources(entry, vcpus, MEMORY_MB, config)
        if reason is None:
            options = cell_options(entry, None, numa_nodes, vcpus, MEMORY_MB)
            if fit_pci(entry, requests, options, vcpus, MEMORY_MB) is not None:
                raise AssertionError(f"{entry.name} fits {describe(driving)}")
            reason = pci_failure(entry, requests, options)
        tally[reason] += 1
    return tally


def reasons_of(message: str) -> set[str]:
    """The "N host(s) failed ..." parts of a NoValidHost message, order aside."""
    return set(message.partition(": ")[2].split("; "))


def fill(engine: Engine) -> None:
    """Take every physnet1 VF of every host, as a full fleet would have them:
    the VFs claimed, their PF blocked, each host's pools and generation to match."""
    instance = str(uuid.uuid4())
    with engine.begin() as conn:
        first = conn.execute(select(H.c.id).order_by(H.c.id).limit(1)).scalar_one()
        rows = [dict(r._mapping) for r in conn.execute(select(D).where(D.c.host_id == first))]

        def on_full(row: dict[str, Any]) -> bool:
            return (row["tags"] or {}).get("physical_network") == FULL

        vfs = [r["id"] for r in rows if on_full(r) and r["dev_type"] == "type-VF"]
        pfs = [r["id"] for r in rows if on_full(r) and r["dev_type"] == "type-PF"]
        for r in rows:
            if r["id"] in vfs:
                r["status"] = "claimed"
            elif r["id"] in pfs:
                r["status"] = "unavailable"
        addresses = select(D.c.address).where(D.c.id.in_(vfs)).scalar_subquery()
        pf_addresses = select(D.c.address).where(D.c.id.in_(pfs)).scalar_subquery()
        conn.execute(
            update(D)
            .where(D.c.address.in_(addresses))
            .values(status="claimed", instance_uuid=instance, request_id=instance)
        )
        conn.execute(update(D).where(D.c.address.in_(pf_addresses)).values(status="unavailable"))
        conn.execute(
            update(H).values(pci_stats=pool_stats_json(rows), generation=H.c.generation + 1)
        )


def time_kind(sched: Scheduler, kind: Kind, repeat: int) -> None:
    for _ in range(repeat):
        requests = kind.ports()
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            sched.select_and_claim(
                str(uuid.uuid4()),
                requests,
                vcpus=kind.vcpus,
                memory_mb=MEMORY_MB,
                numa_nodes=kind.numa_nodes,
            )
        except NoValidHost as exc:
            kind.message = str(exc)
        kind.wall_ms.append((time.perf_counter() - w0) * 1000)
        kind.cpu_ms.append((time.process_time() - c0) * 1000)


def check(sched: Scheduler, kind: Kind) -> None:
    """Compare the scheduler's last answer for ``kind`` with the slow way's."""
    requests = kind.ports()
    with sched._lock:
        slow = slow_failures(sched, requests, kind.vcpus, kind.numa_nodes)
    try:
        sched.select_and_claim(
            str(uuid.uuid4()),
            requests,
            vcpus=kind.vcpus,
            memory_mb=MEMORY_MB,
            numa_nodes=kind.numa_nodes,
        )
    except NoValidHost as exc:
        wanted = {f"{n} host(s) failed {reason}" for reason, n in slow.items()}
        kind.same_as_slow = exc.failures == dict(slow) and reasons_of(str(exc)) == wanted
        kind.message = str(exc)
    else:
        kind.same_as_slow = False
        kind.message = "placed: expected no valid host"


def run(hosts: int, repeat: int, url: str | None) -> dict[str, Any]:
    classified, _ = sample_host()
    todo = kinds()
    with database(url) as engine:
        load_fleet(engine, hosts, classified)
        sched = Scheduler(engine, SchedulerConfig(host_down_after=HOST_DOWN_AFTER))
        sched.refresh(force=True)
        for filled in (False, True):
            if filled:
                fill(engine)
                sched.refresh(force=True)
            for kind in todo:
                if kind.after_fill == filled:
                    time_kind(sched, kind, repeat)
                    if not kind.name.startswith("fits"):
                        check(sched, kind)
        sched.close()
        backend = engine.dialect.name
    out: dict[str, Any] = {"hosts": hosts, "repeat": repeat, "backend": backend, "kinds": []}
    for kind in todo:
        wall, cpu = sorted(kind.wall_ms), sorted(kind.cpu_ms)
        out["kinds"].append(
            {
                "kind": kind.name,
                "p50_ms": round(percentile(wall, 0.5), 3),
                "p99_ms": round(percentile(wall, 0.99), 3),
                "max_ms": round(wall[-1], 3),
                "cpu_p50_ms": round(percentile(cpu, 0.5), 3),
                "cpu_mean_ms": round(sum(cpu) / len(cpu), 3),
                "same_as_slow": kind.same_as_slow,
                "message": kind.message,
            }
        )
    out["ok"] = all(k["same_as_slow"] is not False for k in out["kinds"])
    return out


def show(result: dict[str, Any]) -> None:
    table = Table(
        title=(
            f'"no valid host" vs a fit: {result["hosts"]:,} hosts, '
            f"{result['repeat']} requests per kind, {result['backend']}"
        )
    )
    for name in ("kind", "p50", "p99", "max", "CPU p50", "CPU mean", "reasons as slow path"):
        table.add_column(name, justify="left" if name == "kind" else "right")
    for k in result["kinds"]:
        same = {None: "-", True: "same", False: "DIFFERENT"}[k["same_as_slow"]]
        table.add_row(
            k["kind"],
            *(f"{k[f]:.3f} ms" for f in ("p50_ms", "p99_ms", "max_ms", "cpu_p50_ms")),
            f"{k['cpu_mean_ms']:.3f} ms",
            same,
        )
    console = Console(width=max(Console().width, 132))
    console.print(table)
    for k in result["kinds"]:
        if k["same_as_slow"] is not None:
            style = "" if k["same_as_slow"] else "[red]"
            console.print(f"{style}{k['kind']}: {k['message']}", markup=bool(style), soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=200, help="requests per kind")
    parser.add_argument("--database", default=None, help="database URL (default: temp SQLite)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    args = parser.parse_args(argv)
    if args.smoke:
        args.hosts, args.repeat = 30, 20
    if args.hosts < 1 or args.repeat < 1:
        parser.error("--hosts and --repeat must be >= 1")
    result = run(args.hosts, args.repeat, args.database)
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
