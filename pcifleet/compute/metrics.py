"""What the controller's scheduling does, counted for Prometheus (``/metrics``).

In-process instruments in prometheus_client's default registry; the figures
that live in the store (pools, report ages, the job queue) are read at scrape
time by ``pcifleet.api.metrics`` instead, so every controller sharing a
database reports the same fleet. Label values are bounded: a NoValidHost
reason is its filter's name ("PCI", "host up", "vCPU"...), never a request id.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

SCHEDULE_SECONDS = Histogram(
    "pcifleet_scheduling_duration_seconds",
    "Time to choose a host and claim there, per server (failures included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CLAIMS = Counter("pcifleet_claims", "Servers placed: a host chosen and its devices claimed.")
CLAIMED_DEVICES = Counter("pcifleet_claimed_devices", "PCI devices claimed for servers.")
RELEASES = Counter(
    "pcifleet_releases", "Claims given back (server deleted, build failed or rolled back)."
)
NO_VALID_HOST = Counter(
    "pcifleet_no_valid_host",
    "Servers that found no host, by the reason hosts failed (one count per reason seen).",
    ["reason"],
)


def reason_label(reason: str) -> str:
    """``"PCI: port request ...: no free matching device"`` -> ``"PCI"``."""
    return reason.split(":", 1)[0].strip() or "unknown"


def count_no_valid_host(failures: Mapping[str, int]) -> None:
    """One NoValidHost; its reasons (the scheduler's tally) as labels."""
    labels = {reason_label(r) for r in failures} or {"no hosts"}
    for label in labels:
        NO_VALID_HOST.labels(reason=label).inc()
