"""An agent's power-state report through ``POST /pcifleet/v1/hosts/{host}/power-states``:
servers follow what their host saw (Nova's power-state sync), a stale or
foreign report changes nothing, hostile reports are refused naming the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pcifleet.store.models import utcnow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api
from tests.api.test_server_actions import act, active_server
from tests.api.test_servers import MV, show


def listing(api: Api, agent: FakeAgent) -> dict[str, Any]:
    resp = api.get(f"/pcifleet/v1/hosts/{agent.host}/instances", headers=agent.headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def report(api: Api, agent: FakeAgent, seen_domains: dict[str, str], **over: Any) -> Any:
    seen = listing(api, agent)
    body = {"registration": seen["registration"], "as_of": seen["as_of"], "domains": seen_domains}
    body.update(over)
    return api.post(
        f"/pcifleet/v1/hosts/{agent.host}/power-states", json=body, headers=agent.headers
    )


def actions(api: Api, tokens: Tokens, uuid: str) -> list[str]:
    found = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    return [a["action"] for a in found]


def test_a_guest_that_powered_off_makes_its_server_shutoff(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    resp = report(api, agent, {uuid: "shutdown"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["stopped"] == [uuid]
    server = show(api, tokens.demo, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("SHUTOFF", 4)
    assert actions(api, tokens, uuid)[0] == "stop"
    # A server the controller stopped can be started again as usual.
    assert act(api, tokens.demo, uuid, {"os-start": None}).status_code == 202


def test_a_stopped_server_found_running_is_stopped_through_its_agent(
    api: Api, tokens: Tokens
) -> None:
    uuid, agent = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    agent.run_all()
    resp = report(api, agent, {uuid: "running"})
    assert resp.json()["stop_requested"] == [uuid]
    (task,) = agent.tasks()
    assert task["kind"] == "power" and task["payload"]["action"] == "stop"
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] == "powering-off"


def test_power_states_are_recorded_and_a_missing_domain_is_nostate(
    api: Api, tokens: Tokens
) -> None:
    uuid, agent = active_server(api, tokens)
    assert report(api, agent, {uuid: "paused"}).json()["recorded"] == [uuid]
    server = show(api, tokens.demo, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("ACTIVE", 3)
    resp = report(api, agent, {})
    assert resp.json()["missing"] == [uuid]
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:power_state"] == 0


def test_a_report_older_than_the_last_change_is_ignored(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    seen = listing(api, agent)
    # The agent looked (domain still off), then a start finished, then the report
    # arrived: it must not stop the server the user just started.
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    agent.run_all()
    body = {"registration": seen["registration"], "as_of": seen["as_of"], "domains": {}}
    resp = api.post(
        f"/pcifleet/v1/hosts/{agent.host}/power-states", json=body, headers=agent.headers
    )
    assert resp.json() == {
        "host": agent.host,
        "recorded": [],
        "stopped": [],
        "stop_requested": [],
        "missing": [],
    }
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:power_state"] == 4


def test_a_server_with_an_action_in_flight_is_left_to_its_task(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"pause": None}).status_code == 202
    assert report(api, agent, {uuid: "shutdown"}).json()["stopped"] == []
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] == "pausing"


def test_a_report_for_another_registration_changes_nothing(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    resp = report(api, agent, {uuid: "shutdown"}, registration="999@2020-01-01T00:00:00+00:00")
    assert resp.status_code == 409
    assert resp.json()["errors"][0]["code"] == "pcifleet.registration_mismatch"
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"


def test_only_the_hosts_own_agent_or_an_admin_may_report(api: Api, tokens: Tokens) -> None:
    _uuid, agent = active_server(api, tokens)
    other = FakeAgent(api, tokens.admin, "compute2")
    seen = listing(api, agent)
    body = {"registration": seen["registration"], "as_of": seen["as_of"], "domains": {}}
    resp = api.post("/pcifleet/v1/hosts/compute1/power-states", json=body, headers=other.headers)
    assert resp.status_code == 401
    resp = api.post("/pcifleet/v1/hosts/compute1/power-states", json=body, token=tokens.demo)
    assert resp.status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"domains": {"not-a-uuid": "running"}}, "domains"),
        ({"domains": {"00000000-0000-4000-8000-000000000001": "exploded"}}, "domains"),
        ({"domains": ["x"]}, "domains"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "2026-01-01T00:00:00"}, "as_of"),
        ({"registration": ""}, "registration"),
        ({"registration": "x" * 10_000}, "registration"),
        ({"extra": 1}, "extra"),
    ],
)
def test_hostile_reports_are_refused_naming_the_field(
    api: Api, tokens: Tokens, change: dict[str, Any], field: str
) -> None:
    uuid, agent = active_server(api, tokens)
    resp = report(api, agent, {uuid: "shutdown"}, **change)
    assert resp.status_code == 400, resp.text
    assert field in resp.text
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"


def test_a_report_from_the_future_counts_as_now(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    future = (utcnow() + timedelta(days=1)).isoformat()
    assert report(api, agent, {uuid: "crashed"}, as_of=future).json()["stopped"] == [uuid]
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:power_state"] == 6
