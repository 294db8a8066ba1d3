"""Issue #14's probe, timed: a server named ``'a'*26 + '!'`` (and one of 200
a's), then ``GET /compute/v2.1/servers?name=<pattern>`` for backtracking
patterns, while another thread keeps asking ``GET /v3``. Prints each
pattern's answer and time, and how long the concurrent requests took
meanwhile (p50 / max). Exits non-zero when the median probe takes 100 ms more
than an ordinary filtered list (``^a+!$``) or the median concurrent request
waits 100 ms, so `make bench-smoke` catches a
filter that holds the event loop or the GIL again.

Starts the API with uvicorn on a throw-away SQLite store (as an operator
would); the servers need no host, they only have to exist with their names.

    .venv/bin/python benchmarks/name_filter.py            # 20 probes a pattern
    .venv/bin/python benchmarks/name_filter.py --smoke    # 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.api.live import live_server

TARGET_MS = 100.0
PATTERNS = ["(a+)+$", "(a|aa)+$", "(.*a){12}$", "^a+!$"]
COMPUTE = "/compute/v2.1"


def setup(url: str, admin: str) -> None:
    h = {"X-Auth-Token": admin}
    flavor = httpx.post(
        f"{url}{COMPUTE}/flavors",
        headers=h,
        json={"flavor": {"name": "m1", "ram": 64, "vcpus": 1, "disk": 0}},
    ).json()["flavor"]["id"]
    image = httpx.post(
        f"{url}/image/v2/images",
        headers=h,
        json={
            "name": "i",
            "disk_format": "raw",
            "container_format": "bare",
            "visibility": "public",
        },
    ).json()["id"]
    httpx.put(f"{url}/image/v2/images/{image}/file", headers=h, content=b"disk")
    for name in ("a" * 26 + "!", "a" * 200 + "!"):
        body = {
            "server": {"name": name, "flavorRef": flavor, "imageRef": image, "networks": "none"}
        }
        resp = httpx.post(
            f"{url}{COMPUTE}/servers",
            headers={**h, "OpenStack-API-Version": "compute 2.37"},
            json=body,
        )
        assert resp.status_code == 202, resp.text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="5 probes a pattern")
    args = parser.parse_args()
    probes = 5 if args.smoke else 20
    with tempfile.TemporaryDirectory() as tmp, live_server(Path(tmp)) as live:
        admin = live.token()
        setup(live.url, admin)
        stop = threading.Event()
        side: list[float] = []

        def concurrent() -> None:
            with httpx.Client(base_url=live.url) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    client.get("/v3")
                    side.append((time.perf_counter() - started) * 1000)

        rows = []
        with httpx.Client(base_url=live.url, headers={"X-Auth-Token": admin}) as client:
            for pattern in PATTERNS:
                side.clear()
                stop.clear()
                thread = threading.Thread(target=concurrent, daemon=True)
                thread.start()
                times, status = [], 0
                for _ in range(probes):
                    started = time.perf_counter()
                    resp = client.get(f"{COMPUTE}/servers", params={"name": pattern})
                    times.append((time.perf_counter() - started) * 1000)
                    status = resp.status_code
                stop.set()
                thread.join()
                rows.append((pattern, status, times, list(side)))
    table = Table(title="GET /servers?name=<pattern> with servers 'a'*26+'!' and 'a'*200+'!'")
    for column in ("pattern", "status", "p50 ms", "max ms", "GET /v3 meanwhile p50", "max ms"):
        table.add_column(column)
    baseline = statistics.median(rows[-1][2])  # ^a+!$: an ordinary pattern
    worst = 0.0
    for pattern, status, times, side_times in rows:
        side_times = side_times or [0.0]
        # medians: the machine is shared. The probe is judged by what it costs
        # over an ordinary filtered list, so a loaded machine does not fail it.
        worst = max(worst, statistics.median(times) - baseline, statistics.median(side_times))
        table.add_row(
            pattern,
            str(status),
            f"{statistics.median(times):.1f}",
            f"{max(times):.1f}",
            f"{statistics.median(side_times):.1f}",
            f"{max(side_times):.1f}",
        )
    Console().print(table)
    if worst > TARGET_MS:
        print(f"FAILED: {worst:.0f} ms is over the {TARGET_MS:.0f} ms target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
