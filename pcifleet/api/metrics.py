"""Prometheus metrics: the fleet as the store holds it, read at scrape time,
plus this process's own instruments (scheduling, HTTP).

Pool figures come from each host's ``pci_stats`` (what the scheduler and
``os-pci`` see), report ages from ``hosts.last_report_at``, the job queue from
the ``jobs`` table: one query each, on the scraping request's thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pcifleet.store.models import Host, Job

POOL_LABELS = ["host", "physical_network", "vendor", "product", "dev_type", "numa"]

HTTP_SECONDS = Histogram(
    "pcifleet_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


SQL_STATEMENTS = Counter(
    "pcifleet_sql_statements",
    "SQL statements this process sent to its database (all its threads).",
)


def _count_statement(*_args: Any) -> None:
    SQL_STATEMENTS.inc()


def count_statements(engine: Engine) -> None:
    """Count every statement ``engine`` runs in ``pcifleet_sql_statements_total``:
    the rate an operator watches on a busy controller, and the figure the boot
    benchmark divides by its boots (it moves with the code, not the machine's load)."""
    if not event.contains(engine, "after_cursor_execute", _count_statement):
        event.listen(engine, "after_cursor_execute", _count_statement)


def _pool_labels(host: str, pool: dict[str, Any]) -> list[str]:
    tags = pool.get("tags") or {}
    numa = pool.get("numa_node")
    return [
        host,
        str(tags.get("physical_network") or ""),
        str(pool.get("vendor_id", "")),
        str(pool.get("product_id", "")),
        str(pool.get("dev_type", "")),
        "" if numa is None else str(numa),
    ]


class StoreCollector(Collector):
    """Pools, agent report ages and the job queue, read from the store per scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        free = GaugeMetricFamily(
            "pcifleet_pool_free_devices", "Free devices of a PCI pool.", labels=POOL_LABELS
        )
        total = GaugeMetricFamily(
            "pcifleet_pool_total_devices", "Devices of a PCI pool.", labels=POOL_LABELS
        )
        age = GaugeMetricFamily(
            "pcifleet_agent_report_age_seconds",
            "Seconds since the host's agent last reported (hosts that never did are left out).",
            labels=["host"],
        )
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            for name, stats, reported in session.execute(
                select(Host.name, Host.pci_stats, Host.last_report_at).order_by(Host.name)
            ):
                # pools with the same labels (other PFs, other tags) are summed
                sums: dict[tuple[str, ...], list[int]] = {}
                for pool in stats or []:
                    key = tuple(_pool_labels(name, pool))
                    got = sums.setdefault(key, [0, 0])
                    got[0] += int(pool.get("count", 0))
                    got[1] += int(pool.get("total", pool.get("count", 0)))
                for key, (count, all_) in sums.items():
                    free.add_metric(list(key), count)
                    total.add_metric(list(key), all_)
                if reported is not None:
                    age.add_metric([name], max(0.0, (now - reported).total_seconds()))
            queue = session.execute(
                select(Job.kind, func.count(), func.min(Job.created_at)).group_by(Job.kind)
            ).all()
        depth = GaugeMetricFamily(
            "pcifleet_jobs_queued", "Controller jobs waiting or running.", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "pcifleet_jobs_oldest_age_seconds", "Age of the oldest queued job.", labels=["kind"]
        )
        for kind, count, created in queue:
            depth.add_metric([kind], count)
            if created is not None:
                if created.tzinfo is None:
                    created = created.replace(tzinfo=UTC)
                oldest.add_metric([kind], max(0.0, (now - created).total_seconds()))
        yield from (free, total, age, depth, oldest)


class _Process(Collector):
    """This process's instruments (the default registry), beside the store's."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def metrics_registry(engine: Engine) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine))
    registry.register(_Process())
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class HttpMetricsMiddleware:
    """Times each request by its route template (``/compute/v2.1/servers/{server_id}``),
    so the labels stay few; a path no route matched is ``unmatched``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            HTTP_SECONDS.labels(scope["method"], template, str(status[0])).observe(
                time.perf_counter() - started
            )
