"""Subnet host routes and subnet updates as Neutron has them: routes stored,
shown and replaced; gateway, DNS name servers and DHCP changed by PUT under
Neutron's rules; hostile route lists refused whole, naming the field.

Each story takes ``(api, tokens)`` so test_postgres.py runs it again on
PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Tokens
from tests.api.helpers import NET, Api, create_network, create_port, create_subnet, neutron_error

ROUTE = {"destination": "10.20.0.0/32", "nexthop": "10.100.1.1"}


def shown(api: Api, token: str, subnet_id: str) -> dict[str, Any]:
    resp = api.get(f"{NET}/subnets/{subnet_id}", token=token)
    assert resp.status_code == 200, resp.text
    subnet: dict[str, Any] = resp.json()["subnet"]
    return subnet


def put(api: Api, token: str, subnet_id: str, **fields: Any) -> Any:
    return api.put(f"{NET}/subnets/{subnet_id}", token=token, json={"subnet": fields})


def test_routes_are_stored_shown_listed_and_replaced(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    routes = [
        {"destination": "192.168.0.0/16", "nexthop": "10.50.0.254"},
        ROUTE,  # a next hop outside the subnet, as Neutron (and Tempest's data) allow
    ]
    subnet = create_subnet(
        api, tokens.demo, net["id"], "10.50.0.0/24", host_routes=routes, dns_nameservers=["8.8.4.4"]
    )
    assert subnet["host_routes"] == routes and subnet["dns_nameservers"] == ["8.8.4.4"]
    assert shown(api, tokens.demo, subnet["id"])["host_routes"] == routes
    listed = api.get(f"{NET}/subnets?network_id={net['id']}", token=tokens.demo).json()
    assert listed["subnets"][0]["host_routes"] == routes
    fields = api.get(f"{NET}/subnets/{subnet['id']}?fields=host_routes", token=tokens.demo)
    assert fields.json() == {"subnet": {"host_routes": routes}}

    new = [{"destination": "10.20.0.0/32", "nexthop": "10.100.1.2"}]
    resp = put(api, tokens.demo, subnet["id"], host_routes=new)
    assert resp.status_code == 200, resp.text
    assert resp.json()["subnet"]["host_routes"] == new
    assert shown(api, tokens.demo, subnet["id"])["host_routes"] == new
    assert put(api, tokens.demo, subnet["id"], host_routes=[]).json()["subnet"]["host_routes"] == []
    put(api, tokens.demo, subnet["id"], host_routes=new)
    cleared = put(api, tokens.demo, subnet["id"], host_routes=None).json()["subnet"]
    assert cleared["host_routes"] == []
    # a PUT that names no routes keeps them
    put(api, tokens.demo, subnet["id"], host_routes=new)
    renamed = put(api, tokens.demo, subnet["id"], name="kept").json()["subnet"]
    assert renamed["host_routes"] == new and renamed["name"] == "kept"


def test_routes_are_written_as_neutron_writes_them(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    routes = [{"destination": "172.16.0.0/255.255.0.0", "nexthop": "10.51.0.9"}]
    subnet = create_subnet(api, tokens.demo, net["id"], "10.51.0.0/24", host_routes=routes)
    assert subnet["host_routes"] == [{"destination": "172.16.0.0/16", "nexthop": "10.51.0.9"}]
    no_routes = create_subnet(api, tokens.demo, net["id"], "10.52.0.0/24", host_routes=None)
    assert no_routes["host_routes"] == []


def test_tempests_gateway_dns_routes_and_dhcp_update(api: Api, tokens: Tokens) -> None:
    """Tempest's test_update_subnet_gw_dns_host_routes_dhcp, step by step."""
    net = create_network(api, tokens.demo)
    subnet = create_subnet(
        api,
        tokens.demo,
        net["id"],
        "10.200.0.0/24",
        gateway_ip="10.200.0.1",
        host_routes=[ROUTE],
        dns_nameservers=["8.8.4.4", "8.8.8.8"],
        allocation_pools=[{"start": "10.200.0.3", "end": "10.200.0.7"}],
        enable_dhcp=False,
    )
    new_routes = [{"destination": "10.20.0.0/32", "nexthop": "10.100.1.2"}]
    resp = put(
        api,
        tokens.demo,
        subnet["id"],
        name="New_subnet",
        host_routes=new_routes,
        dns_nameservers=["7.8.8.8", "7.8.4.4"],
        gateway_ip="10.200.0.2",
        enable_dhcp=True,
    )
    assert resp.status_code == 200, resp.text
    updated = resp.json()["subnet"]
    assert updated["gateway_ip"] == "10.200.0.2"
    assert updated["host_routes"] == new_routes
    assert updated["dns_nameservers"] == ["7.8.8.8", "7.8.4.4"]
    assert updated["enable_dhcp"] is True and updated["name"] == "New_subnet"
    assert updated["allocation_pools"] == [{"start": "10.200.0.3", "end": "10.200.0.7"}]
    assert shown(api, tokens.demo, subnet["id"]) == updated


