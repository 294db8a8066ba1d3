"""How long ``pcifleet up`` takes to answer, from exec to every host reporting.

Each run execs ``pcifleet up --hosts N`` on a free loopback port and a data
directory of its own, then asks the API, as a client would, until:

- ``GET /v3`` answers 200 (the API listens: "answers"), and then
- a password token for the admin of the clouds.yaml ``up`` wrote is issued, and
  ``GET /compute/v2.1/os-services`` with it lists all N hosts ``up`` with a
  report made by this process ("ready": an ``openstack server create`` would
  find every host).

It records both times from the exec, and the process's CPU time (user + system,
from ``/proc``) at "ready", which is far less noisy than wall time on a shared
machine. A cold run starts on an empty data directory (and a fresh PostgreSQL
schema with ``--database``): migrations, bootstrap and every host's sysfs tree
are made; a warm run starts on the directory a previous run left, as a second
``pcifleet up`` does. Medians of ``--runs`` runs each; the targets (issue #15)
are answering in < 3 s with 3 hosts and < 10 s with 64.

    .venv/bin/python benchmarks/startup.py                 # N = 3, 16, 64; 3 runs each
    .venv/bin/python benchmarks/startup.py --hosts 3 --runs 5
    .venv/bin/python benchmarks/startup.py --database postgresql+psycopg://...
    .venv/bin/python benchmarks/startup.py --smoke         # CI: N = 3, one cold, one warm

Exits 1 when a run does not get ready in ``--timeout`` seconds, or, with
``--check``, when a median is over its target.
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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

# hosts -> seconds to ready (issue #15); sizes not named have no target
TARGETS = {3: 3.0, 64: 10.0}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
console = Console(width=120)


class StartupError(Exception):
    """A run did not get ready."""


@dataclass
class Run:
    answers: float  # exec -> GET /v3 200
    ready: float  # exec -> every host up, reported by this process
    cpu: float  # the process's user + system seconds at ready


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its waited-for children, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # after the command name: state is field 3; utime..cstime are fields 14-17
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def pcifleet_executable() -> str:
    beside = Path(sys.executable).with_name("pcifleet")
    if beside.exists():
        return str(beside)
    found = shutil.which("pcifleet")
    if found is None:
        raise SystemExit("pcifleet is not installed (make .venv/.installed)")
    return found


def admin_token(client: httpx.Client, clouds: Path) -> str:
    auth = yaml.safe_load(clouds.read_text())["clouds"]["pcifleet"]["auth"]
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": auth["username"],
                        "domain": {"name": auth["user_domain_name"]},
                        "password": auth["password"],
                    }
                },
            },
            "scope": {
                "project": {
                    "name": auth["project_name"],
                    "domain": {"name": auth["project_domain_name"]},
                }
            },
        }
    }
    resp = client.post("/v3/auth/tokens?nocatalog", json=body)
    if resp.status_code != 201:
        raise StartupError(f"token: {resp.status_code} {resp.text[:300]}")
    return resp.headers["X-Subject-Token"]


def hosts_reported_since(client: httpx.Client, token: str, since: datetime) -> int:
    """Hosts up whose last report is no older than ``since`` (this process's)."""
    resp = client.get("/compute/v2.1/os-services", headers={"X-Auth-Token": token})
    resp.raise_for_status()
    floor = since.replace(microsecond=0, tzinfo=None)
    fresh = 0
    for service in resp.json()["services"]:
        stamp = service.get("updated_at")
        if (
            service["state"] == "up"
            and stamp
            and datetime.fromisoformat(stamp).replace(tzinfo=None) >= floor
        ):
            fresh += 1
    return fresh


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_run(cmd: list[str], data_dir: Path, hosts: int, timeout: float, log: Path) -> Run:
    """Exec ``cmd`` (a ``pcifleet up``), time it to ready, stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [*cmd, "--port", str(port), "--data-dir", str(data_dir), "--hosts", str(hosts)]
    since = datetime.now(UTC)
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = started + timeout
        answers = None
        token = None
        with httpx.Client(base_url=url, timeout=10) as client:
            while True:
                if proc.poll() is not None:
                    raise StartupError(f"exited {proc.returncode}: {log.read_text()[-2000:]}")
                if time.perf_counter() > deadline:
                    raise StartupError(f"not ready in {timeout:.0f} s: {log.read_text()[-2000:]}")
                try:
                    if answers is None:
                        if client.get("/v3").status_code != 200:
                            raise httpx.HTTPError("not yet")
                        answers = time.perf_counter() - started
                    if token is None:
                        token = admin_token(client, data_dir / "clouds.yaml")
                    if hosts_reported_since(client, token, since) >= hosts:
                        ready = time.perf_counter() - started
                        cpu = cpu_seconds(proc.pid)
                        return Run(answers, ready, cpu)
                except (httpx.HTTPError, OSError):
                    pass
                time.sleep(0.02)
    finally:
        stop(proc)


@contextmanager
def database_for(database: str | None) -> Iterator[str | None]:
    """``database`` as given; a PostgreSQL URL becomes a fresh schema for the block."""
    if database and make_url(database).get_backend_name() == "postgresql":
        from pcifleet.store.db import fresh_schema

        with fresh_schema(database, prefix="bench_up_") as url:
            yield url
    else:
        yield database


def measure(
    exe: str, hosts: int, runs: int, database: str | None, timeout: float, tmp: Path
) -> tuple[list[Run], list[Run]]:
    """``runs`` cold runs (each on new state), then ``runs`` warm runs on the last."""
    cold: list[Run] = []
    warm: list[Run] = []
    with ExitStack() as stack:
        for i in range(runs):
            url = stack.enter_context(database_for(database)) if database else None
            cmd = [exe, "up"] + (["--database", url] if url else [])
            data_dir = tmp / f"n{hosts}-{i}"
            cold.append(one_run(cmd, data_dir, hosts, timeout, tmp / "up.log"))
            if i < runs - 1:
                shutil.rmtree(data_dir)
        for _ in range(runs):
            warm.append(one_run(cmd, data_dir, hosts, timeout, tmp / "up.log"))
    return cold, warm


def row(table: Table, hosts: int, kind: str, runs: list[Run]) -> str | None:
    ready = statistics.median(r.ready for r in runs)
    target = TARGETS.get(hosts)
    verdict = (
        "" if target is None else ("[green]met[/green]" if ready < target else "[red]over[/red]")
    )
    table.add_row(
        str(hosts),
        kind,
        f"{statistics.median(r.answers for r in runs):.2f} s",
        f"{ready:.2f} s",
        f"{min(r.ready for r in runs):.2f}-{max(r.ready for r in runs):.2f} s",
        f"{statistics.median(r.cpu for r in runs):.2f} s",
        "" if target is None else f"< {target:.0f} s",
        verdict,
    )
    if target is not None and ready >= target:
        return f"{hosts} hosts {kind}: median {ready:.2f} s"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, action="append", help="repeat; default 3, 16, 64")
    parser.add_argument("--runs", type=int, default=3, help="cold and warm runs per size")
    parser.add_argument("--database", metavar="URL", help="PostgreSQL: a fresh schema per cold run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a run may take")
    parser.add_argument("--smoke", action="store_true", help="3 hosts, one cold and one warm run")
    parser.add_argument("--check", action="store_true", help="exit 1 when a median is over target")
    args = parser.parse_args(argv)
    sizes = [3] if args.smoke else (args.hosts or [3, 16, 64])
    runs = 1 if args.smoke else args.runs
    exe = pcifleet_executable()
    backend = make_url(args.database).get_backend_name() if args.database else "sqlite"
    table = Table(title=f"pcifleet up: exec to ready ({backend}, medians of {runs} run(s))")
    for name in ("hosts", "data dir", "answers /v3", "all hosts up", "range", "CPU", "target", ""):
        table.add_column(name, justify="left" if name == "data dir" else "right")
    over = []
    with tempfile.TemporaryDirectory(prefix="pcifleet-startup-") as tmp:
        for hosts in sizes:
            try:
                cold, warm = measure(exe, hosts, runs, args.database, args.timeout, Path(tmp))
            except StartupError as exc:
                console.print(f"[red]{hosts} hosts: {exc}[/red]")
                return 1
            for kind, results in (("cold", cold), ("warm", warm)):
                late = row(table, hosts, kind, results)
                if late:
                    over.append(late)
        console.print(table)  # before the data directories go: that takes a while
    if over:
        console.print(f"over target: {'; '.join(over)}")
        if args.check:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
