"""Server actions through the compute API with a stand-in agent: each action's
state on the way and at the end, the 409 that names a forbidding state, the 400
that names an unsupported action, rename, console output, multi-create and the
instance action history."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pcifleet.store.cloud import Image
from pcifleet.store.models import Instance
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error
from tests.api.test_servers import MV, boot, boot_env, show


def active_server(api: Api, tokens: Tokens) -> tuple[str, FakeAgent]:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    agent.run_all()
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
    return uuid, agent


def act(api: Api, token: str, uuid: str, body: dict[str, Any]) -> Any:
    return api.post(f"{COMPUTE}/servers/{uuid}/action", token=token, json=body, headers=MV)


# (action body, status while the host works, status after, power_state after)
STORY: list[tuple[dict[str, Any], str, str, int]] = [
    ({"os-stop": None}, "ACTIVE", "SHUTOFF", 4),
    ({"os-start": None}, "SHUTOFF", "ACTIVE", 1),
    ({"reboot": {"type": "SOFT"}}, "REBOOT", "ACTIVE", 1),
    ({"reboot": {"type": "HARD"}}, "HARD_REBOOT", "ACTIVE", 1),
    ({"pause": None}, "ACTIVE", "PAUSED", 3),
    ({"unpause": None}, "PAUSED", "ACTIVE", 1),
    ({"suspend": None}, "ACTIVE", "SUSPENDED", 7),
    ({"resume": None}, "SUSPENDED", "ACTIVE", 1),
]


def test_every_action_goes_through_the_agent_and_is_recorded(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    for body, during, after, power in STORY:
        resp = act(api, tokens.demo, uuid, body)
        assert resp.status_code == 202, (body, resp.text)
        assert show(api, tokens.demo, uuid)["status"] == during, body
        (task,) = agent.tasks()
        assert task["kind"] == "power" and task["instance_uuid"] == uuid
        agent.finish(task)
        server = show(api, tokens.demo, uuid)
        assert (server["status"], server["OS-EXT-STS:power_state"]) == (after, power), body
        assert server["OS-EXT-STS:task_state"] is None
    actions = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    names = [a["action"] for a in reversed(actions)]
    assert names == [
        "create",
        "stop",
        "start",
        "reboot",
        "reboot",
        "pause",
        "unpause",
        "suspend",
        "resume",
    ]
    stop = next(a for a in actions if a["action"] == "stop")
    detail = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions/{stop['request_id']}",
        token=tokens.admin,
        headers=MV,
    ).json()["instanceAction"]
    (event,) = detail["events"]
    assert event["event"] == "compute_stop_instance" and event["result"] == "Success"
    assert event["host"] == "compute1" and event["finish_time"]


def test_a_failed_action_leaves_the_state_and_records_the_error(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"pause": None}).status_code == 202
    (task,) = agent.tasks()
    agent.finish(task, "failed", "libvirt: cannot pause", {"power_state": "running"})
    server = show(api, tokens.demo, uuid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
    actions = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    assert actions[0]["action"] == "pause" and actions[0]["message"] == "Error"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"os-start": None}, "vm_state active"),
        ({"unpause": None}, "vm_state active"),
        ({"resume": None}, "vm_state active"),
    ],
)
def test_an_action_the_state_forbids_is_409_naming_the_state(
    api: Api, tokens: Tokens, body: dict[str, Any], says: str
) -> None:
    uuid, _ = active_server(api, tokens)
    assert says in compute_error(act(api, tokens.demo, uuid, body), 409, "conflictingRequest")


def test_a_second_action_while_one_runs_is_409_naming_the_task(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    message = compute_error(act(api, tokens.demo, uuid, {"pause": None}), 409, "conflictingRequest")
    assert "task_state powering-off" in message


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"rescue": None}, "'rescue' is not supported"),
        ({"resize": {"flavorRef": "nope"}}, "Unable to find flavor nope"),
        ({"shelve": None}, "'shelve' is not supported"),
        ({"os-frobnicate": None}, "no such server action: 'os-frobnicate'"),
        ({"reboot": {"type": "GENTLE"}}, "reboot.type"),
        ({"reboot": None}, "reboot.type"),
        ({}, "exactly one action"),
        ({"os-stop": None, "os-start": None}, "exactly one action"),
        ({"os-getConsoleOutput": {"length": "many"}}, "length"),
        ({"os-getConsoleOutput": {"length": -5}}, "length"),
    ],
)
def test_bad_action_bodies_are_400_naming_what(
    api: Api, tokens: Tokens, body: dict[str, Any], says: str
) -> None:
    uuid, _ = active_server(api, tokens)
    assert says in compute_error(act(api, tokens.demo, uuid, body), 400, "badRequest")


def test_action_on_a_missing_or_foreign_server_is_404(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    compute_error(act(api, tokens.alice, uuid, {"os-stop": None}), 404, "itemNotFound")
    compute_error(act(api, tokens.demo, "nope", {"os-stop": None}), 404, "itemNotFound")


def test_rename_and_describe(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    body = {"server": {"name": "renamed", "description": "a note"}}
    resp = api.put(f"{COMPUTE}/servers/{uuid}", token=tokens.demo, json=body, headers=MV)
    assert resp.status_code == 200, resp.text
    server = show(api, tokens.demo, uuid)
    assert (server["name"], server["description"]) == ("renamed", "a note")
    bad = api.put(
        f"{COMPUTE}/servers/{uuid}", token=tokens.demo, json={"server": {"name": ""}}, headers=MV
    )
    assert "server.name" in compute_error(bad, 400, "badRequest")


def test_console_output_comes_from_the_agent(api: Api, tokens: Tokens) -> None:
    """The request waits for the agent's answer; a thread stands in for the agent."""
    import threading
    import time

    uuid, agent = active_server(api, tokens)
    answered: list[dict[str, Any]] = []

    def answer() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not answered:
            for task in agent.tasks():
                answered.append(task)
                agent.finish(task, details={"output": "login: \n"})
            time.sleep(0.05)

    # the stand-in agent shares the test's event loop, so it runs beside the request
    thread = threading.Thread(target=answer)
    thread.start()
    resp = act(api, tokens.demo, uuid, {"os-getConsoleOutput": {"length": 10}})
    thread.join()
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"output": "login: \n"}
    assert answered[0]["kind"] == "console" and answered[0]["payload"]["length"] == 10


