"""Moves racing deletes and each other under real concurrency (threads calling
the compute layer with their own sessions), on SQLite and on PostgreSQL
(``PCIFLEET_TEST_PG_URL``): a delete against the move job's claim, two migrates
of one server, a resize against a delete, an evacuation's claim against a
delete. Each ends in one outcome: at most one
move is recorded, no device is held twice, and once the agents have reported
nothing is left held or bound."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pcifleet.api.app import create_app
from pcifleet.compute import jobs
from pcifleet.compute.context import Context
from pcifleet.compute.delete import request_delete
from pcifleet.compute.errors import ApiError
from pcifleet.compute.evacuate import request_evacuate, run_evacuate
from pcifleet.compute.lookup import flavor_snapshot, specs_of
from pcifleet.compute.move_steps import run_move
from pcifleet.compute.moves import request_move
from pcifleet.compute.worker import run_job
from pcifleet.store.cloud import Flavor
from pcifleet.store.db import make_engine, upgrade
from pcifleet.store.models import Migration, PciDeviceRow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens, in_process_client, issue_tokens, make_settings, seed_users
from tests.api.helpers import Api, create_port
from tests.api.inventory import sample_aliases
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_move_repair import host_down, host_up
from tests.api.test_moves import gpu_flavor, two_hosts
from tests.api.test_servers import boot, boot_env, show
from tests.store.pg import fresh_schema, pg_url_or_skip

ROUNDS = 3
ADMIN = Context("admin", "admin", "admin", "admin", frozenset({"admin"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def race_env(
    request: pytest.FixtureRequest, engine: Engine, tmp_path: Path
) -> Iterator[tuple[Api, Tokens, Engine]]:
    if request.param == "sqlite":
        yield from _env(engine, tmp_path)
        return
    with fresh_schema(pg_url_or_skip()) as url:
        pg = make_engine(url)
        upgrade(pg)
        seed_users(pg)
        try:
            yield from _env(pg, tmp_path)
        finally:
            pg.dispose()


def _env(engine: Engine, tmp_path: Path) -> Iterator[tuple[Api, Tokens, Engine]]:
    settings = make_settings(str(engine.url), tmp_path)
    settings.run_jobs_inline = False  # the test runs the move jobs itself, in threads
    with in_process_client(create_app(settings, engine)) as api:
        yield api, issue_tokens(api), engine


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` at once; each one's result or the exception it raised."""
    start = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        start.wait()
        try:
            out[i] = call()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _migrate(engine: Engine, uuid: str, flavor_id: str | None = None) -> Any:
    with Session(engine) as session, session.begin():
        kwargs: dict[str, Any] = {}
        if flavor_id is not None:
            flavor = session.get(Flavor, flavor_id)
            assert flavor is not None
            kwargs = {
                "new_flavor": flavor,
                "flavor_snapshot": flavor_snapshot(flavor),
                "extra_specs": specs_of(flavor),
                "aliases": sample_aliases(),
            }
        return request_move(session, ADMIN, uuid, request_id="req-race", host_down_after=60,
                            **kwargs)  # fmt: skip


def _delete(engine: Engine, uuid: str) -> Any:
    with Session(engine) as session, session.begin():
        return request_delete(
            session, uuid, request_id="req-del", user_id=None, project_id=None, host_down_after=60
        )


def _run_jobs(engine: Engine) -> None:
    for job in jobs.take(engine, "race", limit=10):
        run_move(engine, job)


def _held_twice(engine: Engine) -> int:
    with Session(engine) as session:
        rows = session.execute(
            select(PciDeviceRow.host_id, PciDeviceRow.address, func.count())
            .group_by(PciDeviceRow.host_id, PciDeviceRow.address)
            .having(func.count() > 1)
        ).all()
    return len(rows)


def _drain(agents: dict[str, FakeAgent]) -> None:
    for _ in range(4):  # a move's report queues the next host's task
        for agent in agents.values():
            agent.run_all()


@pytest.mark.parametrize("story", ["delete_vs_claim", "two_migrates", "resize_vs_delete"])
def test_moves_race_to_one_outcome(race_env: tuple[Api, Tokens, Engine], story: str) -> None:
    api, tokens, engine = race_env
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    gpu = gpu_flavor(api, tokens)
    config = make_settings(str(engine.url), Path(".")).compute_config()
    for _ in range(ROUNDS):
        p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
        uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
        for job in jobs.take(engine, "boot", limit=10):
            run_job(engine, job, config)
        _drain(agents)
        assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
        _one_round(engine, uuid, gpu, story)
        with Session(engine) as session:
            moves = session.scalar(
                select(func.count()).select_from(Migration).where(Migration.instance_uuid == uuid)
            )
        assert (moves or 0) <= 1
        assert _held_twice(engine) == 0
        _drain(agents)
        if api.get(f"/compute/v2.1/servers/{uuid}", token=tokens.admin).status_code == 200:
            _delete(engine, uuid)
            _drain(agents)
        assert leftovers(engine) == CLEAN, story


def _one_round(engine: Engine, uuid: str, gpu: str, story: str) -> None:
    if story == "delete_vs_claim":
        _migrate(engine, uuid)
        race(lambda: _run_jobs(engine), lambda: _delete(engine, uuid))
    elif story == "two_migrates":
        out = race(lambda: _migrate(engine, uuid), lambda: _migrate(engine, uuid))
        assert sum(isinstance(o, int) for o in out) == 1, out
        assert all(isinstance(o, int | ApiError) for o in out), out
        _run_jobs(engine)
    else:
        race(lambda: _migrate(engine, uuid, gpu), lambda: _delete(engine, uuid))
        _run_jobs(engine)


def test_a_move_job_whose_server_was_deleted_first_just_ends(
    race_env: tuple[Api, Tokens, Engine],
) -> None:
    """Regression: the job found the server gone and failed to finish itself."""
    api, tokens, engine = race_env
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    for job in jobs.take(engine, "boot", limit=10):
        run_job(engine, job, make_settings(str(engine.url), Path(".")).compute_config())
    _drain(agents)
    _migrate(engine, uuid)
    _delete(engine, uuid)
    _run_jobs(engine)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(jobs.J)) == 0
    _drain(agents)
    assert leftovers(engine) == CLEAN


def _evacuate(engine: Engine, uuid: str) -> Any:
    with Session(engine) as session, session.begin():
        return request_evacuate(session, ADMIN, uuid, request_id="req-evac", host_down_after=60)


def test_an_evacuation_races_a_delete_to_one_outcome(
    race_env: tuple[Api, Tokens, Engine],
) -> None:
    """The evacuate job's claim (its hook swaps from rebuilding) against a delete
    of the server on its down host (a local delete): one wins, nothing leaks."""
    api, tokens, engine = race_env
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    config = make_settings(str(engine.url), Path(".")).compute_config()
    for _ in range(ROUNDS):
        p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
        uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
        for job in jobs.take(engine, "boot", limit=10):
            run_job(engine, job, config)
        _drain(agents)
        source = show(api, tokens.admin, uuid)["OS-EXT-SRV-ATTR:host"]
        host_down(engine, source)
        _evacuate(engine, uuid)
        taken = jobs.take(engine, "race", limit=10)
        (job,) = taken
        race(lambda: run_evacuate(engine, job), lambda: _delete(engine, uuid))  # noqa: B023
        assert _held_twice(engine) == 0
        host_up(engine, source)
        _drain(agents)
        if api.get(f"/compute/v2.1/servers/{uuid}", token=tokens.admin).status_code == 200:
            _delete(engine, uuid)
            _drain(agents)
        assert leftovers(engine) == CLEAN
