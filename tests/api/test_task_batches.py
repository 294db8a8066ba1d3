"""The agent's batched result report, the task feed woken by a committed task,
and the token cache's answers to revocation and disabling."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine, select

from pcifleet.api.routes import pcifleet_v1
from pcifleet.store.models import Task
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api
from tests.api.test_servers import MV, boot, boot_env, show

V1 = "/pcifleet/v1"


def _results(agent: FakeAgent, results: list[dict[str, Any]]) -> Any:
    return agent.api.post(
        f"{V1}/hosts/{agent.host}/results", json={"results": results}, headers=agent.headers
    )


def test_several_results_in_one_report_each_take_effect(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    ok = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    bad = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    tasks = {t["instance_uuid"]: t for t in agent.tasks()}
    assert set(tasks) == {ok, bad}
    resp = _results(
        agent,
        [
            {"task_id": tasks[ok]["id"], "state": "done"},
            {"task_id": tasks[bad]["id"], "state": "failed", "message": "no disk"},
            {"task_id": tasks[ok]["id"], "state": "failed", "message": "late"},
        ],
    )
    assert resp.status_code == 200, resp.text
    # in the order given; the repeated one keeps what was recorded first
    assert [t["state"] for t in resp.json()["tasks"]] == ["done", "failed", "done"]
    assert show(api, tokens.demo, ok)["status"] == "ACTIVE"
    failed = show(api, tokens.demo, bad)
    assert failed["status"] == "ERROR" and "no disk" in failed["fault"]["message"]


def test_a_report_naming_a_task_it_may_not_report_changes_nothing(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    env = boot_env(api, tokens)
    one = FakeAgent(api, tokens.admin, "compute1")
    one.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    (task,) = one.tasks()
    two = FakeAgent(api, tokens.admin, "compute2")
    unknown = _results(
        one, [{"task_id": task["id"], "state": "done"}, {"task_id": 2**40, "state": "done"}]
    )
    assert unknown.status_code == 404 and "results[1].task_id" in unknown.text
    # compute2's agent reporting under its own name a task of compute1
    other = _results(two, [{"task_id": task["id"], "state": "done"}])
    assert other.status_code == 400 and "results[0].task_id" in other.text
    # and not under compute1's name with its own credential
    assert (
        api.post(
            f"{V1}/hosts/compute1/results",
            json={"results": [{"task_id": task["id"], "state": "done"}]},
            headers=two.headers,
        ).status_code
        == 401
    )
    empty = api.post(f"{V1}/hosts/compute1/results", json={"results": []}, headers=one.headers)
    assert empty.status_code == 400 and "results" in empty.text
    with engine.connect() as conn:
        assert conn.execute(select(Task.state).where(Task.id == task["id"])).scalar() == "running"
    assert show(api, tokens.demo, uuid)["status"] == "BUILD"


def test_a_waiting_feed_answers_when_a_task_for_its_host_commits(
    api: Api, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the table's own re-reading pushed past the wait, only the bell
    can bring the boot's build task to the waiting agent."""
    monkeypatch.setattr(pcifleet_v1, "RECHECK_SECONDS", 600.0)
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    got: list[Any] = []
    waiting = threading.Thread(
        target=lambda: got.append(
            api.get(f"{V1}/hosts/compute1/tasks?wait=60", headers=agent.headers).json()
        )
    )
    waiting.start()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    waiting.join(120)
    assert not waiting.is_alive()
    assert [t["instance_uuid"] for t in got[0]["tasks"]] == [uuid]


def test_a_revoked_token_or_disabled_user_is_refused_at_once(api: Api, tokens: Tokens) -> None:
    """The token cache keeps a check for a moment; a change to identity rows
    drops it, so the next call reads the rows again."""
    servers = f"{COMPUTE}/servers"
    token = api.post(
        "/v3/auth/tokens",
        json={
            "auth": {
                "identity": {"methods": ["token"], "token": {"id": tokens.demo}},
                "scope": {"project": {"name": "demo", "domain": {"id": "default"}}},
            }
        },
    ).headers["X-Subject-Token"]
    assert api.get(servers, token=token, headers=MV).status_code == 200
    assert api.get(servers, token=token, headers=MV).status_code == 200  # from the cache
    revoked = api.delete("/v3/auth/tokens", token=token, headers={"X-Subject-Token": token})
    assert revoked.status_code == 204
    assert api.get(servers, token=token, headers=MV).status_code == 401
    demo = api.get("/v3/users?name=demo", token=tokens.admin).json()["users"][0]
    assert api.get(servers, token=tokens.demo, headers=MV).status_code == 200
    patched = api.patch(
        f"/v3/users/{demo['id']}", json={"user": {"enabled": False}}, token=tokens.admin
    )
    assert patched.status_code == 200, patched.text
    assert api.get(servers, token=tokens.demo, headers=MV).status_code == 401
