"""How long the ``pcifleet`` command takes to start, and ``pcifleet up`` to stop.

Runs each command line as its own process (the installed ``pcifleet`` script,
so Python's start-up and the imports are counted), a few warm-up runs first
and then RUNS timed runs, like hyperfine: prints mean ± standard deviation,
min and max per command. Exits non-zero when the median of ``--version`` or
``--help`` is over the target (1 s), so `make bench-smoke` catches a command
that starts importing the whole service again.

Then it starts ``pcifleet up`` (3 simulated hosts, a throw-away data
directory) a few times and times SIGTERM to exit; the target is 2 s.

    .venv/bin/python benchmarks/cli_startup.py            # 20 runs each
    .venv/bin/python benchmarks/cli_startup.py --smoke    # 5 runs each
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TARGET_SECONDS = 1.0
STOP_TARGET_SECONDS = 2.0
COMMANDS: list[list[str]] = [
    ["--version"],
    ["--help"],
    ["up", "--help"],
    ["explain-boot", "--help"],
]
# the target applies to these; the subcommands' help is shown for comparison
GATED = {"--version", "--help"}


def pcifleet_executable() -> str:
    """The ``pcifleet`` beside this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("pcifleet")
    if beside.exists():
        return str(beside)
    found = shutil.which("pcifleet")
    if found is None:
        raise SystemExit("pcifleet is not installed (make .venv/.installed)")
    return found


def time_runs(argv: list[str], warmup: int, runs: int) -> list[float]:
    """Wall seconds of ``runs`` runs of ``argv`` after ``warmup`` untimed ones."""
    times = []
    for i in range(warmup + runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        took = time.perf_counter() - started
        if i >= warmup:
            times.append(took)
    return times


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_stop(exe: str, work: Path) -> float:
    """Seconds from SIGTERM to the exit of a ``pcifleet up`` whose agents reported."""
    log = work / f"up-{time.monotonic_ns()}.log"
    args = [exe, "up", "--port", str(free_port()), "--data-dir", str(work / "data")]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "pcifleet is up" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pcifleet up did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # the agents are in their task long-polls now
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        took = time.perf_counter() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        raise SystemExit(f"pcifleet up exited {code} on SIGTERM:\n{log.read_text()[-2000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--stops", type=int, default=3, help="pcifleet up stops to time")
    parser.add_argument("--smoke", action="store_true", help="5 runs each, 1 stop")
    args = parser.parse_args()
    runs = 5 if args.smoke else args.runs
    exe = pcifleet_executable()
    table = Table(title=f"pcifleet start-up, {runs} runs each (wall time)")
    for column in ("command", "mean ± σ", "median", "min", "max"):
        table.add_column(column, justify="left" if column == "command" else "right")
    over = []
    for command in COMMANDS:
        times = time_runs([exe, *command], args.warmup, runs)
        mean, median = statistics.fmean(times), statistics.median(times)
        sd = statistics.stdev(times) if len(times) > 1 else 0.0
        label = "pcifleet " + " ".join(command)
        table.add_row(
            label,
            f"{mean * 1000:.0f} ± {sd * 1000:.0f} ms",
            f"{median * 1000:.0f} ms",
            f"{min(times) * 1000:.0f} ms",
            f"{max(times) * 1000:.0f} ms",
        )
        if " ".join(command) in GATED and median > TARGET_SECONDS:
            over.append(f"{label}: median {median:.2f} s")
    stops = 1 if args.smoke else args.stops
    if stops > 0:
        with tempfile.TemporaryDirectory(prefix="pcifleet-stop-") as tmp:
            stop_times = [time_stop(exe, Path(tmp)) for _ in range(stops)]
        median = statistics.median(stop_times)
        table.add_row(
            f"pcifleet up: SIGTERM to exit ({stops} run(s))",
            f"{statistics.fmean(stop_times) * 1000:.0f} ms",
            f"{median * 1000:.0f} ms",
            f"{min(stop_times) * 1000:.0f} ms",
            f"{max(stop_times) * 1000:.0f} ms",
        )
        if median > STOP_TARGET_SECONDS:
            over.append(f"pcifleet up stop: median {median:.2f} s")
    Console().print(table)
    if over:
        print(f"over target: {'; '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