def test_multi_create_all_fit(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    resp = boot(
        api, tokens.demo, env, [{"uuid": env["net"]["id"]}], min_count=3, max_count=3,
        return_reservation_id=True,
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    reservation = resp.json()["reservation_id"]
    assert len(agent.run_all()) == 3
    url = f"{COMPUTE}/servers/detail?all_tenants=1"
    servers = api.get(url, token=tokens.admin, headers=MV).json()["servers"]
    mine = [s for s in servers if s["OS-EXT-SRV-ATTR:reservation_id"] == reservation]
    assert sorted(s["name"] for s in mine) == ["vm-1", "vm-2", "vm-3"]
    assert {s["status"] for s in mine} == {"ACTIVE"}
    assert sorted(s["OS-EXT-SRV-ATTR:launch_index"] for s in mine) == [0, 1, 2]


def test_multi_create_below_min_count_is_all_or_nothing(api: Api, tokens: Tokens) -> None:
    """Two GPUs on the host and min_count 3 GPU servers: none is built, all are
    ERROR with a fault saying why, and the two GPUs that fitted are free again."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    flavor = env["flavor"]
    api.post(
        f"{COMPUTE}/flavors/{flavor}/os-extra_specs",
        token=tokens.admin,
        json={"extra_specs": {"pci_passthrough:alias": "gpu:1"}},
    )
    resp = boot(api, tokens.demo, env, "none", min_count=3, max_count=3)
    assert resp.status_code == 202, resp.text
    assert agent.tasks() == []  # nothing was sent to build
    url = f"{COMPUTE}/servers/detail?all_tenants=1"
    servers = api.get(url, token=tokens.admin, headers=MV).json()["servers"]
    assert len(servers) == 3 and {s["status"] for s in servers} == {"ERROR"}
    assert all("min_count" in s["fault"]["message"] or "No valid host" in s["fault"]["message"]
               for s in servers)  # fmt: skip
    host = api.get("/pcifleet/v1/hosts/compute1", token=tokens.admin).json()["host"]
    gpus = [p for p in host["pci_stats"] if p["vendor_id"] == "10de"]
    assert sum(p["count"] for p in gpus) == sum(p["total"] for p in gpus) == 2


def test_multi_create_with_one_port_is_refused(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    from tests.api.helpers import create_port

    p = create_port(api, tokens.demo, env["net"]["id"])
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}], max_count=2)
    assert "single configured port" in compute_error(resp, 400, "badRequest")


def test_a_clean_stop_waits_as_long_as_the_image_says(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, agent = active_server(api, tokens)
    with Session(engine) as session:
        image = session.get(Image, session.get(Instance, uuid).image_id)  # type: ignore[union-attr]
        assert image is not None
        image.properties = {**image.properties, "os_shutdown_timeout": "7"}
        session.commit()
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    (task,) = agent.tasks()
    assert task["payload"]["timeout"] == 7.0
    agent.finish(task)
    # A hard reboot never waits, whatever the image says.
    assert act(api, tokens.demo, uuid, {"os-start": None}).status_code == 202
    agent.run_all()
    assert act(api, tokens.demo, uuid, {"reboot": {"type": "HARD"}}).status_code == 202
    (task,) = agent.tasks()
    assert "timeout" not in task["payload"]


@pytest.mark.parametrize("value", ["soon", "-1", "99999999999"])
def test_an_unusable_shutdown_timeout_means_the_default(
    api: Api, tokens: Tokens, engine: Engine, value: str
) -> None:
    uuid, agent = active_server(api, tokens)
    with Session(engine) as session:
        image = session.get(Image, session.get(Instance, uuid).image_id)  # type: ignore[union-attr]
        assert image is not None
        image.properties = {"os_shutdown_timeout": value}
        session.commit()
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    (task,) = agent.tasks()
    assert "timeout" not in task["payload"]


def test_a_boot_records_its_scheduling_and_build_steps(api: Api, tokens: Tokens) -> None:
    uuid, _agent = active_server(api, tokens)
    (create,) = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    assert create["action"] == "create" and create["message"] is None
    detail = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions/{create['request_id']}",
        token=tokens.admin,
        headers=MV,
    ).json()["instanceAction"]
    steps = {e["event"]: e for e in detail["events"]}
    assert set(steps) == {
        "conductor_schedule_and_build_instances",
        "compute__do_build_and_run_instance",
    }
    assert all(e["result"] == "Success" and e["finish_time"] for e in steps.values())
    assert steps["compute__do_build_and_run_instance"]["host"] == "compute1"
    assert detail["updated_at"] is not None


def test_a_build_that_fails_on_its_host_marks_the_action_error(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    (task,) = agent.tasks()
    agent.finish(task, state="failed", message="qemu said no")
    assert show(api, tokens.demo, uuid)["status"] == "ERROR"
    (create,) = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    assert create["message"] == "Error"
    detail = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions/{create['request_id']}",
        token=tokens.admin,
        headers=MV,
    ).json()["instanceAction"]
    build = next(e for e in detail["events"] if e["event"] == "compute__do_build_and_run_instance")
    assert build["result"] == "Error" and build["finish_time"]
