"""Lists paged in the database: walking a list page by page with ``marker`` and
``limit`` gives every item once in the full list's order, whatever mix of SQL
and view filters; a marker the caller cannot see is "not found"; hostile
paging parameters are 400s naming them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import (
    COMPUTE,
    NET,
    Api,
    create_network,
    create_port,
    create_subnet,
    neutron_error,
)


def walk(api: Api, token: str, path: str, key: str, limit: int) -> list[dict[str, Any]]:
    """Every item of ``path``, fetched ``limit`` at a time by following the markers."""
    sep = "&" if "?" in path else "?"
    items: list[dict[str, Any]] = []
    marker = ""
    for _ in range(1000):
        page_path = f"{path}{sep}limit={limit}" + (f"&marker={marker}" if marker else "")
        resp = api.get(page_path, token=token)
        assert resp.status_code == 200, resp.text
        page = resp.json()[key]
        assert len(page) <= limit
        items.extend(page)
        if len(page) < limit:
            return items
        marker = str(page[-1]["id"])
    raise AssertionError("the pages never ended")


def test_ports_walked_page_by_page_match_the_full_list(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo, name="paged")
    create_subnet(api, tokens.demo, net["id"], "10.30.0.0/24")
    made = [create_port(api, tokens.demo, net["id"], name=f"p{i % 3}") for i in range(8)]
    full = api.get(f"{NET}/ports", token=tokens.demo).json()["ports"]
    assert [p["id"] for p in full] == [p["id"] for p in made]  # oldest first
    for limit in (1, 3, 8, 20):
        assert walk(api, tokens.demo, f"{NET}/ports", "ports", limit) == full
    # a SQL filter (name) and a view filter (admin_state_up) page the same way
    p1 = [p for p in full if p["name"] == "p1"]
    assert walk(api, tokens.demo, f"{NET}/ports?name=p1&admin_state_up=true", "ports", 1) == p1
    # a filter on the addresses is matched on the views, and still paged
    ip = made[5]["fixed_ips"][0]["ip_address"]
    by_ip = api.get(f"{NET}/ports?fixed_ips=ip_address={ip}&limit=1", token=tokens.demo).json()
    assert [p["id"] for p in by_ip["ports"]] == [made[5]["id"]]
    # the marker need not meet the filters: it only says where the page starts
    after = api.get(f"{NET}/ports?name=p2&marker={made[0]['id']}", token=tokens.demo).json()
    assert [p["id"] for p in after["ports"]] == [p["id"] for p in full if p["name"] == "p2"]
    fields = api.get(f"{NET}/ports?limit=2&fields=id", token=tokens.demo).json()["ports"]
    assert fields == [{"id": made[0]["id"]}, {"id": made[1]["id"]}]


def test_a_marker_from_another_project_is_not_found(api: Api, tokens: Tokens) -> None:
    theirs = create_network(api, tokens.alice, name="theirs")
    create_subnet(api, tokens.alice, theirs["id"], "10.31.0.0/24")
    hidden = create_port(api, tokens.alice, theirs["id"])
    mine = create_network(api, tokens.demo, name="mine")
    create_subnet(api, tokens.demo, mine["id"], "10.32.0.0/24")
    create_port(api, tokens.demo, mine["id"])
    resp = api.get(f"{NET}/ports?marker={hidden['id']}", token=tokens.demo)
    assert "not found" in neutron_error(resp, 400)
    seen = api.get(f"{NET}/ports?marker={hidden['id']}", token=tokens.admin)
    assert seen.status_code == 200  # the admin sees it, so it is a marker


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=abc",
        "limit=99999999999999",
        "limit=1e3",
        "limit=%EF%BC%91",  # a full-width digit one
        "marker=nope",
        "marker=%00",
        "marker=" + "x" * 5000,
        "marker=%27%20OR%201%3D1",
    ],
)
def test_hostile_paging_is_a_400(api: Api, tokens: Tokens, query: str) -> None:
    for path in (f"{NET}/ports", f"{NET}/networks", f"{NET}/subnets", f"{COMPUTE}/os-pci"):
        resp = api.get(f"{path}?{query}", token=tokens.admin)
        assert resp.status_code == 400, (path, query, resp.text)
        assert ("limit" in resp.text) or ("marker" in resp.text), resp.text


def test_networks_and_subnets_page_with_their_subnets(api: Api, tokens: Tokens) -> None:
    nets = [create_network(api, tokens.demo, name=f"n{i}") for i in range(5)]
    for i, n in enumerate(nets[:3]):
        create_subnet(api, tokens.demo, n["id"], f"10.40.{i}.0/24")
    full = api.get(f"{NET}/networks", token=tokens.demo).json()["networks"]
    assert [n["id"] for n in full] == [n["id"] for n in nets]
    assert [len(n["subnets"]) for n in full] == [1, 1, 1, 0, 0]
    assert walk(api, tokens.demo, f"{NET}/networks", "networks", 2) == full
    subnets = api.get(f"{NET}/subnets", token=tokens.demo).json()["subnets"]
    assert walk(api, tokens.demo, f"{NET}/subnets", "subnets", 2) == subnets
    v4 = walk(api, tokens.demo, f"{NET}/subnets?ip_version=4", "subnets", 1)
    assert [s["id"] for s in v4] == [s["id"] for s in subnets]


def test_os_pci_walked_by_id_markers(api: Api, tokens: Tokens) -> None:
    FakeAgent(api, tokens.admin, "compute1").report()
    FakeAgent(api, tokens.admin, "compute2").report()
    full = api.get(f"{COMPUTE}/os-pci", token=tokens.admin).json()["pci_devices"]
    assert len(full) > 20
    assert [(d["host"], d["address"]) for d in full] == sorted(
        (d["host"], d["address"]) for d in full
    )
    assert walk(api, tokens.admin, f"{COMPUTE}/os-pci", "pci_devices", 7) == full
    pfs = [d for d in full if d["dev_type"] == "type-PF"]
    paged = walk(api, tokens.admin, f"{COMPUTE}/os-pci/detail?dev_type=type-PF", "pci_devices", 1)
    assert [d["id"] for d in paged] == [d["id"] for d in pfs]
