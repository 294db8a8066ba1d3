"""No device is ever handed out twice, whatever the concurrency.

A fleet with exactly K free VFs on physnet1; many more boots than K race for
them — threads sharing an engine (SQLite and PostgreSQL), and on PostgreSQL
separate processes each with its own engine and scheduler, like several
controllers. Exactly K boots succeed, the others fail with the clean errors
(PciRequestsUnsatisfiable / NoValidHost), and the database shows every VF held
once, with pools that add up.
"""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Callable

from sqlalchemy import Engine, func, select

from pcifleet.pci import PciRequestsUnsatisfiable
from pcifleet.scheduler import NoValidHost, Scheduler, SchedulerConfig
from pcifleet.store.bulk import bulk_load_hosts
from pcifleet.store.checks import check_consistency, held_by_request
from pcifleet.store.claims import claim
from pcifleet.store.db import make_engine
from pcifleet.store.models import pci_devices_table as D
from tests.store.pg import engine_url
from tests.store.sample import classified, vf_port

THREADS = 16


def race(workers: int, boot: Callable[[int], object]) -> tuple[list[object], list[Exception]]:
    """Run ``boot(i)`` in ``workers`` threads started together."""
    start = threading.Barrier(workers)
    won: list[object] = []
    lost: list[Exception] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        start.wait()
        try:
            result = boot(i)
        except Exception as exc:  # collected and asserted on below
            with lock:
                lost.append(exc)
        else:
            with lock:
                won.append(result)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, lost


def assert_each_vf_held_once(engine: Engine, k: int) -> None:
    with engine.connect() as conn:
        held = conn.execute(
            select(D.c.address, D.c.host_id, func.count(func.distinct(D.c.instance_uuid)))
            .where(D.c.status == "claimed")
            .group_by(D.c.host_id, D.c.address)
        ).all()
    assert len(held) == k
    assert all(n == 1 for _, _, n in held)
    assert all(n == 1 for n in held_by_request(engine).values())
    assert check_consistency(engine) == []


def test_threads_claiming_on_one_host(engine: Engine) -> None:
    k = 6
    bulk_load_hosts(engine, ["h1"], classified(k))
    won, lost = race(
        THREADS, lambda i: claim(engine, "h1", str(uuid.uuid4()), [vf_port()], retries=THREADS)
    )
    assert len(won) == k
    assert all(isinstance(e, PciRequestsUnsatisfiable) for e in lost), lost
    assert_each_vf_held_once(engine, k)


def test_threads_with_their_own_schedulers(engine: Engine) -> None:
    hosts, per_host = 3, 2
    k = hosts * per_host
    bulk_load_hosts(engine, [f"h{i}" for i in range(hosts)], classified(per_host))
    config = SchedulerConfig(max_attempts=THREADS)
    schedulers = [Scheduler(engine, config) for _ in range(THREADS)]
    for s in schedulers:
        s.refresh(force=True)  # every controller starts from the same picture
    won, lost = race(
        THREADS, lambda i: schedulers[i].select_and_claim(str(uuid.uuid4()), [vf_port()])
    )
    for s in schedulers:
        s.close()
    assert len(won) == k
    assert all(isinstance(e, NoValidHost) for e in lost), lost
    assert_each_vf_held_once(engine, k)


def _controller(url: str, boots: int, start: object, out: object) -> None:
    """One controller process: its own engine and scheduler, ``boots`` boots."""
    engine = make_engine(url)
    sched = Scheduler(engine, SchedulerConfig(max_attempts=64))
    sched.refresh(force=True)
    placed, failed = 0, 0
    start.wait()  # type: ignore[attr-defined]
    for _ in range(boots):
        try:
            sched.select_and_claim(str(uuid.uuid4()), [vf_port()])
            placed += 1
        except NoValidHost:
            failed += 1
    out.put((placed, failed))  # type: ignore[attr-defined]
    sched.close()
    engine.dispose()


def test_processes_on_postgresql(pg_engine: Engine) -> None:
    engine = pg_engine
    hosts, per_host, procs, boots = 4, 3, 4, 6
    k = hosts * per_host
    bulk_load_hosts(engine, [f"h{i}" for i in range(hosts)], classified(per_host))
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(procs), ctx.Queue()
    workers = [
        ctx.Process(target=_controller, args=(engine_url(engine), boots, start, out))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert sum(p for p, _ in results) == k
    assert sum(f for _, f in results) == procs * boots - k
    assert_each_vf_held_once(engine, k)
