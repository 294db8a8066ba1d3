"""Server actions driven by the real ``openstack`` CLI against ``pcifleet up`` (xml driver).

Setup (networks, ports, flavors, images) goes straight to the API to keep the
test fast; every action, and every assertion about what the user sees, goes
through the CLI. Each CLI run costs seconds on a small machine, so state is
polled over HTTP and checked with ``server show -f json`` once it has settled.
"""

from __future__ import annotations

import subprocess
import threading
from typing import Any

import pytest

from .conftest import Cloud
from .helpers import (
    COMPUTE,
    Api,
    OscRunner,
    assert_nothing_leaked,
    osc_json,
    osc_ok,
    run_osc,
    wait_for,
)

pytestmark = pytest.mark.slow
# Nova's power_state numbers, which ``-f json`` shows as they are.
RUNNING, PAUSED, SHUTDOWN, SUSPENDED = 1, 3, 4, 7


@pytest.fixture(scope="module")
def names(api: Api) -> dict[str, str]:
    """A network on physnet2, a small flavor and an image of this module's own."""
    return {
        "net": api.network("act-net", "physnet2", 220),
        "flavor": api.flavor("act.small"),
        "image": api.image("act-tiny"),
    }


def show(cli: OscRunner, server: str) -> dict[str, Any]:
    return dict(osc_json(cli, "server", "show", server))


def act(cli: OscRunner, api: Api, server_id: str, *args: str, status: str) -> dict[str, Any]:
    """Run ``openstack server ARGS SERVER`` and wait for ``status``; the server as the API
    shows it (the same body ``server show`` formats; it is checked with the CLI at
    the first stop, and each CLI run costs seconds here)."""
    osc_ok(cli, "server", *args, server_id)
    return api.wait_status(server_id, status)


def refusals(cli: OscRunner, server_id: str) -> list[subprocess.CompletedProcess[str]]:
    """The CLI runs that must fail: unpause on an ACTIVE server, and actions
    pcifleet does not do."""
    runs = [("unpause",), ("rescue",), ("shelve",)]
    return [run_osc(cli, "server", *args, server_id) for args in runs]


def test_power_actions_rename_console_and_events(
    cloud: Cloud, cli: OscRunner, api: Api, names: dict[str, str]
) -> None:
    port = api.direct_port(names["net"], "act-port")
    failures: list[BaseException] = []

    def run_multi() -> None:
        try:
            multi_create_and_deletes(cloud, api, names)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    # The multi-create story runs beside this one: CLI runs are slow, the machine has 2 cores.
    multi = threading.Thread(target=run_multi, daemon=True)
    multi.start()
    try:
        power_story(cli, api, names, port)
    finally:
        multi.join(timeout=300)
    assert not multi.is_alive(), "the multi-create story did not finish"
    if failures:
        raise failures[0]
    assert_nothing_leaked(api, names["net"])


