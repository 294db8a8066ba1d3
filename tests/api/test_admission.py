"""Admission control in-process: slots, the agents' reserve, 503 with Retry-After
and the service's error body, and the database's overload errors mapped the same."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens, in_process_client
from tests.api.helpers import Api

SLOW = 0.6


def slow_app(settings: ApiSettings, engine: Engine) -> FastAPI:
    """The service with 4 slots (2 kept for agents) and routes that hold a slot."""
    app = create_app(
        replace(settings, max_concurrent_requests=4, admission_wait_seconds=0.2), engine
    )

    def slow() -> dict[str, Any]:
        time.sleep(SLOW)  # a sync handler: holds its slot and a worker thread
        return {}

    def pool_exhausted() -> None:
        raise PoolTimeout("QueuePool limit reached")

    def locked() -> None:
        raise OperationalError("UPDATE hosts", {}, Exception("database is locked"))

    app.add_api_route("/compute/v2.1/slow", slow)
    app.add_api_route("/networking/v2.0/pool", pool_exhausted)
    app.add_api_route("/compute/v2.1/locked", locked)
    return app


@pytest.fixture
def slow_api(settings: ApiSettings, engine: Engine) -> Iterator[Api]:
    with in_process_client(slow_app(settings, engine)) as api:
        yield api


def burst(api: Api, requests: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    """Send all ``requests`` (method, path, kwargs) at once; responses in order."""
    out: list[httpx.Response | None] = [None] * len(requests)

    async def one(i: int, method: str, path: str, kwargs: dict[str, Any]) -> None:
        out[i] = await api.client.request(method, path, **kwargs)

    async def all_at_once() -> None:
        async with anyio.create_task_group() as tg:
            for i, (method, path, kwargs) in enumerate(requests):
                tg.start_soon(one, i, method, path, kwargs)

    api.portal.call(all_at_once)
    return [r for r in out if r is not None]


def test_a_burst_beyond_the_slots_is_refused_with_retry_after(slow_api: Api) -> None:
    responses = burst(slow_api, [("GET", "/compute/v2.1/slow", {})] * 6)
    codes = sorted(r.status_code for r in responses)
    # 2 user slots; the rest waited 0.2 s (< SLOW) for one and were refused
    assert codes == [200, 200, 503, 503, 503, 503]
    for refused in (r for r in responses if r.status_code == 503):
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["serviceUnavailable"]["code"] == 503
        assert refused.headers["x-openstack-request-id"].startswith("req-")


def test_agents_keep_their_reserve_under_a_user_burst(slow_api: Api, tokens: Tokens) -> None:
    agent = FakeAgent(slow_api, tokens.admin, "compute1")
    agent.report()
    beat = ("POST", "/pcifleet/v1/hosts/compute1/heartbeat", {"headers": agent.headers})
    poll = ("GET", "/pcifleet/v1/hosts/compute1/tasks", {"headers": agent.headers})
    users = [("GET", "/compute/v2.1/slow", {})] * 8
    responses = burst(slow_api, [*users, beat, beat, poll])
    assert [r.status_code for r in responses[-3:]] == [204, 204, 200]
    assert {r.status_code for r in responses[:-3]} == {200, 503}


def test_database_overload_is_503_with_retry_after(slow_api: Api) -> None:
    resp = slow_api.get("/networking/v2.0/pool")
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
    assert resp.json()["NeutronError"]["type"] == "HTTPServiceUnavailable"
    resp = slow_api.get("/compute/v2.1/locked")
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert resp.json()["serviceUnavailable"]["message"] == "The database is busy; retry."


def test_settings_size_threads_and_pool_together() -> None:
    settings = ApiSettings(database_url="sqlite://", max_concurrent_requests=40)
    assert settings.agent_reserved_requests == 10
    assert settings.worker_threads > settings.max_concurrent_requests
    assert settings.db_pool["pool_size"] == settings.worker_threads
    assert settings.db_pool["pool_size"] + settings.db_pool["max_overflow"] >= 2 * 40
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        ApiSettings(database_url="sqlite://", max_concurrent_requests=1)
    env = {"PCIFLEET_MAX_CONCURRENT_REQUESTS": "12", "PCIFLEET_ADMISSION_WAIT": "3"}
    from_env = ApiSettings.from_env(env)
    assert (from_env.max_concurrent_requests, from_env.admission_wait_seconds) == (12, 3.0)
