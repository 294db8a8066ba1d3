"""Neutron's bulk create: ``{"networks": [...]}``, ``{"subnets": [...]}``,
``{"ports": [...]}`` make every item or none, with the single create's checks
and policy, and a refusal names the item's index and field.

Each story takes ``(api, tokens)`` so test_postgres.py runs it again on
PostgreSQL, where a port's addresses are taken under row locks and savepoints.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Tokens
from tests.api.helpers import NET, Api, create_network, create_port, create_subnet, neutron_error


def bulk(api: Api, token: str, collection: str, items: Any) -> Any:
    return api.post(f"{NET}/{collection}", token=token, json={collection: items})


def ids(api: Api, token: str, collection: str) -> set[str]:
    return {r["id"] for r in api.get(f"{NET}/{collection}", token=token).json()[collection]}


def test_bulk_networks_come_back_in_order_and_are_listed(api: Api, tokens: Tokens) -> None:
    resp = bulk(
        api,
        tokens.demo,
        "networks",
        [{"name": "bulk-a"}, {"network": {"name": "bulk-b", "admin_state_up": False}}],
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()["networks"]
    assert [n["name"] for n in made] == ["bulk-a", "bulk-b"]
    assert [n["admin_state_up"] for n in made] == [True, False]
    assert {n["project_id"] for n in made} == {made[0]["tenant_id"]}
    assert {n["id"] for n in made} <= ids(api, tokens.demo, "networks")


def test_one_bad_network_makes_none(api: Api, tokens: Tokens) -> None:
    before = ids(api, tokens.admin, "networks")
    bad_field = bulk(api, tokens.demo, "networks", [{"name": "ok"}, {"name": "ok2"}, {"mtu": 5}])
    assert "networks[2].mtu" in neutron_error(bad_field, 400)
    # a check past the shape: the second item's VLAN is the first item's
    vlan = {
        "provider:network_type": "vlan",
        "provider:physical_network": "physnet1",
        "provider:segmentation_id": 3001,
    }
    clash = bulk(api, tokens.admin, "networks", [{"name": "v1", **vlan}, {"name": "v2", **vlan}])
    assert neutron_error(clash, 409, "VlanIdInUse").startswith("networks[1]: ")
    # policy, item by item as for a single network: a member may not share one
    shared = bulk(api, tokens.demo, "networks", [{"name": "mine"}, {"shared": True}])
    assert neutron_error(shared, 403).startswith("networks[1]: ")
    assert ids(api, tokens.admin, "networks") == before


def test_bulk_subnets_and_their_atomicity(api: Api, tokens: Tokens) -> None:
    net_a = create_network(api, tokens.demo, name="a")
    net_b = create_network(api, tokens.demo, name="b")
    resp = bulk(
        api,
        tokens.demo,
        "subnets",
        [
            {"network_id": net_a["id"], "cidr": "10.31.0.0/24", "ip_version": 4, "name": "sa"},
            {"network_id": net_b["id"], "cidr": "10.32.0.0/24", "ip_version": 4},
        ],
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()["subnets"]
    assert [(s["network_id"], s["cidr"], s["name"]) for s in made] == [
        (net_a["id"], "10.31.0.0/24", "sa"),
        (net_b["id"], "10.32.0.0/24", ""),
    ]
    before = ids(api, tokens.demo, "subnets")
    # the second overlaps the first of the same request: checked as two requests would be
    overlap = bulk(
        api,
        tokens.demo,
        "subnets",
        [
            {"network_id": net_a["id"], "cidr": "10.33.0.0/24"},
            {"network_id": net_a["id"], "cidr": "10.33.0.128/25"},
        ],
    )
    message = neutron_error(overlap, 400)
    assert message.startswith("subnets[1]: ") and "overlaps with another subnet" in message
    routes = bulk(
        api,
        tokens.demo,
        "subnets",
        [
            {"network_id": net_b["id"], "cidr": "10.34.0.0/24"},
            {
                "network_id": net_b["id"],
                "cidr": "10.35.0.0/24",
                "host_routes": [{"destination": "10.9.0.0/16", "nexthop": "fd00::1"}],
            },
        ],
    )
    assert "subnets[1]: Invalid input for host_routes[0].nexthop" in neutron_error(routes, 400)
    missing = bulk(api, tokens.demo, "subnets", [{"network_id": net_a["id"]}])
    assert "subnets[0].cidr" in neutron_error(missing, 400)
    assert ids(api, tokens.demo, "subnets") == before


def test_bulk_ports_get_addresses_in_order(api: Api, tokens: Tokens) -> None:
    net_a = create_network(api, tokens.demo)
    create_subnet(api, tokens.demo, net_a["id"], "10.41.0.0/24")
    net_b = create_network(api, tokens.demo)
    resp = bulk(
        api,
        tokens.demo,
        "ports",
        [
            {"network_id": net_a["id"], "name": "p1"},
            {"network_id": net_b["id"], "admin_state_up": False},
            {"network_id": net_a["id"]},
        ],
    )
    assert resp.status_code == 201, resp.text
    made = resp.json()["ports"]
    assert [p["network_id"] for p in made] == [net_a["id"], net_b["id"], net_a["id"]]
    assert [p["admin_state_up"] for p in made] == [True, False, True]
    assert [[ip["ip_address"] for ip in p["fixed_ips"]] for p in made] == [
        ["10.41.0.2"],
        [],
        ["10.41.0.3"],
    ]
    assert len({p["mac_address"] for p in made}) == 3
    assert {p["id"] for p in made} <= ids(api, tokens.demo, "ports")


def test_a_port_bulk_that_runs_out_of_addresses_makes_nothing(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    # a /29 with a pool of three addresses
    pools = [{"start": "10.42.0.2", "end": "10.42.0.4"}]
    create_subnet(api, tokens.demo, net["id"], "10.42.0.0/29", allocation_pools=pools)
    before = ids(api, tokens.demo, "ports")
    four = bulk(api, tokens.demo, "ports", [{"network_id": net["id"]}] * 4)
    message = neutron_error(four, 409, "IpAddressGenerationFailure")
    assert message.startswith("ports[3]: No more IP addresses available")
    assert ids(api, tokens.demo, "ports") == before
    # none of the three addresses the failed request had taken stayed taken
    three = bulk(api, tokens.demo, "ports", [{"network_id": net["id"]}] * 3)
    assert three.status_code == 201, three.text
    got = [p["fixed_ips"][0]["ip_address"] for p in three.json()["ports"]]
    assert got == ["10.42.0.2", "10.42.0.3", "10.42.0.4"]


def test_port_bulk_conflicts_inside_one_request_make_nothing(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    subnet = create_subnet(api, tokens.demo, net["id"], "10.43.0.0/24")
    before = ids(api, tokens.demo, "ports")
    mac = "fa:16:3e:43:00:01"
    same_mac = bulk(
        api,
        tokens.demo,
        "ports",
        [{"network_id": net["id"], "mac_address": mac}] * 2,
    )
    assert neutron_error(same_mac, 409, "MacAddressInUse").startswith("ports[1]: ")
    fixed = [{"subnet_id": subnet["id"], "ip_address": "10.43.0.9"}]
    same_ip = bulk(
        api,
        tokens.demo,
        "ports",
        [{"network_id": net["id"]}, {"network_id": net["id"], "fixed_ips": fixed}] * 2,
    )
    assert neutron_error(same_ip, 409, "IpAddressAlreadyAllocated").startswith("ports[3]: ")
    # another project's network is not there for this caller, in a bulk as alone
    theirs = create_network(api, tokens.alice)
    hidden = bulk(
        api, tokens.demo, "ports", [{"network_id": net["id"]}, {"network_id": theirs["id"]}]
    )
    assert neutron_error(hidden, 404, "NetworkNotFound").startswith("ports[1]: ")
    # binding:profile is admin-only in a bulk as alone
    profile = bulk(
        api,
        tokens.demo,
        "ports",
        [{"network_id": net["id"], "binding:profile": {"pci_slot": "0000:3b:02.0"}}],
    )
    assert neutron_error(profile, 403).startswith("ports[0]: ")
    assert ids(api, tokens.demo, "ports") == before
    # and the addresses the failed requests named are free
    port = create_port(api, tokens.demo, net["id"], fixed_ips=fixed, mac_address=mac)
    assert port["fixed_ips"] == fixed


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"networks": {"name": "x"}}, "'networks': Input should be a valid list"),
        ({"networks": "x"}, "'networks': Input should be a valid list"),
        ({"networks": None}, "give either 'network'"),
        ({"networks": []}, "'networks': List should have at least 1 item"),
        ({"networks": [1]}, "'networks[0]'"),
        ({"networks": [{"name": "a"}, [{"name": "b"}]]}, "'networks[1]'"),
        ({"networks": [{"name": "a"}, {"nmae": "b"}]}, "'networks[1].nmae' was unexpected"),
        ({"networks": [{"network": {"name": 7}}]}, "'networks[0].name'"),
        ({"networks": [{}] * 10_000}, "'networks': List should have at most 1000 items"),
        ({"network": {"name": "a"}, "networks": [{"name": "b"}]}, "not both or neither"),
        ({}, "give either 'network'"),
        ({"networks": [{"name": "a\x00"}]}, "NUL"),
    ],
)
def test_hostile_bulk_bodies_are_refused_whole(
    api: Api, tokens: Tokens, body: dict[str, Any], names: str
) -> None:
    before = ids(api, tokens.demo, "networks")
    resp = api.post(f"{NET}/networks", token=tokens.demo, json=body)
    assert names in neutron_error(resp, 400)
    assert ids(api, tokens.demo, "networks") == before


def test_a_list_body_and_big_port_and_subnet_lists_are_refused(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    before = ids(api, tokens.demo, "ports")
    top_list = api.post(f"{NET}/ports", token=tokens.demo, json=[{"network_id": net["id"]}])
    assert "valid dictionary" in neutron_error(top_list, 400)
    many_ports = bulk(api, tokens.demo, "ports", [{"network_id": net["id"]}] * 10_000)
    assert "'ports': List should have at most 1000 items" in neutron_error(many_ports, 400)
    many_subnets = bulk(
        api, tokens.demo, "subnets", [{"network_id": net["id"], "cidr": "10.0.0.0/24"}] * 10_000
    )
    assert "'subnets': List should have at most 1000" in neutron_error(many_subnets, 400)
    assert ids(api, tokens.demo, "ports") == before
