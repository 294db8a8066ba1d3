"""Networking v2.0 ports: vnic types, binding attributes (profile and host are
admin-only), MACs, fixed IPs, visibility and the conflicts of each."""

from __future__ import annotations

import re

from tests.api.conftest import Tokens
from tests.api.helpers import (
    NET,
    Api,
    create_network,
    create_port,
    create_subnet,
    neutron_error,
    sriov_network,
)


def test_direct_port_on_a_vlan_network(api: Api, tokens: Tokens) -> None:
    net = sriov_network(api, tokens.admin)
    port = create_port(api, tokens.demo, net["id"], name="sriov", **{"binding:vnic_type": "direct"})
    assert port["binding:vnic_type"] == "direct"
    as_admin = api.get(f"{NET}/ports/{port['id']}", token=tokens.admin).json()["port"]
    assert as_admin["binding:vif_type"] == "unbound" and as_admin["binding:profile"] == {}
    assert port["status"] == "DOWN" and port["device_id"] == ""
    assert re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", port["mac_address"])
    assert port["fixed_ips"][0]["ip_address"] == "10.100.0.2"
    second = create_port(api, tokens.demo, net["id"])
    assert second["fixed_ips"][0]["ip_address"] == "10.100.0.3"
    assert second["mac_address"] != port["mac_address"]


def test_member_may_not_set_binding_profile_or_host(api: Api, tokens: Tokens) -> None:
    net = sriov_network(api, tokens.admin)
    profile = {
        "pci_slot": "0000:3b:02.0",
        "pci_vendor_info": "8086:154c",
        "physical_network": "physnet1",
    }
    resp = api.post(
        f"{NET}/ports",
        token=tokens.demo,
        json={"port": {"network_id": net["id"], "binding:profile": profile}},
    )
    assert "binding:profile" in neutron_error(resp, 403, "PolicyNotAuthorized")
    resp = api.post(
        f"{NET}/ports",
        token=tokens.demo,
        json={"port": {"network_id": net["id"], "binding:host_id": "h"}},
    )
    neutron_error(resp, 403)
    port = create_port(api, tokens.demo, net["id"])
    update = api.put(
        f"{NET}/ports/{port['id']}", token=tokens.demo, json={"port": {"binding:profile": profile}}
    )
    neutron_error(update, 403)
    by_admin = api.put(
        f"{NET}/ports/{port['id']}", token=tokens.admin, json={"port": {"binding:profile": profile}}
    )
    assert by_admin.json()["port"]["binding:profile"] == profile
    made = create_port(
        api, tokens.admin, net["id"], **{"binding:profile": profile, "binding:host_id": "h1"}
    )
    assert made["binding:host_id"] == "h1"


def test_rejected_ports(api: Api, tokens: Tokens) -> None:
    vlan = sriov_network(api, tokens.admin)
    plain = create_network(api, tokens.demo, name="plain")

    def post(**fields: object) -> object:
        return api.post(f"{NET}/ports", token=tokens.demo, json={"port": fields})

    assert "binding:vnic_type" in neutron_error(
        post(network_id=vlan["id"], **{"binding:vnic_type": "baremetal"}), 400
    )
    no_physnet = post(network_id=plain["id"], **{"binding:vnic_type": "direct"})
    assert "physical_network" in neutron_error(no_physnet, 400)
    assert "mac_address" in neutron_error(
        post(network_id=vlan["id"], mac_address="01:00:5e:00:00:01"), 400
    )
    assert "mac_address" in neutron_error(post(network_id=vlan["id"], mac_address="zz"), 400)
    assert "binding:vif_type" in neutron_error(
        post(network_id=vlan["id"], **{"binding:vif_type": "hw_veb"}), 400
    )
    huge = {"k": "v" * 5000}
    assert "binding:profile" in neutron_error(
        api.post(
            f"{NET}/ports",
            token=tokens.admin,
            json={"port": {"network_id": vlan["id"], "binding:profile": huge}},
        ),
        400,
    )
    neutron_error(post(network_id="missing"), 404, "NetworkNotFound")
    neutron_error(post(network_id=plain["id"], fixed_ips=[{"ip_address": "10.0.0.5"}]), 400)