def test_gateway_moves_under_neutrons_rules(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    subnet = create_subnet(api, tokens.demo, net["id"], "10.60.0.0/24")
    sid = subnet["id"]
    assert subnet["allocation_pools"] == [{"start": "10.60.0.2", "end": "10.60.0.254"}]
    # into the pool the subnet has: refused with Neutron's 409 and words
    into_pool = put(api, tokens.demo, sid, gateway_ip="10.60.0.9")
    assert neutron_error(into_pool, 409, "GatewayConflictWithAllocationPools") == (
        "Gateway ip 10.60.0.9 conflicts with allocation pool 10.60.0.2-10.60.0.254."
    )
    # with pools given in the same PUT that leave it out: accepted
    pools = [{"start": "10.60.0.10", "end": "10.60.0.20"}]
    moved = put(api, tokens.demo, sid, gateway_ip="10.60.0.9", allocation_pools=pools)
    assert moved.status_code == 200, moved.text
    assert moved.json()["subnet"]["gateway_ip"] == "10.60.0.9"
    assert moved.json()["subnet"]["allocation_pools"] == pools
    # new pools alone must still leave the gateway out
    over = put(api, tokens.demo, sid, allocation_pools=[{"start": "10.60.0.5", "end": "10.60.0.9"}])
    neutron_error(over, 409, "GatewayConflictWithAllocationPools")
    # a new port takes its address from the new pool
    port = create_port(api, tokens.demo, net["id"])
    assert port["fixed_ips"][0]["ip_address"] == "10.60.0.10"
    # onto an address a port holds (asked for outside the pools): refused, naming it
    fixed = [{"subnet_id": sid, "ip_address": "10.60.0.30"}]
    holder = create_port(api, tokens.demo, net["id"], fixed_ips=fixed)
    held = put(api, tokens.demo, sid, gateway_ip="10.60.0.30")
    assert f"10.60.0.30 is in use (port {holder['id']})" in neutron_error(
        held, 409, "IpAddressInUse"
    )
    # outside the subnet, the network address, not an address, "auto": 400 naming gateway_ip
    for bad in ("10.61.0.1", "10.60.0.0", "10.60.0.255", "nope", "auto", "fd00::1"):
        assert "gateway_ip" in neutron_error(put(api, tokens.demo, sid, gateway_ip=bad), 400)
    # null: no gateway any more
    gone = put(api, tokens.demo, sid, gateway_ip=None)
    assert gone.status_code == 200 and gone.json()["subnet"]["gateway_ip"] is None
    after = shown(api, tokens.demo, sid)
    assert after["gateway_ip"] is None and after["allocation_pools"] == pools


def test_dns_nameservers_are_checked_on_create_and_update(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    subnet = create_subnet(api, tokens.demo, net["id"], "10.70.0.0/24", dns_nameservers=["1.1.1.1"])
    sid = subnet["id"]
    for servers, names in (
        (["8.8.8.8", "not-an-ip"], "dns_nameservers[1]: 'not-an-ip' is not a valid nameserver"),
        (["8.8.8.8", "8.8.8.8"], "dns_nameservers[1]: Duplicate nameserver '8.8.8.8'"),
        (["2001:4860:4860::8888"], "dns_nameservers[0]: dns_nameserver"),
        (["8.8.8.8"] * 9, "subnet.dns_nameservers"),
    ):
        assert names in neutron_error(put(api, tokens.demo, sid, dns_nameservers=servers), 400)
        body = {"subnet": {"network_id": net["id"], "cidr": "10.71.0.0/24"}}
        body["subnet"]["dns_nameservers"] = servers
        assert names in neutron_error(api.post(f"{NET}/subnets", token=tokens.demo, json=body), 400)
    assert shown(api, tokens.demo, sid)["dns_nameservers"] == ["1.1.1.1"]


def test_only_the_owner_or_an_admin_changes_routes(api: Api, tokens: Tokens) -> None:
    shared = create_network(api, tokens.admin, shared=True)
    subnet = create_subnet(api, tokens.admin, shared["id"], "10.80.0.0/24", host_routes=[ROUTE])
    refused = put(api, tokens.demo, subnet["id"], host_routes=[])
    neutron_error(refused, 403)
    assert shown(api, tokens.demo, subnet["id"])["host_routes"] == [ROUTE]
    hidden = put(api, tokens.alice, create_subnet_of(api, tokens.demo), host_routes=[])
    neutron_error(hidden, 404, "SubnetNotFound")


def create_subnet_of(api: Api, token: str) -> str:
    net = create_network(api, token)
    return str(create_subnet(api, token, net["id"], "10.81.0.0/24")["id"])


TWENTY_ONE = [{"destination": f"10.{i}.0.0/16", "nexthop": "10.90.0.1"} for i in range(21)]
TEN_THOUSAND = [{"destination": "10.0.0.0/8", "nexthop": "10.90.0.1"}] * 10_000


@pytest.mark.parametrize(
    ("routes", "names"),
    [
        ("10.0.0.0/8", "'subnet.host_routes': Input should be a valid list"),
        ({"destination": "10.0.0.0/8", "nexthop": "10.90.0.1"}, "Input should be a valid list"),
        (["10.0.0.0/8"], "'subnet.host_routes[0]'"),
        ([ROUTE, [ROUTE]], "'subnet.host_routes[1]'"),
        ([{"destination": "10.0.0.0/8"}], "'subnet.host_routes[0].nexthop': Field required"),
        ([{**ROUTE, "gateway": "10.90.0.1"}], "'subnet.host_routes[0].gateway' was unexpected"),
        ([{"destination": 10, "nexthop": "10.90.0.1"}], "'subnet.host_routes[0].destination'"),
        ([{"destination": "x" * 65, "nexthop": "1.1.1.1"}], "'subnet.host_routes[0].destination'"),
        (
            [ROUTE, {"destination": "nope", "nexthop": "10.90.0.1"}],
            "host_routes[1].destination: 'nope' is not a valid CIDR",
        ),
        (
            [{"destination": "10.0.0.0/33", "nexthop": "10.90.0.1"}],
            "host_routes[0].destination: '10.0.0.0/33' is not a valid CIDR",
        ),
        (
            [{"destination": "10.1.2.3/16", "nexthop": "10.90.0.1"}],
            "host_routes[0].destination: '10.1.2.3/16' is not a recognized CIDR, "
            "'10.1.0.0/16' is recommended",
        ),
        (
            [{"destination": "10.1.2.3", "nexthop": "10.90.0.1"}],
            "host_routes[0].destination: '10.1.2.3' is not a recognized CIDR",
        ),
        (
            [{"destination": "127.0.0.0/8", "nexthop": "10.90.0.1"}],
            "host_routes[0].destination: '127.0.0.0/8' is not a routable CIDR",
        ),
        (
            [{"destination": "10.0.0.0/8", "nexthop": "10.90.0.300"}],
            "host_routes[0].nexthop: '10.90.0.300' is not a valid IP address",
        ),
        (
            [{"destination": "10.0.0.0/8", "nexthop": "10.90.0.0/24"}],
            "host_routes[0].nexthop: '10.90.0.0/24' is not a valid IP address",
        ),
        (
            [{"destination": "fd00::/64", "nexthop": "10.90.0.1"}],
            "host_routes[0].destination: destination 'fd00::/64' does not match the ip_version '4'",
        ),
        (
            [{"destination": "10.0.0.0/8", "nexthop": "fd00::1"}],
            "host_routes[0].nexthop: nexthop 'fd00::1' does not match the ip_version '4'",
        ),
        (
            [ROUTE, {"destination": "10.20.0.0/32", "nexthop": "10.100.1.1"}],
            "host_routes[1]: Duplicate hostroute '10.20.0.0/32 via 10.100.1.1'",
        ),
        (TWENTY_ONE, "The number of host routes exceeds the limit 20."),
        (TEN_THOUSAND, "'subnet.host_routes': List should have at most 1024 items"),
        ([{"destination": "10.0.0.0/8\x00", "nexthop": "10.90.0.1"}], "NUL"),
    ],
)
def test_hostile_host_routes_are_refused_and_change_nothing(
    api: Api, tokens: Tokens, routes: Any, names: str
) -> None:
    net = create_network(api, tokens.demo)
    subnet = create_subnet(api, tokens.demo, net["id"], "10.90.0.0/24", host_routes=[ROUTE])
    body = {"subnet": {"network_id": net["id"], "cidr": "10.91.0.0/24", "host_routes": routes}}
    created = api.post(f"{NET}/subnets", token=tokens.demo, json=body)
    assert names in neutron_error(created, 400)
    updated = put(api, tokens.demo, subnet["id"], host_routes=routes, name="changed")
    assert names in neutron_error(updated, 400)
    after = shown(api, tokens.demo, subnet["id"])
    assert after["host_routes"] == [ROUTE] and after["name"] == ""
    listed = api.get(f"{NET}/subnets?network_id={net['id']}", token=tokens.demo).json()
    assert [s["id"] for s in listed["subnets"]] == [subnet["id"]]
