"""The caller of a service route: a token the cache holds is answered without
reading the database, and the cache never lets through what a fresh check
would refuse (a revoked token, a token without a project)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from pcifleet.api.token_cache import token_cache
from tests.api.conftest import DEMO_PASSWORD, Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, password_auth

LIST = f"{COMPUTE}/servers"


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def demo_token(api: Api) -> str:
    resp = api.post("/v3/auth/tokens", json=password_auth("demo", DEMO_PASSWORD, "demo"))
    assert resp.status_code == 201, resp.text
    return resp.headers["X-Subject-Token"]


def test_a_cached_token_is_checked_without_reading_the_database(api: Api, engine: Engine) -> None:
    token_cache(engine).ttl = 600.0  # no expiry between the two calls, however slow the machine
    token = demo_token(api)
    with statements(engine) as first:
        assert api.get(LIST, token=token).status_code == 200
    with statements(engine) as second:
        assert api.get(LIST, token=token).status_code == 200
    assert any("tokens" in s for s in first)
    assert second and not any("tokens" in s or "role_assignments" in s for s in second)


def test_a_revoked_token_is_refused_at_once(api: Api, engine: Engine) -> None:
    token_cache(engine).ttl = 600.0
    token = demo_token(api)
    assert api.get(LIST, token=token).status_code == 200  # now cached
    revoked = api.delete("/v3/auth/tokens", token=token, headers={"X-Subject-Token": token})
    assert revoked.status_code == 204
    compute_error(api.get(LIST, token=token), 401, "unauthorized")


def test_a_token_without_a_project_is_refused_each_time(
    api: Api, engine: Engine, tokens: Tokens
) -> None:
    token_cache(engine).ttl = 600.0
    demo = api.get("/v3/users", token=tokens.admin, params={"name": "demo"}).json()["users"][0]
    grant = f"/v3/system/users/{demo['id']}/roles/reader"
    assert api.put(grant, token=tokens.admin).status_code == 204
    body = password_auth("demo", DEMO_PASSWORD, "demo")
    body["auth"]["scope"] = {"system": {"all": True}}
    resp = api.post("/v3/auth/tokens", json=body)
    assert resp.status_code == 201, resp.text
    system = resp.headers["X-Subject-Token"]
    for _ in range(2):  # the second check is the cached one
        message = compute_error(api.get(LIST, token=system), 401, "unauthorized")
        assert "project-scoped" in message


def test_no_token_or_a_hostile_one_is_refused(api: Api) -> None:
    compute_error(api.get(LIST), 401, "unauthorized")
    for token in ("x" * 513, b"tok\xe9n", "nope"):
        compute_error(api.get(LIST, headers={"X-Auth-Token": token}), 401, "unauthorized")
