"""`make bench-smoke`: every benchmark in its small mode, failing if any fails.

Each benchmark runs as its own process (as an operator would run it) with
``--smoke``; the schedule benchmark also checks the database at the end and
exits non-zero when a device was handed out twice or pools disagree; the boot
benchmark starts ``pcifleet up`` and exits non-zero when a server went ERROR,
a device leaked, or the API answered a 5xx other than 503.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script, extra arguments); scripts that are not there (yet) are skipped.
BENCHMARKS: list[tuple[str, list[str]]] = [
    # the command's start-up (fails when --help or --version is over 1 s)
    ("cli_startup.py", []),
    # pcifleet up, exec to every host reporting: 3 hosts, one cold and one warm run
    ("startup.py", []),
    ("schedule.py", []),
    # "no valid host" against a fit (fails when its reasons differ from the slow way's)
    ("no_valid_host.py", []),
    ("discover.py", []),
    ("boot.py", []),
    # issue #15's pages and whole lists with the fleet full
    ("lists.py", []),
    # issue #14's regex probe against a live API (fails when it holds others up)
    ("name_filter.py", []),
    # real QEMU domains on this machine's libvirtd (skips itself without one,
    # fails instead under PCIFLEET_REQUIRE_SYSTEM, as CI sets)
    ("real_vm.py", []),
]


def main() -> int:
    failed = []
    runs = list(BENCHMARKS)
    pg_url = os.environ.get("PCIFLEET_TEST_PG_URL")
    if pg_url:  # CI has a PostgreSQL server: schedule and boot against it as well
        runs.insert(1, ("schedule.py", ["--database", pg_url]))
        runs.append(("boot.py", ["--database", pg_url]))
        # two API processes sharing the job queue (pcifleet up --workers 2)
        runs.append(("boot.py", ["--database", pg_url, "--workers", "2"]))
    for script, extra in runs:
        path = HERE / script
        if not path.exists():
            print(f"-- {script}: not present, skipped")
            continue
        print(f"-- {script} --smoke {' '.join(extra)}".rstrip(), flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(path), "--smoke", *extra])
        took = time.perf_counter() - started
        print(f"-- {script}: exit {code} in {took:.1f} s", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"bench-smoke FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
