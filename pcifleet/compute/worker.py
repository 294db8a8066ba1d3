"""Workers that take the controller's jobs, and the reconciler's clock.

Each API process runs a few worker threads. A request that queued a job also
hands it straight to ``run_job`` after its response (no wait for a poll); the
lease makes sure only one worker runs it, and the threads pick up whatever a
request, a crash or another process left. Job failures are retried with
backoff; the reconciler runs every ``reconcile_interval`` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from pcifleet.compute import jobs
from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.evacuate import EVACUATE, run_evacuate_job
from pcifleet.compute.live import JOB as LIVE_JOB
from pcifleet.compute.live import run_live_job
from pcifleet.compute.move_steps import run_move_job
from pcifleet.compute.placement import run_schedule
from pcifleet.compute.reconciler import reconcile
from pcifleet.logcontext import request_context
from pcifleet.store.models import utcnow

log = logging.getLogger(__name__)
RETRY_DELAYS = (1.0, 5.0, 15.0, 60.0)
IDLE_POLL = 0.5


def run_job(engine: Engine, job: jobs.Job, config: ComputeConfig) -> None:
    """Run one leased job; a failure gives it back for a later retry."""
    handlers: dict[str, Callable[[], None]] = {
        "schedule": lambda: run_schedule(
            engine, job, qbh_physical_networks=config.qbh_physical_networks
        ),
        "move": lambda: run_move_job(engine, job),
        LIVE_JOB: lambda: run_live_job(engine, job),
        EVACUATE: lambda: run_evacuate_job(engine, job, config.qbh_physical_networks),
    }
    handler = handlers.get(job.kind)
    request_id = job.payload.get("request_id")
    try:
        if handler is None:
            raise ValueError(f"unknown job kind {job.kind!r}")
        with request_context(request_id if isinstance(request_id, str) else None):
            handler()
    except jobs.LeaseLost as exc:
        log.info("%s", exc)
    except Exception as exc:
        delay = RETRY_DELAYS[min(job.attempts - 1, len(RETRY_DELAYS) - 1)]
        log.exception(
            "job %s (%s %s) failed; retrying in %.0f s", job.id, job.kind, job.subject, delay
        )
        jobs.retry_later(engine, job, f"{type(exc).__name__}: {exc}", delay)


def run_job_now(engine: Engine, job_id: int, config: ComputeConfig) -> bool:
    """Take job ``job_id`` if nobody has and run it; False when it was taken."""
    taken = jobs.take(engine, jobs.owner_name(), job_id=job_id, lease_seconds=config.job_lease)
    for job in taken:
        run_job(engine, job, config)
    return bool(taken)


class ComputeWorker:
    """The job threads and the reconciler thread of one API process."""

    def __init__(self, engine: Engine, config: ComputeConfig) -> None:
        self.engine = engine
        self.config = config
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = utcnow()

    def start(self) -> None:
        self.started_at = utcnow()
        for i in range(self.config.job_workers):
            self._spawn(self._jobs_loop, f"pcifleet-jobs-{i}")
        if self.config.reconcile_interval > 0:
            self._spawn(self._reconcile_loop, "pcifleet-reconciler")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def kick(self) -> None:
        """New work was queued: wake an idle thread now."""
        self._wake.set()

    def _jobs_loop(self) -> None:
        owner = jobs.owner_name()
        while not self._stop.is_set():
            try:
                taken = jobs.take(self.engine, owner, limit=1, lease_seconds=self.config.job_lease)
            except Exception:
                log.exception("taking jobs failed")
                taken = []
            for job in taken:
                run_job(self.engine, job, self.config)
            if not taken:
                self._wake.wait(IDLE_POLL)
                self._wake.clear()

    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            try:
                report = reconcile(self.engine, self.config, running_since=self.started_at)
                if report.changed:
                    log.warning("reconciler: %s", report)
            except Exception:
                log.exception("reconciler pass failed")
            self._stop.wait(self.config.reconcile_interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
