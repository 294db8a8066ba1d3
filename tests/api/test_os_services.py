"""Compute os-services: each host a ``nova-compute`` service that operators list,
disable with a reason, enable and force down — as the openstack CLI does it at
2.53 (``PUT /os-services/{id}``) and before (the ``enable``/``disable`` actions) —
and the scheduler honouring a disabled host at once."""

from __future__ import annotations

from typing import Any

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, create_port
from tests.api.test_servers import boot, boot_env, show

SERVICES = f"{COMPUTE}/os-services"
V253 = {"OpenStack-API-Version": "compute 2.53"}
V211 = {"OpenStack-API-Version": "compute 2.11"}


def services(api: Api, tokens: Tokens, query: str = "", headers: Any = None) -> Any:
    resp = api.get(f"{SERVICES}{query}", token=tokens.admin, headers=headers or V253)
    assert resp.status_code == 200, resp.text
    return resp.json()["services"]


def service(api: Api, tokens: Tokens, host: str) -> dict[str, Any]:
    (found,) = services(api, tokens, f"?host={host}&binary=nova-compute")
    return dict(found)


def boot_on_vf(api: Api, tokens: Tokens, env: dict[str, Any]) -> dict[str, Any]:
    """Boot a server on a new direct port; its admin view once scheduled."""
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert resp.status_code == 202, resp.text
    return show(api, tokens.admin, resp.json()["server"]["id"])


def two_hosts(api: Api, tokens: Tokens) -> None:
    for name in ("compute1", "compute2"):
        FakeAgent(api, tokens.admin, name).report()


def test_list_shows_each_host_as_a_compute_service(api: Api, tokens: Tokens) -> None:
    two_hosts(api, tokens)
    listed = services(api, tokens)
    assert [(s["host"], s["binary"], s["status"], s["state"]) for s in listed] == [
        ("compute1", "nova-compute", "enabled", "up"),
        ("compute2", "nova-compute", "enabled", "up"),
    ]
    first = listed[0]
    assert len(first["id"]) == 36 and first["forced_down"] is False
    assert first["disabled_reason"] is None and first["zone"] == "nova"
    # before 2.53 ids are integers; before 2.11 there is no forced_down
    old = services(api, tokens, headers={"OpenStack-API-Version": "compute 2.1"})[0]
    assert isinstance(old["id"], int) and "forced_down" not in old
    assert [s["host"] for s in services(api, tokens, "?host=compute2")] == ["compute2"]
    assert services(api, tokens, "?binary=nova-scheduler") == []
    assert services(api, tokens, "?host=nowhere") == []
    compute_error(api.get(SERVICES, token=tokens.demo), 403, "forbidden")


