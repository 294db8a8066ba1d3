"""Regressions Tempest found (issue 12), one story per finding: what Nova, Neutron
and Keystone answer, so the openstack CLI and strict clients get the same."""

from __future__ import annotations

from pcifleet.api.routes.migrations import instance_type_id
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import Api, create_network, create_port, create_subnet
from tests.api.test_servers import MV, boot, boot_env

COMPUTE = "/compute/v2.1"
NET = "/networking/v2.0"


def test_flavor_id_may_be_a_number(api: Api, tokens: Tokens) -> None:
    body = {"flavor": {"name": "num", "id": 123456, "ram": 64, "vcpus": 1, "disk": 0}}
    resp = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["flavor"]["id"] == "123456"
    bad = {"flavor": {"name": "f", "id": [1], "ram": 64, "vcpus": 1, "disk": 0}}
    resp = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json=bad)
    assert resp.status_code == 400 and "flavor.id" in resp.text


def test_boot_refuses_low_ram_and_unknown_security_group(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    image = env["image"]
    patch = [{"op": "replace", "path": "/min_ram", "value": 4096}]
    headers = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    resp = api.patch(f"/image/v2/images/{image}", token=tokens.admin, json=patch, headers=headers)
    assert resp.status_code == 200, resp.text
    resp = boot(api, tokens.demo, env, "none")
    assert resp.status_code == 400 and "memory is too small" in resp.text
    api.patch(
        f"/image/v2/images/{image}",
        token=tokens.admin,
        json=[{"op": "replace", "path": "/min_ram", "value": 0}],
        headers=headers,
    )
    resp = boot(api, tokens.demo, env, "none", security_groups=[{"name": "no-such"}])
    assert resp.status_code == 400 and "no-such" in resp.text


def test_access_ips_are_stored_shown_and_updated(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    resp = boot(api, tokens.demo, env, "none", accessIPv4="192.0.2.7", accessIPv6="2001:db8::7")
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    shown = api.get(f"{COMPUTE}/servers/{server_id}", token=tokens.demo, headers=MV).json()
    assert shown["server"]["accessIPv4"] == "192.0.2.7"
    assert shown["server"]["accessIPv6"] == "2001:db8::7"
    updated = api.put(
        f"{COMPUTE}/servers/{server_id}",
        token=tokens.demo,
        headers=MV,
        json={"server": {"accessIPv4": "192.0.2.8"}},
    )
    assert updated.json()["server"]["accessIPv4"] == "192.0.2.8"
    bad = boot(api, tokens.demo, env, "none", accessIPv4="not-an-ip")
    assert bad.status_code == 400 and "accessIPv4" in bad.text


def test_hypervisors_in_novas_shape_with_statistics_and_uptime(api: Api, tokens: Tokens) -> None:
    FakeAgent(api, tokens.admin, "compute1").report()
    old = {"X-OpenStack-Nova-API-Version": "2.28"}
    detail = api.get(f"{COMPUTE}/os-hypervisors/detail", token=tokens.admin, headers=old).json()
    (hv,) = detail["hypervisors"]
    assert "pci_stats" not in hv and "generation" not in hv
    stats = api.get(f"{COMPUTE}/os-hypervisors/statistics", token=tokens.admin, headers=old)
    assert stats.status_code == 200 and stats.json()["hypervisor_statistics"]["count"] == 1
    up = api.get(f"{COMPUTE}/os-hypervisors/{hv['id']}/uptime", token=tokens.admin, headers=old)
    assert up.status_code == 200 and " up " in up.json()["hypervisor"]["uptime"]
    found = api.get(f"{COMPUTE}/os-hypervisors/comp/search", token=tokens.admin, headers=old)
    assert [h["hypervisor_hostname"] for h in found.json()["hypervisors"]] == ["compute1"]
    assert (
        api.get(f"{COMPUTE}/os-hypervisors/zzz/search", token=tokens.admin, headers=old).status_code
        == 404
    )
    new = {"X-OpenStack-Nova-API-Version": "2.88"}
    gone = api.get(f"{COMPUTE}/os-hypervisors/statistics", token=tokens.admin, headers=new)
    assert gone.status_code == 404
    assert api.get(f"{COMPUTE}/os-hypervisors/statistics", token=tokens.demo).status_code == 403


def test_compute_lists_v2_0_before_v2_1(api: Api) -> None:
    versions = api.get("/compute").json()["versions"]
    assert [v["id"] for v in versions] == ["v2.0", "v2.1"]
    href = versions[0]["links"][0]["href"].replace("http://pcifleet.test", "")
    assert api.get(href).json()["version"]["id"] == "v2.0"


def test_external_networks_are_visible_to_all_and_updatable(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.admin, name="public", **{"router:external": True})
    listed = api.get(f"{NET}/networks", token=tokens.demo).json()["networks"]
    assert net["id"] in {n["id"] for n in listed}
    assert api.get(f"{NET}/networks/{net['id']}", token=tokens.demo).status_code == 200
    other = create_network(api, tokens.admin, name="private")
    resp = api.put(
        f"{NET}/networks/{other['id']}",
        token=tokens.admin,
        json={"network": {"router:external": True}},
    )
    assert resp.status_code == 200 and resp.json()["network"]["router:external"] is True
    resp = api.put(
        f"{NET}/networks/{net['id']}", token=tokens.demo, json={"network": {"name": "x"}}
    )
    assert resp.status_code == 404  # readable to all, writable by its owner and admins only


def test_extension_show_has_updated(api: Api, tokens: Tokens) -> None:
    ext = api.get(f"{NET}/extensions/binding", token=tokens.demo).json()["extension"]
    assert ext["updated"]


def test_ports_filter_by_fixed_ip_and_overlap_message(api: Api, tokens: Tokens) -> None:
    net = create_network(api, tokens.demo, name="n")
    subnet = create_subnet(api, tokens.demo, net["id"], "10.9.0.0/24")
    first = create_port(api, tokens.demo, net["id"])
    create_port(api, tokens.demo, net["id"])
    ip = first["fixed_ips"][0]["ip_address"]
    url = f"{NET}/ports?fixed_ips=ip_address={ip}"
    assert [p["id"] for p in api.get(url, token=tokens.demo).json()["ports"]] == [first["id"]]
    url = f"{NET}/ports?fixed_ips=subnet_id={subnet['id']}&fixed_ips=ip_address=10.9.9.9"
    assert api.get(url, token=tokens.demo).json()["ports"] == []
    resp = api.post(
        f"{NET}/subnets",
        token=tokens.demo,
        json={"subnet": {"network_id": net["id"], "cidr": "10.9.0.0/25", "ip_version": 4}},
    )
    assert resp.status_code == 400 and "overlaps with another subnet" in resp.text


def test_hypervisor_cpu_info_and_with_servers_on_an_empty_host(api: Api, tokens: Tokens) -> None:
    FakeAgent(api, tokens.admin, "compute1").report()
    url = f"{COMPUTE}/os-hypervisors/detail"
    before = {"X-OpenStack-Nova-API-Version": "2.27"}
    (hv,) = api.get(url, token=tokens.admin, headers=before).json()["hypervisors"]
    assert hv["cpu_info"] == "{}"  # JSON text before 2.28
    since = {"X-OpenStack-Nova-API-Version": "2.28"}
    (hv,) = api.get(url, token=tokens.admin, headers=since).json()["hypervisors"]
    assert hv["cpu_info"] == {}
    v253 = {"X-OpenStack-Nova-API-Version": "2.53"}
    (hv,) = api.get(f"{url}?with_servers=true", token=tokens.admin, headers=v253).json()[
        "hypervisors"
    ]
    assert "servers" not in hv  # Nova leaves the key out when the host has none


def test_compute_answers_name_the_request_id_as_nova_does(api: Api, tokens: Tokens) -> None:
    # tempest's instance-action tests read the id of the create from this header
    resp = api.get(f"{COMPUTE}/flavors", token=tokens.demo)
    assert resp.headers["x-compute-request-id"] == resp.headers["x-openstack-request-id"]
    assert "x-compute-request-id" not in api.get(f"{NET}/networks", token=tokens.demo).headers


def test_a_migrations_flavor_keys_are_integers_or_null() -> None:
    # tempest's os-migrations schema: old/new_instance_type_id are integer or null
    assert instance_type_id({"id": "42"}) == 42
    for text in ("tempest-1", "\u00b2", "-1", "1.5", "9" * 12, "", None):
        assert instance_type_id({"id": text}) is None, text
    assert instance_type_id({}) is None
