"""Server views as the detail list builds them for a page at once (one query
of plain columns, parts shared between the views of an answer): each entry
is what show answers for that server, at every microversion and for every
caller, whatever state the server and its host are in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from pcifleet.api.server_filters import MAX_KEPT, ServerList
from pcifleet.api.server_views import server_query
from pcifleet.store.models import Host, Instance, utcnow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, create_port, sriov_network
from tests.api.test_servers import boot, boot_env

MICROVERSIONS = ("2.1", "2.3", "2.16", "2.19", "2.26", "2.46", "2.47", "2.73", "2.88")


def at(mv: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {mv}"}


def detail(api: Api, token: str, mv: str, **params: Any) -> list[dict[str, Any]]:
    resp = api.get(f"{COMPUTE}/servers/detail", token=token, headers=at(mv), params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    servers: list[dict[str, Any]] = resp.json()["servers"]
    return servers


def shown(api: Api, token: str, mv: str, server_id: str) -> dict[str, Any]:
    resp = api.get(f"{COMPUTE}/servers/{server_id}", token=token, headers=at(mv))
    assert resp.status_code == 200, resp.text
    server: dict[str, Any] = resp.json()["server"]
    return server


def make_fleet(api: Api, tokens: Tokens) -> dict[str, Any]:
    """demo: two ACTIVE servers (one with metadata and a description), one in
    ERROR with a fault; alice: one ACTIVE server."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    net = [{"uuid": env["net"]["id"]}]
    ids = [
        boot(api, tokens.demo, env, net).json()["server"]["id"],
        boot(api, tokens.demo, env, net, metadata={"role": "db"}, description="primary").json()[
            "server"
        ]["id"],
        boot(api, tokens.alice, env, net).json()["server"]["id"],
    ]
    nowhere = sriov_network(api, tokens.admin, physnet="physnet9", vlan=9)
    port = create_port(api, tokens.demo, nowhere["id"], **{"binding:vnic_type": "direct"})
    ids.append(boot(api, tokens.demo, env, [{"port": port["id"]}]).json()["server"]["id"])
    agent.run_all()
    return {"ids": ids, "env": env}


@pytest.fixture
def fleet(api: Api, tokens: Tokens) -> dict[str, Any]:
    return make_fleet(api, tokens)


def test_every_entry_is_what_show_answers(api: Api, tokens: Tokens, fleet: dict[str, Any]) -> None:
    for mv in MICROVERSIONS:
        for token, params in ((tokens.admin, {"all_tenants": "1"}), (tokens.demo, {})):
            listed = detail(api, token, mv, **params)
            assert {s["id"] for s in listed} >= set(fleet["ids"][:2])
            for server in listed:
                assert server == shown(api, token, mv, server["id"]), (mv, server["id"])


def test_keys_follow_the_microversion_and_the_caller(
    api: Api, tokens: Tokens, fleet: dict[str, Any]
) -> None:
    old = {s["id"]: s for s in detail(api, tokens.admin, "2.1", all_tenants="1")}
    new = {s["id"]: s for s in detail(api, tokens.admin, "2.88", all_tenants="1")}
    member = {s["id"]: s for s in detail(api, tokens.demo, "2.88")}
    active, described, _alices, failed = fleet["ids"]
    assert set(old[active]["flavor"]) == {"id", "links"}
    assert "id" not in new[active]["flavor"] and new[active]["flavor"]["original_name"] == "m1"
    assert "host_status" not in old[active] and new[active]["host_status"] == "UP"
    assert "description" not in old[described] and new[described]["description"] == "primary"
    assert new[described]["metadata"] == {"role": "db"} and new[active]["metadata"] == {}
    assert new[active]["locked_reason"] is None and "locked_reason" not in old[active]
    assert new[failed]["status"] == "ERROR"
    assert "physnet9" in new[failed]["fault"]["message"] and "details" in new[failed]["fault"]
    assert "details" not in member[failed]["fault"]  # only admins see a fault's details
    assert not any(k.startswith("OS-EXT-SRV-ATTR") for k in member[active])
    assert "progress" in new[active] and "progress" not in new[failed]
    # one flavor: the views share its part, and each is written in full
    assert new[active]["flavor"] == new[described]["flavor"]


def test_host_status_follows_the_host(
    api: Api, tokens: Tokens, engine: Engine, fleet: dict[str, Any]
) -> None:
    active = fleet["ids"][0]

    def status() -> str:
        listed = detail(api, tokens.admin, "2.88", all_tenants="1")
        found = next(s for s in listed if s["id"] == active)
        assert found == shown(api, tokens.admin, "2.88", active)
        result: str = found["host_status"]
        return result

    with engine.begin() as conn:
        conn.execute(update(Host).where(Host.name == "compute1").values(state="disabled"))
    assert status() == "MAINTENANCE"
    with engine.begin() as conn:
        stale = utcnow() - timedelta(hours=1)
        conn.execute(
            update(Host)
            .where(Host.name == "compute1")
            .values(state="enabled", last_report_at=stale)
        )
    assert status() == "DOWN"
    with engine.begin() as conn:
        conn.execute(update(Instance).where(Instance.uuid == active).values(host="gone"))
    assert status() == "UNKNOWN"


def test_a_page_and_the_page_after_it_are_the_whole_list(
    api: Api, tokens: Tokens, fleet: dict[str, Any]
) -> None:
    whole = detail(api, tokens.admin, "2.88", all_tenants="1")
    first = detail(api, tokens.admin, "2.88", all_tenants="1", limit="2")
    rest = detail(api, tokens.admin, "2.88", all_tenants="1", marker=first[-1]["id"])
    assert first + rest == whole


def test_a_list_keeps_one_statement_per_combination_of_conditions() -> None:
    servers = ServerList(server_query())
    page = servers.statement(frozenset({"project_id", "not_deleted", "limit"}))
    assert servers.statement(frozenset({"limit", "not_deleted", "project_id"})) is page
    assert servers.statement(frozenset({"project_id", "not_deleted"})) is not page
    assert "LIMIT" in str(page) and "LIMIT" not in str(servers.statement(frozenset()))


def test_combinations_past_the_cap_are_built_and_not_kept() -> None:
    servers = ServerList(server_query())
    conditions = ["project_id", "deleted", "status", "host", "flavor", "image", "since", "before"]
    combos = [
        frozenset(c for i, c in enumerate(conditions) if n >> i & 1)
        for n in range(2 ** len(conditions))
    ]
    assert len(combos) == MAX_KEPT
    extra = frozenset({"limit", "status"})
    for combo in combos:
        servers.statement(combo)
    assert servers.statement(extra) is not servers.statement(extra)
    assert servers.statement(combos[5]) is servers.statement(combos[5])