def power_story(cli: OscRunner, api: Api, names: dict[str, str], port: str) -> None:
    created = osc_json(
        cli,
        "server",
        "create",
        "--flavor",
        "act.small",
        "--image",
        "act-tiny",
        "--port",
        port,
        "--wait",
        "act-vm",
    )
    sid = created["id"]
    assert created["status"] == "ACTIVE"
    assert created["OS-EXT-STS:power_state"] == RUNNING

    act(cli, api, sid, "stop", status="SHUTOFF")
    shown = show(cli, sid)
    assert shown["status"] == "SHUTOFF" and shown["OS-EXT-STS:power_state"] == SHUTDOWN
    assert shown["OS-EXT-STS:vm_state"] == "stopped"
    shown = act(cli, api, sid, "start", status="ACTIVE")
    assert shown["OS-EXT-STS:power_state"] == RUNNING
    # reboot has --wait of its own
    osc_ok(cli, "server", "reboot", "--soft", "--wait", sid)
    osc_ok(cli, "server", "reboot", "--hard", "--wait", sid)
    assert api.wait_status(sid, "ACTIVE")["OS-EXT-STS:power_state"] == RUNNING
    shown = act(cli, api, sid, "pause", status="PAUSED")
    assert shown["OS-EXT-STS:power_state"] == PAUSED
    shown = act(cli, api, sid, "unpause", status="ACTIVE")
    assert shown["OS-EXT-STS:power_state"] == RUNNING
    shown = act(cli, api, sid, "suspend", status="SUSPENDED")
    assert shown["OS-EXT-STS:power_state"] == SUSPENDED
    shown = act(cli, api, sid, "resume", status="ACTIVE")
    assert shown["OS-EXT-STS:power_state"] == RUNNING

    unpause, rescue, shelve = refusals(cli, sid)
    # An action the state forbids: 409 naming the state, and nothing changes.
    assert unpause.returncode != 0
    assert "vm_state active" in unpause.stderr and "409" in unpause.stderr, unpause.stderr
    # Actions pcifleet does not do: a message naming them, never "could not be found".
    for name, refused in (("rescue", rescue), ("shelve", shelve)):
        assert refused.returncode != 0, name
        assert f"'{name}' is not supported" in refused.stderr, refused.stderr
        assert "could not be found" not in refused.stderr
    assert api.wait_status(sid, "ACTIVE")["OS-EXT-STS:vm_state"] == "active"

    osc_ok(cli, "server", "set", "--name", "act-renamed", sid)
    shown = show(cli, "act-renamed")
    assert shown["id"] == sid and shown["name"] == "act-renamed"

    console = osc_ok(cli, "console", "log", "show", "act-renamed")
    lines = [line for line in console.splitlines() if "pcifleet xml driver:" in line]
    assert len(lines) >= 8, console  # one line at least per power change above

    listed = osc_json(cli, "server", "event", "list", sid)
    actions = [e["Action"] for e in listed]
    for name in ("create", "stop", "start", "reboot", "pause", "unpause", "suspend", "resume"):
        assert name in actions, (name, actions)
    assert actions.count("reboot") == 2
    # The refused requests left no action behind.
    assert len(actions) == 9, actions
    stop = next(e for e in listed if e["Action"] == "stop")
    event = osc_json(cli, "server", "event", "show", sid, stop["Request ID"])
    assert event["action"] == "stop" and event["request_id"] == stop["Request ID"]
    assert event["events"], event
    assert all(e["result"] == "Success" for e in event["events"]), event

    osc_ok(cli, "server", "delete", "--wait", "act-renamed")
    assert api.server(sid) is None


def multi_create_and_deletes(cloud: Cloud, api: Api, names: dict[str, str]) -> None:
    cli = OscRunner(cloud.env)  # a runner serves one thread
    try:
        multi_story(cli, api)
    finally:
        cli.close()


def multi_story(cli: OscRunner, api: Api) -> None:
    osc_ok(
        cli,
        "server",
        "create",
        "--flavor",
        "act.small",
        "--image",
        "act-tiny",
        "--network",
        "act-net",
        "--min",
        "3",
        "--max",
        "3",
        "act-multi",
    )

    def three() -> list[dict[str, Any]] | None:
        found = api.req("GET", COMPUTE + "/servers/detail", params={"name": "act-multi"})
        mine = [s for s in found["servers"] if s["name"].startswith("act-multi")]
        return mine if len(mine) == 3 and all(s["status"] == "ACTIVE" for s in mine) else None

    servers = wait_for("3 ACTIVE act-multi servers", three, 90)
    listed = osc_json(cli, "server", "list", "--name", "act-multi")
    assert sorted(s["ID"] for s in listed) == sorted(s["id"] for s in servers)
    assert {s["Status"] for s in listed} == {"ACTIVE"}

    forced, *rest = (s["id"] for s in servers)
    osc_ok(cli, "server", "delete", "--force", forced)
    api.wait_gone(forced)
    osc_ok(cli, "server", "delete", "--wait", *rest)
    for sid in rest:
        assert api.server(sid) is None
