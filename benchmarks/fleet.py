"""The simulated fleet the scheduler benchmarks share.

Every host is a copy of the sample host (pcifleet/data/sample-host.toml): two
X710 ports, PF 8086:1572 with 64 VFs 8086:154c each, on physnet1 / NUMA 0 and
physnet2 / NUMA 1, and two GPUs 10de:1db4 — 132 device rows — with 64 vCPUs,
512 GiB and two NUMA cells of 32 CPUs, one socket each. Imported by the
benchmark scripts next to it (``schedule.py``, ``no_valid_host.py``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.engine import make_url

from pcifleet.host import load_layout
from pcifleet.pci import Classified, classify, parse_aliases, parse_device_specs
from pcifleet.store.bulk import bulk_load_hosts
from pcifleet.store.db import default_database_url, fresh_schema, make_engine, upgrade
from pcifleet.store.models import hosts_table, utcnow

HOST_VCPUS, HOST_MEMORY_MB = 64, 512 * 1024
# The simulated agents report once, at load; a run on a busy machine may take
# minutes, and hosts going down mid-run would measure something else.
HOST_DOWN_AFTER = 24 * 3600.0
# The sample host's two cells (its devices sit on NUMA 0 and 1), one socket each.
HOST_CELLS = [
    {"id": 0, "cpus": "0-31", "memory_mb": HOST_MEMORY_MB // 2, "socket": 0},
    {"id": 1, "cpus": "32-63", "memory_mb": HOST_MEMORY_MB // 2, "socket": 1},
]


def sample_host() -> tuple[list[Classified], dict[str, Any]]:
    """The sample host's classified devices and its aliases."""
    layout = load_layout()
    classified = classify(layout.devices(), parse_device_specs(list(layout.device_spec)))
    return classified, parse_aliases(list(layout.alias))


def host_names(n: int) -> list[str]:
    return [f"compute-{i:05d}" for i in range(n)]


def load_fleet(engine: Engine, hosts: int, classified: list[Classified]) -> int:
    """Insert ``hosts`` sample hosts, all reported in just now; returns device rows."""
    rows = bulk_load_hosts(
        engine,
        host_names(hosts),
        classified,
        vcpus=HOST_VCPUS,
        memory_mb=HOST_MEMORY_MB,
        numa_topology=HOST_CELLS,
    )
    with engine.begin() as conn:  # every agent reports in before the work starts
        conn.execute(update(hosts_table).values(last_report_at=utcnow()))
    return rows


@contextmanager
def database(url: str | None) -> Iterator[Engine]:
    """An empty, migrated database: a temporary SQLite file, or a fresh PostgreSQL schema."""
    with ExitStack() as stack:
        if url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pcifleet-bench-"))
            url = default_database_url(Path(tmp))
        elif make_url(url).get_backend_name() == "postgresql":
            url = stack.enter_context(fresh_schema(url, prefix="bench_"))
        engine = make_engine(url)
        stack.callback(engine.dispose)  # runs before the schema or directory goes
        upgrade(engine)
        yield engine


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]
