"""Compute servers, the boot flow seen from the API: ports and PCI requests,
scheduling onto a host with a free VF, binding, the agent's build and delete
tasks, and every way it can be refused or fail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.store.models import Host, InstancePciRequest, utcnow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import (
    COMPUTE,
    NET,
    Api,
    compute_error,
    create_network,
    create_port,
    sriov_network,
)

MV = {"OpenStack-API-Version": "compute 2.88"}


def boot_env(api: Api, tokens: Tokens) -> dict[str, Any]:
    """A flavor, an active image and the physnet1 vlan network, as the admin made them."""
    flavor = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {"name": "m1", "ram": 1024, "vcpus": 1, "disk": 1}},
    ).json()["flavor"]
    image_body = {
        "name": "img",
        "visibility": "public",
        "disk_format": "raw",
        "container_format": "bare",
    }
    image = api.post("/image/v2/images", token=tokens.admin, json=image_body).json()
    assert (
        api.put(
            f"/image/v2/images/{image['id']}/file", token=tokens.admin, content=b"disk"
        ).status_code
        == 204
    )
    return {"flavor": flavor["id"], "image": image["id"], "net": sriov_network(api, tokens.admin)}


def boot(api: Api, token: str, env: dict[str, Any], networks: Any, **extra: Any) -> Any:
    body = {
        "server": {
            "name": "vm",
            "flavorRef": env["flavor"],
            "imageRef": env["image"],
            "networks": networks,
            **extra,
        }
    }
    return api.post(f"{COMPUTE}/servers", token=token, json=body, headers=MV)


def show(api: Api, token: str, server_id: str) -> dict[str, Any]:
    resp = api.get(f"{COMPUTE}/servers/{server_id}", token=token, headers=MV)
    assert resp.status_code == 200, resp.text
    server: dict[str, Any] = resp.json()["server"]
    return server


def port(api: Api, token: str, port_id: str) -> dict[str, Any]:
    got: dict[str, Any] = api.get(f"{NET}/ports/{port_id}", token=token).json()["port"]
    return got


def vf_pool(api: Api, tokens: Tokens, physnet: str) -> dict[str, Any]:
    hv = api.get("/pcifleet/v1/hosts/compute1", token=tokens.admin).json()["host"]
    return next(
        p
        for p in hv["pci_stats"]
        if p["dev_type"] == "type-VF" and p["tags"].get("physical_network") == physnet
    )


def test_sriov_port_boot_bind_build_delete_story(api: Api, tokens: Tokens, engine: Engine) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    free_before = vf_pool(api, tokens, "physnet1")["count"]
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})

    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    # scheduled: the VF is claimed and the port bound to it, the build task waits
    bound = port(api, tokens.admin, p["id"])
    assert bound["device_id"] == server_id and bound["device_owner"] == "compute:nova"
    assert bound["binding:host_id"] == "compute1"
    assert bound["binding:vif_type"] == "hw_veb"
    assert bound["binding:vif_details"]["vlan"] == "100"
    profile = bound["binding:profile"]
    assert profile["pci_vendor_info"] == "8086:154c" and profile["physical_network"] == "physnet1"
    assert profile["pci_slot"].startswith("0000:3b:")  # a VF of the physnet1 PF
    assert vf_pool(api, tokens, "physnet1")["count"] == free_before - 1
    with Session(engine) as session:
        (request,) = session.scalars(select(InstancePciRequest)).all()
    assert request.source == "port" and request.specs == [
        {"physical_network": "physnet1", "dev_type": "type-VF"}
    ]
    assert show(api, tokens.demo, server_id)["status"] == "BUILD"

    (task,) = agent.tasks()
    assert task["kind"] == "build" and task["instance_uuid"] == server_id
    assert task["payload"]["image"]["id"] == env["image"]
    assert task["payload"]["image"]["size"] == len(b"disk")
    (payload_port,) = task["payload"]["ports"]
    assert payload_port["pci_request_id"] == request.request_id
    assert payload_port["binding:profile"]["pci_slot"] == profile["pci_slot"]
    agent.finish(task)

    server = show(api, tokens.demo, server_id)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:vm_state"] == "active"
    assert "OS-EXT-SRV-ATTR:host" not in server  # hidden from members
    assert show(api, tokens.admin, server_id)["OS-EXT-SRV-ATTR:host"] == "compute1"
    assert port(api, tokens.demo, p["id"])["status"] == "ACTIVE"
    pci = api.get(f"{COMPUTE}/os-pci/detail?instance_uuid={server_id}", token=tokens.admin).json()[
        "pci_devices"
    ]
    assert [(d["address"], d["status"], d["host"]) for d in pci] == [
        (profile["pci_slot"], "allocated", "compute1")
    ]

    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    assert show(api, tokens.demo, server_id)["OS-EXT-STS:task_state"] == "deleting"
    (gone,) = agent.run_all()
    assert gone["kind"] == "delete"
    compute_error(api.get(f"{COMPUTE}/servers/{server_id}", token=tokens.demo), 404, "itemNotFound")
    unbound = port(api, tokens.admin, p["id"])
    assert (
        unbound["binding:profile"] == {}
        and unbound["binding:host_id"] == ""
        and unbound["device_id"] == ""
    )
    assert vf_pool(api, tokens, "physnet1")["count"] == free_before


def test_no_free_vf_on_the_physical_network_is_error_with_fault(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report(drop_vfs_of="0000:3b:00.0")  # no VFs on physnet1 at all
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    server = show(api, tokens.demo, server_id)
    assert server["status"] == "ERROR"
    assert server["fault"]["message"].startswith("No valid host was found.")
    assert "physnet1" in server["fault"]["message"]
    assert agent.tasks() == []
    left = port(api, tokens.admin, p["id"])
    assert left["binding:profile"] == {} and left["device_id"] == server_id
    # deleting a server that never got a host needs no agent; the port is released
    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    assert port(api, tokens.demo, p["id"])["device_id"] == ""


def test_no_hosts_at_all(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    server_id = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    fault = show(api, tokens.demo, server_id)["fault"]
    assert fault["message"].startswith("No valid host was found.")


def test_build_failure_releases_the_claim_and_unbinds(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    free_before = vf_pool(api, tokens, "physnet1")["count"]
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "macvtap"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    (task,) = agent.tasks()
    agent.finish(task, "failed", "libvirt: internal error: unable to start domain")
    server = show(api, tokens.demo, server_id)
    assert server["status"] == "ERROR" and "unable to start domain" in server["fault"]["message"]
    assert vf_pool(api, tokens, "physnet1")["count"] == free_before
    assert port(api, tokens.admin, p["id"])["binding:host_id"] == ""


def test_delete_failure_is_error_and_keeps_the_claim(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    free_before = vf_pool(api, tokens, "physnet1")["count"]
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    agent.run_all()
    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    (task,) = agent.tasks()
    assert task["kind"] == "delete"
    agent.finish(task, "failed", "virsh: domain is busy")
    server = show(api, tokens.demo, server_id)
    assert server["status"] == "ERROR" and server["OS-EXT-STS:task_state"] is None
    assert server["fault"]["message"] == "virsh: domain is busy"
    # the domain may still hold the VF: it is not handed out again
    assert vf_pool(api, tokens, "physnet1")["count"] == free_before - 1
    assert port(api, tokens.admin, p["id"])["binding:host_id"] == "compute1"


def test_network_uuid_makes_a_normal_port_deleted_with_the_server(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    server_id = boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}]).json()["server"]["id"]
    (made,) = api.get(f"{NET}/ports?device_id={server_id}", token=tokens.demo).json()["ports"]
    assert made["binding:vnic_type"] == "normal" and "binding:host_id" not in made
    bound = port(api, tokens.admin, made["id"])
    assert bound["binding:host_id"] == "compute1"
    # bound as Neutron's linuxbridge agent does, with what the host needs to plug it
    assert bound["binding:vif_type"] == "bridge"
    assert bound["binding:vif_details"] == {
        "port_filter": False,
        "bridge_name": "brq" + env["net"]["id"][:11],
        "network_type": "vlan",
        "physical_network": "physnet1",
        "segmentation_id": 100,
    }
    agent.run_all()
    server = show(api, tokens.demo, server_id)
    assert server["status"] == "ACTIVE"
    assert list(server["addresses"]) == ["physnet1-100"]
    (addr,) = server["addresses"]["physnet1-100"]
    assert addr["addr"] == made["fixed_ips"][0]["ip_address"]
    assert addr["OS-EXT-IPS-MAC:mac_addr"] == made["mac_address"]
    ips = api.get(f"{COMPUTE}/servers/{server_id}/ips", token=tokens.demo).json()
    # ips shows version and addr only, as Nova's does; the server view adds the MAC
    assert ips == {"addresses": {"physnet1-100": [{"version": 4, "addr": addr["addr"]}]}}
    one = api.get(f"{COMPUTE}/servers/{server_id}/ips/physnet1-100", token=tokens.demo).json()
    assert one == {"physnet1-100": [{"version": 4, "addr": addr["addr"]}]}
    resp = api.get(f"{COMPUTE}/servers/{server_id}/ips/elsewhere", token=tokens.demo)
    assert "not a member of specified network" in compute_error(resp, 404, "itemNotFound")
    attached = api.get(f"{COMPUTE}/servers/{server_id}/os-interface", token=tokens.demo).json()
    assert [(a["port_id"], a["mac_addr"]) for a in attached["interfaceAttachments"]] == [
        (made["id"], made["mac_address"])
    ]
    api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo)
    agent.run_all()
    assert api.get(f"{NET}/ports?device_id={server_id}", token=tokens.demo).json()["ports"] == []


def test_flavor_alias_claims_a_gpu(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    specs = {"extra_specs": {"pci_passthrough:alias": "gpu:2"}}
    api.post(f"{COMPUTE}/flavors/{env['flavor']}/os-extra_specs", token=tokens.admin, json=specs)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    server_id = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    (task,) = agent.tasks()
    gpus = [d for d in task["payload"]["devices"] if not d["for_port"]]
    assert sorted(d["address"] for d in gpus) == ["0000:5e:00.0", "0000:d8:00.0"]
    assert show(api, tokens.demo, server_id)["flavor"]["extra_specs"] == {
        "pci_passthrough:alias": "gpu:2"
    }
    third = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    assert "No valid host" in show(api, tokens.demo, third)["fault"]["message"]


def test_port_in_use_is_409_and_others_servers_are_invisible(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    first = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    again = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert "in use" in compute_error(again, 409, "conflictingRequest")
    compute_error(api.get(f"{COMPUTE}/servers/{first}", token=tokens.alice), 404, "itemNotFound")
    compute_error(api.delete(f"{COMPUTE}/servers/{first}", token=tokens.alice), 404, "itemNotFound")
    assert api.get(f"{COMPUTE}/servers", token=tokens.alice).json()["servers"] == []
    assert [
        s["id"] for s in api.get(f"{COMPUTE}/servers", token=tokens.demo).json()["servers"]
    ] == [first]
    # admins see every project's servers only when they ask for all of them
    assert api.get(f"{COMPUTE}/servers", token=tokens.admin).json()["servers"] == []
    every = api.get(
        f"{COMPUTE}/servers/detail?all_tenants=1", token=tokens.admin, headers=MV
    ).json()["servers"]
    assert [s["id"] for s in every] == [first]
    theirs = create_port(api, tokens.alice, env["net"]["id"])
    foreign = boot(api, tokens.demo, env, [{"port": theirs["id"]}])
    assert "could not be found" in compute_error(foreign, 400, "badRequest")


def test_rejected_server_bodies_name_the_field(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    plain = create_network(api, tokens.demo)
    base = {"name": "vm", "flavorRef": env["flavor"], "imageRef": env["image"], "networks": "none"}
    no_networks = {k: v for k, v in base.items() if k != "networks"}
    cases: list[tuple[dict[str, Any], str]] = [
        (no_networks, "server.networks"),
        ({**base, "networks": "some"}, "server.networks"),
        ({**base, "name": ""}, "server.name"),
        ({**base, "name": "x" * 256}, "server.name"),
        ({**base, "flavorRef": "nope"}, "Flavor nope"),
        ({**base, "imageRef": "nope"}, "Image nope"),
        ({**base, "max_count": 65}, "server.max_count"),
        ({**base, "min_count": 3, "max_count": 2}, "min_count"),
        ({**base, "key_name": "k"}, "Invalid key_name"),  # no such keypair: Nova's words
        ({**base, "key_name": "k" * 256}, "server.key_name"),
        ({**base, "networks": [{}]}, "networks[0]"),
        ({**base, "networks": [{"uuid": "missing"}]}, "networks[0].uuid"),
        ({**base, "gpu": 1}, "server.gpu"),
    ]
    for server, field in cases:
        resp = api.post(
            f"{COMPUTE}/servers", token=tokens.demo, json={"server": server}, headers=MV
        )
        assert field in compute_error(resp, 400, "badRequest"), (server, resp.text)
    with_plain = boot(api, tokens.demo, env, [{"uuid": plain["id"]}])
    assert with_plain.status_code == 202
    raw = api.post(
        f"{COMPUTE}/servers",
        token=tokens.demo,
        content=b"\x00\x01",
        headers={"Content-Type": "application/json"},
    )
    compute_error(raw, 400, "badRequest")


def test_a_host_whose_agent_stopped_reporting_is_down_and_skipped(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    with Session(engine) as session, session.begin():
        host = session.scalars(select(Host)).one()
        host.last_report_at = utcnow() - timedelta(hours=1)
    hv = api.get(f"{COMPUTE}/os-hypervisors", token=tokens.admin).json()["hypervisors"]
    assert [h["state"] for h in hv] == ["down"]
    server_id = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    assert show(api, tokens.demo, server_id)["fault"]["message"].startswith("No valid host")


def test_direct_physical_port_gets_the_whole_pf(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct-physical"})
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert resp.status_code == 202, resp.text
    bound = port(api, tokens.admin, p["id"])
    assert bound["binding:vif_type"] == "hostdev_physical"
    assert bound["binding:profile"]["pci_slot"] == "0000:3b:00.0"  # the physnet1 PF itself
    assert bound["binding:profile"]["pci_vendor_info"] == "8086:1572"
    assert vf_pool(api, tokens, "physnet1")["count"] == 0  # its VFs are blocked with it


def test_server_list_pages_and_matches_show(api: Api, tokens: Tokens) -> None:
    """The list reads a page's ports, networks and hosts at once; each entry must
    still be exactly what show answers, and marker/limit page by server id."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    for _ in range(3):
        assert boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}]).status_code == 202
    agent.run_all()
    url = f"{COMPUTE}/servers/detail"
    listed = api.get(url, token=tokens.admin, headers=MV, params={"all_tenants": 1}).json()
    servers = listed["servers"]
    assert len(servers) == 3
    for server in servers:
        assert server == show(api, tokens.admin, server["id"])
        assert server["addresses"] and server["host_status"] == "UP"
    first = api.get(url, token=tokens.demo, headers=MV, params={"limit": 2}).json()["servers"]
    rest = api.get(url, token=tokens.demo, headers=MV, params={"marker": first[-1]["id"]}).json()[
        "servers"
    ]
    assert [s["id"] for s in first + rest] == [s["id"] for s in servers]
    short = api.get(f"{COMPUTE}/servers", token=tokens.demo, params={"limit": 1}).json()
    assert [s["id"] for s in short["servers"]] == [servers[0]["id"]]
    bad = api.get(f"{COMPUTE}/servers", token=tokens.demo, params={"marker": "nope"})
    assert "marker" in compute_error(bad, 400, "badRequest")