def test_fixed_ips_and_macs_conflict(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    subnet = create_subnet(api, tokens.demo, net["id"], "10.0.0.0/24")
    fixed = [{"subnet_id": subnet["id"], "ip_address": "10.0.0.50"}]
    port = create_port(
        api, tokens.demo, net["id"], fixed_ips=fixed, mac_address="FA:16:3E:00:00:01"
    )
    assert port["fixed_ips"] == fixed and port["mac_address"] == "fa:16:3e:00:00:01"
    again = api.post(
        f"{NET}/ports",
        token=tokens.demo,
        json={"port": {"network_id": net["id"], "fixed_ips": fixed}},
    )
    neutron_error(again, 409, "IpAddressAlreadyAllocated")
    mac = api.post(
        f"{NET}/ports",
        token=tokens.demo,
        json={"port": {"network_id": net["id"], "mac_address": "fa:16:3e:00:00:01"}},
    )
    neutron_error(mac, 409, "MacAddressInUse")
    gateway = [{"subnet_id": subnet["id"], "ip_address": "10.0.0.1"}]
    neutron_error(
        api.post(
            f"{NET}/ports",
            token=tokens.demo,
            json={"port": {"network_id": net["id"], "fixed_ips": gateway}},
        ),
        409,
    )


def test_small_subnet_runs_out_of_addresses(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo)
    create_subnet(api, tokens.demo, net["id"], "10.0.0.0/30")  # one host besides the gateway
    create_port(api, tokens.demo, net["id"])
    full = api.post(f"{NET}/ports", token=tokens.demo, json={"port": {"network_id": net["id"]}})
    neutron_error(full, 409, "IpAddressGenerationFailure")


def test_visibility_filters_and_updates(api: Api, tokens: Tokens) -> None:
    net = sriov_network(api, tokens.admin)
    mine = create_port(api, tokens.demo, net["id"], name="mine", device_id="dev-1")
    theirs = create_port(api, tokens.alice, net["id"], name="theirs")
    listed = api.get(f"{NET}/ports", token=tokens.demo).json()["ports"]
    assert [p["name"] for p in listed] == ["mine"]
    neutron_error(api.get(f"{NET}/ports/{theirs['id']}", token=tokens.demo), 404, "PortNotFound")
    neutron_error(api.delete(f"{NET}/ports/{theirs['id']}", token=tokens.demo), 404)
    every = api.get(f"{NET}/ports?network_id={net['id']}", token=tokens.admin).json()["ports"]
    assert {p["name"] for p in every} == {"mine", "theirs"}
    by_device = api.get(f"{NET}/ports?device_id=dev-1&fields=id", token=tokens.admin).json()[
        "ports"
    ]
    assert by_device == [{"id": mine["id"]}]
    spare = create_port(api, tokens.demo, net["id"], name="spare")
    changed = api.put(
        f"{NET}/ports/{spare['id']}",
        token=tokens.demo,
        json={"port": {"binding:vnic_type": "macvtap", "name": "m"}},
    ).json()["port"]
    assert changed["binding:vnic_type"] == "macvtap" and changed["name"] == "m"
    bound = api.put(
        f"{NET}/ports/{spare['id']}", token=tokens.admin, json={"port": {"binding:host_id": "h1"}}
    )
    assert bound.status_code == 200
    locked = api.put(
        f"{NET}/ports/{spare['id']}",
        token=tokens.demo,
        json={"port": {"binding:vnic_type": "direct"}},
    )
    neutron_error(locked, 409, "PortBound")


def test_update_fixed_ips_replaces_the_list_as_neutron(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo, name="two-subnets")
    one = create_subnet(api, tokens.demo, net["id"], "10.31.0.0/24")
    two = create_subnet(api, tokens.demo, net["id"], "10.32.0.0/24")
    both = [{"subnet_id": one["id"]}, {"subnet_id": two["id"]}]
    port = create_port(api, tokens.demo, net["id"], fixed_ips=both)
    held = {a["subnet_id"]: a["ip_address"] for a in port["fixed_ips"]}
    url = f"{NET}/ports/{port['id']}"

    def update(fixed_ips: object) -> list[dict[str, str]]:
        resp = api.put(url, token=tokens.demo, json={"port": {"fixed_ips": fixed_ips}})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["port"]["fixed_ips"])

    # a subnet named alone keeps the address the port has there; the other goes
    assert update([{"subnet_id": one["id"]}]) == [
        {"subnet_id": one["id"], "ip_address": held[one["id"]]}
    ]
    again = update(both)
    assert len(again) == 2 and {"subnet_id": one["id"], "ip_address": held[one["id"]]} in again
    assert update([{"ip_address": "10.32.0.77"}]) == [
        {"subnet_id": two["id"], "ip_address": "10.32.0.77"}
    ]
    # the freed address is free again: another port may take it
    other = create_port(api, tokens.demo, net["id"], fixed_ips=[{"ip_address": held[one["id"]]}])
    assert other["fixed_ips"][0]["ip_address"] == held[one["id"]]
    taken = api.put(
        url, token=tokens.demo, json={"port": {"fixed_ips": [{"ip_address": held[one["id"]]}]}}
    )
    neutron_error(taken, 409)
    assert update([]) == []


def test_hostile_fixed_ips_updates_are_400_naming_the_field(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo, name="n")
    create_subnet(api, tokens.demo, net["id"], "10.33.0.0/24")
    elsewhere = create_network(api, tokens.demo, name="elsewhere")
    foreign = create_subnet(api, tokens.demo, elsewhere["id"], "10.34.0.0/24")
    port = create_port(api, tokens.demo, net["id"])
    url = f"{NET}/ports/{port['id']}"
    for fixed_ips in (
        [{}],
        [{"subnet_id": foreign["id"]}],
        [{"ip_address": "192.0.2.1"}],
        [{"ip_address": "not-an-ip"}],
        [{"subnet_id": ["x"]}],
        [{"ip_address": "x" * 100}],
        [{"subnet_id": "s", "extra": 1}],
        [{"subnet_id": "s"}] * 9,
        "10.33.0.5",
        {"ip_address": "10.33.0.5"},
    ):
        resp = api.put(url, token=tokens.demo, json={"port": {"fixed_ips": fixed_ips}})
        message = neutron_error(resp, 400)
        assert "fixed_ips" in message, (fixed_ips, message)
    shown = api.get(url, token=tokens.demo).json()["port"]
    assert shown["fixed_ips"] == port["fixed_ips"]
