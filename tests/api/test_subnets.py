"""Networking v2.0 subnets: IPv4 CIDRs, gateways, allocation pools."""

from __future__ import annotations

from tests.api.conftest import Tokens
from tests.api.helpers import NET, Api, create_network, create_subnet, neutron_error


def test_defaults_gateway_and_pools(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo, name="n")
    subnet = create_subnet(api, tokens.demo, net["id"], "192.168.10.0/24", name="s")
    assert subnet["gateway_ip"] == "192.168.10.1"
    assert subnet["allocation_pools"] == [{"start": "192.168.10.2", "end": "192.168.10.254"}]
    shown = api.get(f"{NET}/networks/{net['id']}", token=tokens.demo).json()["network"]
    assert shown["subnets"] == [subnet["id"]]
    listed = api.get(f"{NET}/subnets?network_id={net['id']}", token=tokens.demo).json()["subnets"]
    assert [s["id"] for s in listed] == [subnet["id"]]


def test_explicit_pools_and_no_gateway(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    pools = [{"start": "10.9.0.10", "end": "10.9.0.20"}]
    subnet = create_subnet(
        api, tokens.demo, net["id"], "10.9.0.0/24", gateway_ip=None, allocation_pools=pools
    )
    assert subnet["gateway_ip"] is None and subnet["allocation_pools"] == pools


def test_rejected_subnets(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    create_subnet(api, tokens.demo, net["id"], "10.0.0.0/24")

    def post(**fields: object) -> str:
        body = {"subnet": {"network_id": net["id"], "ip_version": 4, **fields}}
        return neutron_error(api.post(f"{NET}/subnets", token=tokens.demo, json=body), 400)

    assert "overlaps" in post(cidr="10.0.0.128/25")
    assert "cidr" in post(cidr="not-a-cidr")
    assert "host bits" in post(cidr="10.1.0.1/24")
    assert "IPv4" in post(cidr="fd00::/64", ip_version=6)
    assert "gateway_ip" in post(cidr="10.2.0.0/24", gateway_ip="10.3.0.1")
    assert "allocation_pools[0]" in post(
        cidr="10.4.0.0/24", allocation_pools=[{"start": "10.4.0.9", "end": "10.4.0.2"}]
    )
    in_pool = {
        "subnet": {
            "network_id": net["id"],
            "cidr": "10.5.0.0/24",
            "allocation_pools": [{"start": "10.5.0.1", "end": "10.5.0.9"}],
        }
    }
    # Neutron's GatewayConflictWithAllocationPools is a 409, and says so in these words
    assert neutron_error(
        api.post(f"{NET}/subnets", token=tokens.demo, json=in_pool),
        409,
        "GatewayConflictWithAllocationPools",
    ) == ("Gateway ip 10.5.0.1 conflicts with allocation pool 10.5.0.1-10.5.0.9.")
    assert "subnet.cidr" in post()
    assert "subnet.ip_version" in post(cidr="10.6.0.0/24", ip_version="four")
    assert "/31" in post(cidr="10.7.0.0/31")
    missing = api.post(
        f"{NET}/subnets",
        token=tokens.demo,
        json={"subnet": {"network_id": "nope", "cidr": "10.8.0.0/24"}},
    )
    neutron_error(missing, 404, "NetworkNotFound")


def test_member_cannot_add_subnets_to_admins_shared_network(api: Api, tokens: Tokens) -> None:
    shared = create_network(api, tokens.admin, shared=True)
    body = {"subnet": {"network_id": shared["id"], "cidr": "10.0.0.0/24"}}
    neutron_error(api.post(f"{NET}/subnets", token=tokens.demo, json=body), 403)


def test_subnet_in_use_cannot_be_deleted(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    subnet = create_subnet(api, tokens.demo, net["id"], "10.0.0.0/29")
    port = api.post(
        f"{NET}/ports", token=tokens.demo, json={"port": {"network_id": net["id"]}}
    ).json()["port"]
    neutron_error(
        api.delete(f"{NET}/subnets/{subnet['id']}", token=tokens.demo), 409, "SubnetInUse"
    )
    assert api.delete(f"{NET}/ports/{port['id']}", token=tokens.demo).status_code == 204
    assert api.delete(f"{NET}/subnets/{subnet['id']}", token=tokens.demo).status_code == 204
