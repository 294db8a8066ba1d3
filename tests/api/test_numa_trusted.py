"""Guest NUMA, trusted VFs and distinct PFs as a user reaches them through the
API (issue #13): port numa_affinity_policy, flavor NUMA extra specs, the
pcifleet:distinct_pf hint, and a binding merged into the admin's profile."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, NET, Api, create_port, neutron_error, sriov_network
from tests.api.inventory import sample_report
from tests.api.test_servers import MV, boot, boot_env, port, show

CELLS = [
    {"id": 0, "cpus": "0-31", "memory_mb": 131072, "socket": 0},
    {"id": 1, "cpus": "32-63", "memory_mb": 131072, "socket": 1},
]


def report(agent: FakeAgent, *, trusted_physnet2: bool = False) -> None:
    """The sample host with its two cells (physnet1 on NUMA 0, physnet2 on NUMA 1)."""
    body = sample_report(agent.generation)
    body["numa_topology"] = CELLS
    if trusted_physnet2:
        for d in body["devices"]:
            if (d["tags"] or {}).get("physical_network") == "physnet2":
                d["tags"] = {**d["tags"], "trusted": "true"}
    resp = agent.api.post(
        f"/pcifleet/v1/hosts/{agent.host}/inventory", json=body, headers=agent.headers
    )
    assert resp.status_code == 200, resp.text
    agent.generation = resp.json()["generation"]


def set_specs(api: Api, tokens: Tokens, flavor: str, **specs: str) -> Any:
    return api.post(
        f"{COMPUTE}/flavors/{flavor}/os-extra_specs",
        token=tokens.admin,
        json={"extra_specs": specs},
    )


def direct(api: Api, tokens: Tokens, net: dict[str, Any], **fields: Any) -> str:
    p = create_port(api, tokens.admin, net["id"], **{"binding:vnic_type": "direct"}, **fields)
    return str(p["id"])


def test_port_numa_affinity_policy_is_kept_shown_and_checked(api: Api, tokens: Tokens) -> None:
    net = sriov_network(api, tokens.admin)
    made = create_port(api, tokens.demo, net["id"], numa_affinity_policy="required")
    assert made["numa_affinity_policy"] == "required"
    url = f"{NET}/ports/{made['id']}"
    changed = api.put(url, token=tokens.demo, json={"port": {"numa_affinity_policy": "socket"}})
    assert changed.json()["port"]["numa_affinity_policy"] == "socket"
    cleared = api.put(url, token=tokens.demo, json={"port": {"numa_affinity_policy": None}})
    assert cleared.json()["port"]["numa_affinity_policy"] is None
    for bad in ("strict", 1, ["required"]):
        resp = api.put(url, token=tokens.demo, json={"port": {"numa_affinity_policy": bad}})
        assert "numa_affinity_policy" in neutron_error(resp, 400)
    assert port(api, tokens.demo, made["id"])["numa_affinity_policy"] is None
    aliases = {
        e["alias"] for e in api.get(f"{NET}/extensions", token=tokens.demo).json()["extensions"]
    }
    assert {"port-numa-affinity-policy", "port-numa-affinity-policy-socket"} <= aliases


@pytest.mark.parametrize(
    ("specs", "field"),
    [
        ({"hw:numa_nodes": "two"}, "hw:numa_nodes"),
        ({"hw:numa_nodes": "0"}, "hw:numa_nodes"),
        ({"hw:pci_numa_affinity_policy": "always"}, "hw:pci_numa_affinity_policy"),
        ({"hw:cpu_policy": "pinned"}, "hw:cpu_policy"),
    ],
)
def test_bad_numa_extra_specs_are_refused(
    api: Api, tokens: Tokens, specs: dict[str, str], field: str
) -> None:
    env = boot_env(api, tokens)
    resp = set_specs(api, tokens, env["flavor"], **specs)
    assert resp.status_code == 400 and field in resp.text
    shown = api.get(f"{COMPUTE}/flavors/{env['flavor']}/os-extra_specs", token=tokens.admin)
    assert shown.json()["extra_specs"] == {}


def test_one_cell_required_across_two_cells_is_no_valid_host_naming_numa(
    api: Api, tokens: Tokens
) -> None:
    env = boot_env(api, tokens)
    report(FakeAgent(api, tokens.admin, "compute1"))
    assert set_specs(api, tokens, env["flavor"], **{
        "hw:numa_nodes": "1", "hw:pci_numa_affinity_policy": "required"
    }).status_code == 200  # fmt: skip
    net2 = sriov_network(api, tokens.admin, physnet="physnet2", vlan=200)
    ports = [direct(api, tokens, env["net"]), direct(api, tokens, net2)]
    resp = boot(api, tokens.admin, env, [{"port": p} for p in ports])
    assert resp.status_code == 202, resp.text
    server = show(api, tokens.admin, resp.json()["server"]["id"])
    assert server["status"] == "ERROR"
    assert "No valid host" in server["fault"]["message"]
    assert "NUMA policy required" in server["fault"]["message"]


def test_a_ports_own_policy_overrides_the_flavors(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    report(agent)
    set_specs(api, tokens, env["flavor"], **{
        "hw:numa_nodes": "1", "hw:pci_numa_affinity_policy": "required"
    })  # fmt: skip
    net2 = sriov_network(api, tokens.admin, physnet="physnet2", vlan=200)
    # the physnet2 port may sit on the other cell: preferred
    ports = [
        direct(api, tokens, env["net"]),
        direct(api, tokens, net2, numa_affinity_policy="preferred"),
    ]
    resp = boot(api, tokens.admin, env, [{"port": p} for p in ports])
    server_id = resp.json()["server"]["id"]
    (task,) = agent.tasks()
    assert task["payload"]["instance"]["numa_cells"] == [0]
    agent.finish(task)
    assert show(api, tokens.admin, server_id)["status"] == "ACTIVE"


def test_dedicated_cpus_are_pinned_to_the_devices_cell(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    report(agent)
    set_specs(api, tokens, env["flavor"], **{
        "hw:cpu_policy": "dedicated", "hw:pci_numa_affinity_policy": "required"
    })  # fmt: skip
    net2 = sriov_network(api, tokens.admin, physnet="physnet2", vlan=200)
    resp = boot(api, tokens.admin, env, [{"port": direct(api, tokens, net2)}])
    assert resp.status_code == 202, resp.text
    (task,) = agent.tasks()
    instance = task["payload"]["instance"]
    assert instance["numa_cells"] == [1] and instance["cell_cpus"] == ["32-63"]


def test_trusted_port_takes_a_trusted_vf_and_binding_merges_the_profile(
    api: Api, tokens: Tokens
) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    report(agent)  # nothing is trusted yet
    net2 = sriov_network(api, tokens.admin, physnet="physnet2", vlan=200)
    admin_profile = {"trusted": True, "capabilities": ["switchdev"], "note": "kept"}
    p = direct(api, tokens, net2, **{"binding:profile": admin_profile})
    resp = boot(api, tokens.admin, env, [{"port": p}])
    first = show(api, tokens.admin, resp.json()["server"]["id"])
    assert first["status"] == "ERROR"
    assert "trusted" in first["fault"]["message"]
    assert api.delete(f"{COMPUTE}/servers/{first['id']}", token=tokens.admin).status_code == 204
    agent.run_all()

    report(agent, trusted_physnet2=True)
    resp = boot(api, tokens.admin, env, [{"port": p}])
    server_id = resp.json()["server"]["id"]
    bound = port(api, tokens.admin, p)["binding:profile"]
    assert {k: bound[k] for k in admin_profile} == admin_profile
    assert bound["physical_network"] == "physnet2" and bound["pci_slot"].startswith("0000:86:")
    (task,) = agent.tasks()
    assert task["payload"]["ports"][0]["binding:profile"]["trusted"] is True
    agent.finish(task)
    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.admin).status_code == 204
    agent.run_all()
    # unbinding takes back only what binding added
    assert port(api, tokens.admin, p)["binding:profile"] == admin_profile


def test_bad_trusted_values_are_refused(api: Api, tokens: Tokens) -> None:
    net = sriov_network(api, tokens.admin)
    for bad in ("maybe", 2, ["true"]):
        resp = api.post(
            f"{NET}/ports",
            token=tokens.admin,
            json={"port": {"network_id": net["id"], "binding:profile": {"trusted": bad}}},
        )
        assert "trusted" in neutron_error(resp, 400)


def test_distinct_pf_hint_puts_ports_on_two_pfs_or_says_why(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    report(agent)
    two = [{"port": direct(api, tokens, env["net"])} for _ in range(2)]
    hint = {"os:scheduler_hints": {"pcifleet:distinct_pf": "true"}}
    resp = api.post(
        f"{COMPUTE}/servers",
        token=tokens.admin,
        headers=MV,
        json={
            "server": {"name": "bond", "flavorRef": env["flavor"], "imageRef": env["image"],
                       "networks": two},
            **hint,
        },
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    server = show(api, tokens.admin, resp.json()["server"]["id"])
    # the sample host has one PF on physnet1
    assert server["status"] == "ERROR" and "distinct_pf" in server["fault"]["message"]

    bad = api.post(
        f"{COMPUTE}/servers",
        token=tokens.admin,
        headers=MV,
        json={
            "server": {"name": "x", "flavorRef": env["flavor"], "imageRef": env["image"],
                       "networks": "none"},
            "os:scheduler_hints": {"pcifleet:distinct_pf": "perhaps"},
        },
    )  # fmt: skip
    assert bad.status_code == 400 and "pcifleet:distinct_pf" in bad.text


def test_the_trusted_attribute_is_the_profiles_trusted_key_for_admins(
    api: Api, tokens: Tokens
) -> None:
    net = sriov_network(api, tokens.admin)
    body = {"network_id": net["id"], "trusted": True}
    refused = api.post(f"{NET}/ports", token=tokens.demo, json={"port": body})
    assert "trusted" in neutron_error(refused, 403)
    made = create_port(api, tokens.admin, net["id"], trusted=True)
    assert made["trusted"] is True and made["binding:profile"] == {"trusted": True}
    url = f"{NET}/ports/{made['id']}"
    off = api.put(url, token=tokens.admin, json={"port": {"trusted": None}})
    assert off.json()["port"]["trusted"] is None and off.json()["port"]["binding:profile"] == {}
    bad = api.put(url, token=tokens.admin, json={"port": {"trusted": "very"}})
    assert "trusted" in neutron_error(bad, 400)
    plain = create_port(api, tokens.demo, net["id"])
    assert plain["trusted"] is None
    denied = api.put(
        f"{NET}/ports/{plain['id']}", token=tokens.demo, json={"port": {"trusted": True}}
    )
    neutron_error(denied, 403)


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ("0-3", "numa_topology"),
        ([{"id": 0, "cpus": "7-0"}], "numa_topology[0].cpus"),
        ([{"id": "zero"}], "numa_topology[0].id"),
        ([{"id": 0}, {"id": 0}], "cell ids repeat"),
        ([{"id": 0, "cpus": "0", "memory_mb": -5}], "numa_topology[0].memory_mb"),
    ],
)
def test_hostile_numa_reports_are_refused_and_change_nothing(
    api: Api, tokens: Tokens, cells: object, field: str
) -> None:
    agent = FakeAgent(api, tokens.admin, "compute1")
    report(agent)
    body = sample_report(agent.generation)
    body["numa_topology"] = cells
    resp = api.post("/pcifleet/v1/hosts/compute1/inventory", json=body, headers=agent.headers)
    assert resp.status_code == 400 and field in resp.text
    host = api.get("/pcifleet/v1/hosts/compute1", token=tokens.admin).json()["host"]
    assert host["numa_topology"] == [dict(c, socket=c["socket"]) for c in CELLS]
    assert host["generation"] == agent.generation


def test_a_migrated_numa_server_is_placed_on_the_destinations_cells(
    api: Api, tokens: Tokens
) -> None:
    env = boot_env(api, tokens)
    agents = {h: FakeAgent(api, tokens.admin, h) for h in ("compute1", "compute2")}
    report(agents["compute1"])
    # compute2 is cabled the other way round: physnet2 on NUMA 0, smaller cells
    body = sample_report(agents["compute2"].generation)
    for d in body["devices"]:
        node = d["device"].get("numa_node")
        d["device"]["numa_node"] = None if node is None else 1 - node
    body["numa_topology"] = [
        {"id": 0, "cpus": "0-7", "memory_mb": 65536, "socket": 0},
        {"id": 1, "cpus": "8-15", "memory_mb": 65536, "socket": 1},
    ]
    resp = api.post("/pcifleet/v1/hosts/compute2/inventory", json=body,
                    headers=agents["compute2"].headers)  # fmt: skip
    assert resp.status_code == 200, resp.text
    set_specs(api, tokens, env["flavor"], **{
        "hw:cpu_policy": "dedicated", "hw:pci_numa_affinity_policy": "required"
    })  # fmt: skip
    net2 = sriov_network(api, tokens.admin, physnet="physnet2", vlan=200)
    p = direct(api, tokens, net2, numa_affinity_policy="required")
    uuid = boot(api, tokens.admin, env, [{"port": p}]).json()["server"]["id"]
    source = show(api, tokens.admin, uuid)["OS-EXT-SRV-ATTR:host"]
    dest = next(h for h in agents if h != source)
    agents[source].run_all()
    assert show(api, tokens.admin, uuid)["status"] == "ACTIVE"

    act = api.post(f"{COMPUTE}/servers/{uuid}/action", token=tokens.admin,
                   json={"migrate": None}, headers=MV)  # fmt: skip
    assert act.status_code == 202, act.text
    (stop,) = agents[source].tasks()
    agents[source].finish(stop)
    (build,) = agents[dest].tasks()
    assert build["kind"] == "move_dest"
    instance = build["payload"]["instance"]
    # the guest follows its port to the destination's cell, pinned to its CPUs
    if dest == "compute2":
        assert (instance["numa_cells"], instance["cell_cpus"]) == ([0], ["0-7"])
    else:
        assert (instance["numa_cells"], instance["cell_cpus"]) == ([1], ["32-63"])


def image_with(api: Api, tokens: Tokens, **props: str) -> str:
    body = {"name": "numa-img", "disk_format": "raw", "container_format": "bare", **props}
    image = api.post("/image/v2/images", token=tokens.admin, json=body).json()
    put = api.put(f"/image/v2/images/{image['id']}/file", token=tokens.admin, content=b"disk")
    assert put.status_code == 204
    return str(image["id"])


def test_the_images_policy_applies_and_may_not_contradict_the_flavor(
    api: Api, tokens: Tokens
) -> None:
    env = boot_env(api, tokens)
    report(FakeAgent(api, tokens.admin, "compute1"))
    set_specs(api, tokens, env["flavor"], **{"hw:numa_nodes": "1"})
    net2 = sriov_network(api, tokens.admin, physnet="physnet2", vlan=200)
    required = {**env, "image": image_with(api, tokens, hw_pci_numa_affinity_policy="required")}
    ports = [{"port": direct(api, tokens, env["net"])}, {"port": direct(api, tokens, net2)}]
    resp = boot(api, tokens.admin, required, ports)
    assert resp.status_code == 202, resp.text
    server = show(api, tokens.admin, resp.json()["server"]["id"])
    assert server["status"] == "ERROR" and "NUMA policy required" in server["fault"]["message"]

    set_specs(api, tokens, env["flavor"], **{"hw:pci_numa_affinity_policy": "preferred"})
    others = [{"port": direct(api, tokens, env["net"])}]
    clash = boot(api, tokens.admin, required, others)
    assert clash.status_code == 400 and "disagree" in clash.text
    # nothing was taken: the port is still free
    assert port(api, tokens.admin, others[0]["port"])["device_id"] == ""
