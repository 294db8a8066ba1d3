"""How long the ``pcifleet`` command takes to start, as an operator types it.

Runs each command line as its own process (the installed ``pcifleet`` script,
so Python's start-up and the imports are counted), a few warm-up runs first
and then RUNS timed runs, like hyperfine: prints mean ± standard deviation,
min and max per command. Exits non-zero when the median of ``--version`` or
``--help`` is over the target (1 s), so `make bench-smoke` catches a command
that starts importing the whole service again.

    .venv/bin/python benchmarks/cli_startup.py            # 20 runs each
    .venv/bin/python benchmarks/cli_startup.py --smoke    # 5 runs each
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TARGET_SECONDS = 1.0
COMMANDS: list[list[str]] = [["--version"], ["--help"], ["up", "--help"]]
# the target applies to these; `up --help` is shown for comparison
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="5 runs each")
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
    Console().print(table)
    if over:
        print(f"over the {TARGET_SECONDS:.0f} s target: {'; '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
