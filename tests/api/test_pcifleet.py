"""pcifleet's own API: agents' credentials and host scoping, inventory reports
with generations, the task feed, capacity, and the OpenAPI document."""

from __future__ import annotations

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error
from tests.api.inventory import sample_report

V1 = "/pcifleet/v1"


def errors(resp: object, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    (err,) = resp.json()["errors"]  # type: ignore[attr-defined]
    assert err["status"] == status and err["code"] == code, err
    detail: str = err["detail"]
    return detail


def test_inventory_report_builds_pools_and_generations(api: Api, tokens: Tokens) -> None:
    agent = FakeAgent(api, tokens.admin, "compute1")
    first = agent.report()
    assert first["generation"] == 1 and len(first["added"]) == 2 + 128 + 2
    vf_pools = [p for p in first["pci_stats"] if p["dev_type"] == "type-VF"]
    assert sorted((p["tags"]["physical_network"], p["count"]) for p in vf_pools) == [
        ("physnet1", 64),
        ("physnet2", 64),
    ]
    again = agent.report()
    assert again["generation"] == 2 and again["added"] == []
    stale = api.post(f"{V1}/hosts/compute1/inventory", json=sample_report(1), headers=agent.headers)
    assert "changed since generation 1" in errors(stale, 409, "pcifleet.concurrent_update")
    host = api.get(f"{V1}/hosts/compute1", headers=agent.headers).json()["host"]
    assert host["generation"] == 2 and host["status"] == "up"


def test_agents_act_for_their_own_host_only(api: Api, tokens: Tokens) -> None:
    one = FakeAgent(api, tokens.admin, "compute1")
    two = FakeAgent(api, tokens.admin, "compute2")
    errors(
        api.post(f"{V1}/hosts/compute2/inventory", json=sample_report(0), headers=one.headers),
        401,
        "pcifleet.unauthorized",
    )
    errors(api.get(f"{V1}/hosts/compute1/tasks", headers=two.headers), 401, "pcifleet.unauthorized")
    errors(api.get(f"{V1}/hosts", headers=one.headers), 401, "pcifleet.unauthorized")
    errors(
        api.get(f"{V1}/hosts/compute1/tasks", headers={"Authorization": "Bearer wrong"}),
        401,
        "pcifleet.unauthorized",
    )
    errors(api.get(f"{V1}/hosts/compute1/tasks"), 401, "pcifleet.unauthorized")
    errors(api.get(f"{V1}/hosts", token=tokens.demo), 403, "pcifleet.forbidden")
    errors(
        api.post(f"{V1}/hosts/compute3/credential", token=tokens.demo), 403, "pcifleet.forbidden"
    )
    assert api.get(f"{V1}/hosts/compute1/tasks?wait=0", headers=one.headers).json() == {"tasks": []}


def test_bad_reports_are_400_naming_the_field(api: Api, tokens: Tokens) -> None:
    agent = FakeAgent(api, tokens.admin, "compute1")
    url = f"{V1}/hosts/compute1/inventory"
    good = sample_report(0)
    dev = good["devices"][0]
    cases = [
        (
            {
                **good,
                "devices": [{"device": {**dev["device"], "address": "0000:zz:00.0"}, "tags": {}}],
            },
            "devices[0].device",
        ),
        ({**good, "devices": [dev, dev]}, "reported twice"),
        ({**good, "generation": -1}, "generation"),
        ({**good, "vcpus": "many"}, "vcpus"),
        ({**good, "extra": 1}, "extra"),
        ({"generation": 0}, "devices"),
    ]
    for body, word in cases:
        resp = api.post(url, json=body, headers=agent.headers)
        assert resp.status_code == 400, (word, resp.text)
        assert word in resp.json()["errors"][0]["detail"], resp.text
    raw = api.post(url, content=b"{", headers={**agent.headers, "Content-Type": "application/json"})
    assert raw.status_code == 400
    errors(
        api.post(
            f"{V1}/tasks/99999999999999999999999/result",
            json={"state": "done"},
            token=tokens.admin,
        ),
        400,
        "pcifleet.bad_request",
    )
    errors(
        api.post(f"{V1}/tasks/12345/result", json={"state": "done"}, token=tokens.admin),
        404,
        "pcifleet.task_not_found",
    )


def test_capacity_and_hypervisors(api: Api, tokens: Tokens) -> None:
    FakeAgent(api, tokens.admin, "compute1").report()
    FakeAgent(api, tokens.admin, "compute2").report(drop_vfs_of="0000:3b:00.0")
    cap = api.get(f"{V1}/capacity?physical_network=physnet1&dev_type=type-VF", token=tokens.admin)
    assert cap.json()["free"] == 64 and [len(h["pools"]) for h in cap.json()["hosts"]] == [1, 0]
    with_pfs = api.get(f"{V1}/capacity?physical_network=physnet1", token=tokens.admin).json()
    assert with_pfs["free"] == 64 + 1 + 1  # and each host's physnet1 PF
    gpus = api.get(f"{V1}/capacity?vendor_id=10de&dev_type=type-PCI", token=tokens.admin).json()
    assert gpus["free"] == 4 and gpus["total"] == 4
    assert api.get(f"{V1}/capacity?dev_type=type-XYZ", token=tokens.admin).status_code == 400
    hvs = api.get(f"{COMPUTE}/os-hypervisors", token=tokens.admin).json()["hypervisors"]
    assert [(h["hypervisor_hostname"], h["state"]) for h in hvs] == [
        ("compute1", "up"),
        ("compute2", "up"),
    ]
    shown = api.get(f"{COMPUTE}/os-hypervisors/compute2", token=tokens.admin).json()["hypervisor"]
    # Nova's strict shape; the pools are pcifleet's own resource
    assert "pci_stats" not in shown and "generation" not in shown
    pools = api.get(f"{V1}/hosts/compute2", token=tokens.admin).json()["host"]["pci_stats"]
    assert {p["dev_type"] for p in pools} == {"type-PF", "type-VF", "type-PCI"}
    compute_error(api.get(f"{COMPUTE}/os-hypervisors", token=tokens.demo), 403, "forbidden")
    compute_error(api.get(f"{COMPUTE}/os-pci", token=tokens.demo), 403, "forbidden")
    pci = api.get(
        f"{COMPUTE}/os-pci?host=compute1&status=available&dev_type=type-PF", token=tokens.admin
    ).json()
    assert [d["address"] for d in pci["pci_devices"]] == ["0000:3b:00.0", "0000:86:00.0"]
    one = api.get(f"{COMPUTE}/os-pci/{pci['pci_devices'][0]['id']}", token=tokens.admin).json()[
        "pci_device"
    ]
    assert one["tags"] == {"physical_network": "physnet1"} and one["instance_uuid"] is None
    compute_error(api.get(f"{COMPUTE}/os-pci/abc", token=tokens.admin), 404, "itemNotFound")


def test_openapi_document(api: Api) -> None:
    doc = api.get(f"{V1}/openapi.json").json()
    assert "/pcifleet/v1/hosts/{host}/inventory" in doc["paths"]
    assert doc["info"]["title"] == "pcifleet"


def test_how_many_more_servers_fit(api: Api, tokens: Tokens) -> None:
    FakeAgent(api, tokens.admin, "compute1").report()
    flavor = {"name": "g", "ram": 1024, "vcpus": 1, "disk": 1}
    made = api.post(f"{COMPUTE}/flavors", token=tokens.admin, json={"flavor": flavor}).json()[
        "flavor"
    ]
    specs = {"extra_specs": {"pci_passthrough:alias": "gpu:1"}}
    api.post(f"{COMPUTE}/flavors/{made['id']}/os-extra_specs", token=tokens.admin, json=specs)
    gpus = api.get(f"{V1}/capacity/servers?flavor=g", token=tokens.admin).json()
    assert gpus["servers"] == 2 and gpus["per_host"] == {"compute1": 2}
    vfs = api.get(f"{V1}/capacity/servers?sriov_ports=physnet1:direct", token=tokens.admin).json()
    assert vfs["servers"] == 64
    both = api.get(
        f"{V1}/capacity/servers?flavor=g&sriov_ports=physnet1:direct&sriov_ports=physnet2:macvtap",
        token=tokens.admin,
    ).json()
    assert both["servers"] == 2
    bad = api.get(f"{V1}/capacity/servers?sriov_ports=physnet1:normal", token=tokens.admin)
    assert "sriov_ports[0]" in errors(bad, 400, "pcifleet.bad_request")
    errors(
        api.get(f"{V1}/capacity/servers?flavor=nope", token=tokens.admin),
        404,
        "pcifleet.flavor_not_found",
    )
