"""Networking v2.0 networks: provider attributes (admin only), visibility,
filters, deletion rules and hostile input."""

from __future__ import annotations

import httpx

from tests.api.conftest import Tokens
from tests.api.helpers import NET, Api, create_network, create_port, neutron_error

VLAN = {
    "provider:network_type": "vlan",
    "provider:physical_network": "physnet1",
    "provider:segmentation_id": 100,
}


def test_admin_creates_vlan_network_member_sees_it_without_provider_attrs(
    api: Api, tokens: Tokens
) -> None:
    net = create_network(api, tokens.admin, name="sriov", shared=True, **VLAN)
    assert net["provider:segmentation_id"] == 100 and net["status"] == "ACTIVE"
    seen = api.get(f"{NET}/networks/{net['id']}", token=tokens.demo).json()["network"]
    assert seen["name"] == "sriov" and "provider:physical_network" not in seen
    names = [n["name"] for n in api.get(f"{NET}/networks", token=tokens.demo).json()["networks"]]
    assert names == ["sriov"]


def test_member_may_not_set_provider_attributes_or_share(api: Api, tokens: Tokens) -> None:
    resp = api.post(f"{NET}/networks", token=tokens.demo, json={"network": {"name": "x", **VLAN}})
    assert "disallowed by policy" in neutron_error(resp, 403, "PolicyNotAuthorized")
    resp = api.post(f"{NET}/networks", token=tokens.demo, json={"network": {"shared": True}})
    neutron_error(resp, 403)
    mine = create_network(api, tokens.demo, name="private")
    assert mine["shared"] is False
    assert api.get(f"{NET}/networks/{mine['id']}", token=tokens.alice).status_code == 404


def test_provider_rules(api: Api, tokens: Tokens) -> None:
    def post(**net: object) -> httpx.Response:
        return api.post(f"{NET}/networks", token=tokens.admin, json={"network": net})

    no_vlan = post(**{"provider:network_type": "vlan", "provider:physical_network": "physnet1"})
    assert "provider:segmentation_id" in neutron_error(no_vlan, 400)
    for bad in (0, 4095, "x"):
        resp = post(**{**VLAN, "provider:segmentation_id": bad})
        assert "provider:segmentation_id" in neutron_error(resp, 400)
    vxlan = post(**{**VLAN, "provider:network_type": "vxlan"})
    assert "provider:network_type" in neutron_error(vxlan, 400)
    flat_seg = post(**{**VLAN, "provider:network_type": "flat"})
    assert "flat" in neutron_error(flat_seg, 400)
    no_physnet = post(**{"provider:network_type": "flat"})
    assert "provider:physical_network" in neutron_error(no_physnet, 400)
    create_network(api, tokens.admin, **VLAN)
    neutron_error(post(**VLAN), 409, "VlanIdInUse")
    create_network(
        api,
        tokens.admin,
        **{"provider:network_type": "flat", "provider:physical_network": "physnet2"},
    )
    again = post(**{"provider:network_type": "flat", "provider:physical_network": "physnet2"})
    neutron_error(again, 409, "FlatNetworkInUse")


def test_filters_fields_update_and_delete(api: Api, tokens: Tokens) -> None:
    a = create_network(api, tokens.demo, name="a")
    create_network(api, tokens.demo, name="b")
    listed = api.get(f"{NET}/networks?name=a&fields=id&fields=name", token=tokens.demo).json()
    assert listed == {"networks": [{"id": a["id"], "name": "a"}]}
    both = api.get(f"{NET}/networks?name=a&name=b", token=tokens.demo).json()["networks"]
    assert {n["name"] for n in both} == {"a", "b"}
    # the marker and the filters see whole networks, before fields trims them
    page = api.get(
        f"{NET}/networks?fields=name&marker={a['id']}&limit=1&name=a&name=b", token=tokens.demo
    ).json()
    assert page == {"networks": [{"name": "b"}]}
    renamed = api.put(
        f"{NET}/networks/{a['id']}", token=tokens.demo, json={"network": {"name": "c"}}
    )
    assert renamed.json()["network"]["name"] == "c"
    bad = api.put(f"{NET}/networks/{a['id']}", token=tokens.demo, json={"network": VLAN})
    neutron_error(bad, 400)
    create_port(api, tokens.demo, a["id"])
    neutron_error(api.delete(f"{NET}/networks/{a['id']}", token=tokens.demo), 409, "NetworkInUse")
    gone = api.get(f"{NET}/networks?name=b", token=tokens.demo).json()["networks"][0]
    assert api.delete(f"{NET}/networks/{gone['id']}", token=tokens.demo).status_code == 204
    neutron_error(
        api.get(f"{NET}/networks/{gone['id']}", token=tokens.demo), 404, "NetworkNotFound"
    )


def test_hostile_bodies_are_400_naming_the_field(api: Api, tokens: Tokens) -> None:
    cases = [
        (b"{", "Malformed request body"),
        (b'{"network": {"name": 5}}', "network.name"),
        (b'{"network": {"name": "' + b"n" * 300 + b'"}}', "network.name"),
        (b'{"network": {"colour": "red"}}', "network.colour"),
        (b'{"network": {"mtu": 99999999999999999999999}}', "network.mtu"),
        (b'{"network": {"admin_state_up": "maybe"}}', "network.admin_state_up"),
        (b'{"network": []}', "network"),
        (b'"network"', "request body"),
        (b"\xff\xfe", "Malformed request body"),
    ]
    for raw, field in cases:
        resp = api.post(
            f"{NET}/networks",
            token=tokens.demo,
            content=raw,
            headers={"Content-Type": "application/json"},
        )
        assert field in neutron_error(resp, 400), (raw, resp.text)


def test_extensions_and_discovery(api: Api, tokens: Tokens) -> None:
    versions = api.get("/networking").json()["versions"]
    assert versions[0]["id"] == "v2.0"
    aliases = {
        e["alias"] for e in api.get(f"{NET}/extensions", token=tokens.demo).json()["extensions"]
    }
    assert {"binding", "provider"} <= aliases
    neutron_error(api.get(f"{NET}/extensions/nope", token=tokens.demo), 404)