def test_disable_with_reason_and_enable_at_2_53(api: Api, tokens: Tokens) -> None:
    two_hosts(api, tokens)
    sid = service(api, tokens, "compute1")["id"]
    body = {"status": "disabled", "disabled_reason": "firmware update"}
    resp = api.put(f"{SERVICES}/{sid}", token=tokens.admin, json=body, headers=V253)
    assert resp.status_code == 200, resp.text
    got = resp.json()["service"]
    assert (got["id"], got["status"], got["disabled_reason"]) == (
        sid,
        "disabled",
        "firmware update",
    )
    assert service(api, tokens, "compute1")["disabled_reason"] == "firmware update"
    hv = api.get(f"{COMPUTE}/os-hypervisors/detail", token=tokens.admin).json()["hypervisors"]
    assert (
        hv[0]["status"] == "disabled" and hv[0]["service"]["disabled_reason"] == "firmware update"
    )

    resp = api.put(
        f"{SERVICES}/{sid}", token=tokens.admin, json={"status": "enabled"}, headers=V253
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["service"]["status"] == "enabled"
    assert resp.json()["service"]["disabled_reason"] is None

    resp = api.put(
        f"{SERVICES}/{sid}", token=tokens.admin, json={"forced_down": True}, headers=V253
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["service"]["state"] == "down" and resp.json()["service"]["forced_down"]


def test_the_older_actions(api: Api, tokens: Tokens) -> None:
    two_hosts(api, tokens)
    who = {"host": "compute2", "binary": "nova-compute"}
    resp = api.put(f"{SERVICES}/disable", token=tokens.admin, json=who)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"service": {**who, "status": "disabled"}}
    body = {**who, "disabled_reason": "bad NIC"}
    resp = api.put(f"{SERVICES}/disable-log-reason", token=tokens.admin, json=body)
    assert resp.json()["service"]["disabled_reason"] == "bad NIC"
    assert service(api, tokens, "compute2")["disabled_reason"] == "bad NIC"
    resp = api.put(f"{SERVICES}/enable", token=tokens.admin, json=who)
    assert resp.json() == {"service": {**who, "status": "enabled"}}
    assert service(api, tokens, "compute2")["status"] == "enabled"
    # force-down needs 2.11
    down = {**who, "forced_down": True}
    assert api.put(f"{SERVICES}/force-down", token=tokens.admin, json=down).status_code == 404
    resp = api.put(f"{SERVICES}/force-down", token=tokens.admin, json=down, headers=V211)
    assert resp.json() == {"service": down}
    assert service(api, tokens, "compute2")["state"] == "down"


def test_refusals_name_the_field(api: Api, tokens: Tokens) -> None:
    two_hosts(api, tokens)
    sid = service(api, tokens, "compute1")["id"]

    def put(path: str, body: Any, token: str = tokens.admin) -> Any:
        return api.put(f"{SERVICES}/{path}", token=token, json=body, headers=V253)

    compute_error(put(sid, {"status": "disabled"}, tokens.demo), 403, "forbidden")
    for body, field in [
        ({"status": "paused"}, "status"),
        ({"disabled_reason": "x"}, "disabled_reason"),
        ({"status": "enabled", "disabled_reason": "x"}, "disabled_reason"),
        ({"status": "disabled", "disabled_reason": "x" * 256}, "disabled_reason"),
        ({"forced_down": "maybe"}, "forced_down"),
        ({}, "status"),
        ({"status": "disabled", "colour": "red"}, "colour"),
    ]:
        assert field in compute_error(put(sid, body), 400, "badRequest"), body
    assert "host" in compute_error(put("disable", {"binary": "nova-compute"}), 400, "badRequest")
    missing = {"host": "compute1", "binary": "nova-compute"}
    message = compute_error(put("disable-log-reason", missing), 400, "badRequest")
    assert "disabled_reason" in message
    compute_error(
        put("9d4a0a44-0000-4000-8000-000000000000", {"status": "disabled"}), 404, "itemNotFound"
    )
    compute_error(
        put("disable", {"host": "nowhere", "binary": "nova-compute"}), 404, "itemNotFound"
    )
    compute_error(
        put("disable", {"host": "compute1", "binary": "nova-conductor"}), 404, "itemNotFound"
    )
    # a service id is no action before 2.53
    old = api.put(f"{SERVICES}/{sid}", token=tokens.admin, json={"status": "disabled"})
    compute_error(old, 404, "itemNotFound")
    assert service(api, tokens, "compute1")["status"] == "enabled"  # nothing changed


def test_a_disabled_host_is_not_scheduled_until_enabled(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    two_hosts(api, tokens)
    # the scheduler has seen both hosts before the change
    assert boot_on_vf(api, tokens, env)["OS-EXT-SRV-ATTR:host"] in ("compute1", "compute2")
    sid = service(api, tokens, "compute1")["id"]
    body = {"status": "disabled", "disabled_reason": "maintenance"}
    assert (
        api.put(f"{SERVICES}/{sid}", token=tokens.admin, json=body, headers=V253).status_code == 200
    )
    for _ in range(3):
        assert boot_on_vf(api, tokens, env)["OS-EXT-SRV-ATTR:host"] == "compute2"

    who = {"host": "compute2", "binary": "nova-compute"}
    assert api.put(f"{SERVICES}/disable", token=tokens.admin, json=who).status_code == 200
    failed = boot_on_vf(api, tokens, env)
    assert failed["status"] == "ERROR"
    message = failed["fault"]["message"]
    assert message.startswith("No valid host was found.")
    assert "disabled (compute1, compute2)" in message

    assert api.put(f"{SERVICES}/enable", token=tokens.admin, json=who).status_code == 200
    assert boot_on_vf(api, tokens, env)["OS-EXT-SRV-ATTR:host"] == "compute2"
