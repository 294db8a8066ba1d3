"""Locking servers (Nova's lock and unlock actions): a locked server refuses
the actions Nova guards, and delete, from anyone but an admin; who locked it
decides who may unlock it; the view and the list filter show it by
microversion; hostile bodies and filters are 400s naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error
from tests.api.test_server_actions import active_server


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


def act(api: Api, token: str, uuid: str, body: Any, version: str = "2.88") -> Any:
    return api.post(f"{COMPUTE}/servers/{uuid}/action", token=token, json=body, headers=mv(version))


def shown(api: Api, token: str, uuid: str, version: str = "2.88") -> dict[str, Any]:
    resp = api.get(f"{COMPUTE}/servers/{uuid}", token=token, headers=mv(version))
    assert resp.status_code == 200, resp.text
    server: dict[str, Any] = resp.json()["server"]
    return server


def history(api: Api, token: str, uuid: str) -> list[str]:
    found = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=token, headers=mv("2.88")
    ).json()["instanceActions"]
    return [a["action"] for a in reversed(found)]


def test_an_owner_lock_refuses_the_owner_and_lets_an_admin_act(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    reason = {"lock": {"locked_reason": "holiday freeze"}}
    assert act(api, tokens.demo, uuid, reason).status_code == 202
    server = shown(api, tokens.demo, uuid)
    assert (server["locked"], server["locked_reason"]) == (True, "holiday freeze")
    for body in ({"os-stop": None}, {"reboot": {"type": "HARD"}}, {"pause": None}):
        refused = compute_error(act(api, tokens.demo, uuid, body), 409, "conflictingRequest")
        assert refused == f"Instance {uuid} is locked", body
    gone = api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo)
    assert compute_error(gone, 409, "conflictingRequest") == f"Instance {uuid} is locked"
    assert shown(api, tokens.demo, uuid)["status"] == "ACTIVE"  # nothing was asked of the host
    assert agent.tasks() == []
    # an admin is not held by a lock
    assert act(api, tokens.admin, uuid, {"os-stop": None}).status_code == 202
    agent.run_all()
    assert shown(api, tokens.demo, uuid)["status"] == "SHUTOFF"
    assert act(api, tokens.demo, uuid, {"unlock": None}).status_code == 202
    server = shown(api, tokens.demo, uuid)
    assert (server["locked"], server["locked_reason"]) == (False, None)
    assert act(api, tokens.demo, uuid, {"os-start": None}).status_code == 202
    assert history(api, tokens.demo, uuid) == ["create", "lock", "stop", "unlock", "start"]


def test_an_admin_lock_is_lifted_only_by_an_admin(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.admin, uuid, {"lock": None}).status_code == 202
    # the owner locking again does not turn the admin's lock into its own
    assert act(api, tokens.demo, uuid, {"lock": None}).status_code == 202
    refused = act(api, tokens.demo, uuid, {"unlock": None})
    assert "unlock_override" in compute_error(refused, 403, "forbidden")
    assert shown(api, tokens.demo, uuid)["locked"] is True
    assert act(api, tokens.admin, uuid, {"unlock": None}).status_code == 202
    assert shown(api, tokens.demo, uuid)["locked"] is False


def test_an_owner_lock_may_be_lifted_by_an_admin(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"lock": None}).status_code == 202
    assert act(api, tokens.admin, uuid, {"unlock": None}).status_code == 202
    assert shown(api, tokens.demo, uuid)["locked"] is False


def test_another_projects_member_cannot_lock_what_it_cannot_see(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    for body in ({"lock": None}, {"unlock": None}):
        compute_error(act(api, tokens.alice, uuid, body), 404, "itemNotFound")
    assert shown(api, tokens.demo, uuid)["locked"] is False


def test_interfaces_cannot_be_changed_on_a_locked_server(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"lock": None}).status_code == 202
    attach = api.post(
        f"{COMPUTE}/servers/{uuid}/os-interface",
        token=tokens.demo,
        json={"interfaceAttachment": {"net_id": "00000000-0000-0000-0000-000000000000"}},
    )
    assert compute_error(attach, 409, "conflictingRequest") == f"Instance {uuid} is locked"
    detach = api.delete(f"{COMPUTE}/servers/{uuid}/os-interface/some-port", token=tokens.demo)
    assert compute_error(detach, 409, "conflictingRequest") == f"Instance {uuid} is locked"


def test_the_view_shows_the_lock_by_microversion(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"lock": {"locked_reason": "r"}}, "2.73").status_code == 202
    assert "locked" not in shown(api, tokens.demo, uuid, "2.8")
    older = shown(api, tokens.demo, uuid, "2.72")
    assert older["locked"] is True and "locked_reason" not in older
    assert shown(api, tokens.demo, uuid, "2.73")["locked_reason"] == "r"


def test_before_2_73_a_lock_takes_no_reason(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"lock": {"locked_reason": "r"}}, "2.72").status_code == 202
    server = shown(api, tokens.demo, uuid)
    assert (server["locked"], server["locked_reason"]) == (True, None)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"lock": {"locked_reason": ""}}, "lock.locked_reason"),
        ({"lock": {"locked_reason": "x" * 256}}, "lock.locked_reason"),
        ({"lock": {"locked_reason": 7}}, "lock.locked_reason"),
        ({"lock": {"locked_reason": ["a"]}}, "lock.locked_reason"),
        ({"lock": {"reason": "a"}}, "'reason' was unexpected"),
        ({"lock": "please"}, "field 'lock'"),
        ({"lock": [1]}, "field 'lock'"),
        ({"lock": {"locked_reason": "a\x00b"}}, "NUL"),
    ],
)
def test_hostile_lock_bodies_are_400_naming_the_field_and_lock_nothing(
    api: Api, tokens: Tokens, body: Any, says: str
) -> None:
    uuid, _ = active_server(api, tokens)
    assert says in compute_error(act(api, tokens.demo, uuid, body, "2.73"), 400, "badRequest")
    assert shown(api, tokens.demo, uuid)["locked"] is False
    assert history(api, tokens.demo, uuid) == ["create"]


def listed(api: Api, token: str, query: str, version: str = "2.73") -> Any:
    return api.get(f"{COMPUTE}/servers?{query}", token=token, headers=mv(version))


def test_servers_are_listed_by_lock_from_2_73(api: Api, tokens: Tokens) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"lock": None}).status_code == 202
    for word, expect in (("true", [uuid]), ("True", [uuid]), ("1", [uuid]), ("false", [])):
        resp = listed(api, tokens.demo, f"locked={word}")
        assert resp.status_code == 200, resp.text
        assert [s["id"] for s in resp.json()["servers"]] == expect, word
    # before 2.73 a member's filter is not one (Nova drops it)
    old = listed(api, tokens.demo, "locked=false", "2.72").json()["servers"]
    assert [s["id"] for s in old] == [uuid]


@pytest.mark.parametrize("value", ["maybe", "", "tru", "2", "yes please", "%E2%80%8Btrue"])
def test_a_hostile_locked_filter_is_400_naming_it(api: Api, tokens: Tokens, value: str) -> None:
    message = compute_error(listed(api, tokens.demo, f"locked={value}"), 400, "badRequest")
    assert "locked" in message


def test_locking_a_missing_or_deleted_server_is_404(api: Api, tokens: Tokens) -> None:
    uuid, agent = active_server(api, tokens)
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agent.run_all()
    for target in (uuid, "00000000-0000-0000-0000-000000000000"):
        compute_error(act(api, tokens.demo, target, {"lock": None}), 404, "itemNotFound")


def test_an_admin_locking_an_owners_lock_again_takes_it_over_and_keeps_the_reason(
    api: Api, tokens: Tokens
) -> None:
    uuid, _ = active_server(api, tokens)
    assert act(api, tokens.demo, uuid, {"lock": {"locked_reason": "mine"}}).status_code == 202
    assert act(api, tokens.admin, uuid, {"lock": None}).status_code == 202
    assert shown(api, tokens.demo, uuid)["locked_reason"] == "mine"
    compute_error(act(api, tokens.demo, uuid, {"unlock": None}), 403, "forbidden")
    assert history(api, tokens.demo, uuid) == ["create", "lock", "lock"]
