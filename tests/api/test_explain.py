"""What an operator is told about a boot that cannot go anywhere: the fault
names ports by name and id, a physical network no host has is called that,
an unknown alias lists the defined ones; and ``/pcifleet/v1/explain/servers``
dry-runs a boot with the scheduler's own filters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.api.settings import ApiSettings
from pcifleet.store.models import InstancePciRequest
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, create_port, sriov_network
from tests.api.test_servers import boot, boot_env, show


def request_id_of(engine: Engine, server_id: str) -> str:
    """The internal id of the server's one PCI request (its port's)."""
    with Session(engine) as session:
        (rid,) = session.scalars(
            select(InstancePciRequest.request_id).where(
                InstancePciRequest.instance_uuid == server_id
            )
        ).all()
    return rid


def test_no_free_vf_names_the_port_by_name_and_id(api: Api, tokens: Tokens, engine: Engine) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report(drop_vfs_of="0000:3b:00.0")
    p = create_port(
        api, tokens.demo, env["net"]["id"], name="vf-a", **{"binding:vnic_type": "direct"}
    )
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    message = show(api, tokens.demo, server_id)["fault"]["message"]
    assert f"port 'vf-a' ({p['id']})" in message, message
    assert request_id_of(engine, server_id) not in message
    assert "physnet1" in message


def test_a_physical_network_no_host_has_is_named(api: Api, tokens: Tokens, engine: Engine) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    net7 = sriov_network(api, tokens.admin, physnet="physnet7", vlan=700)
    p = create_port(api, tokens.demo, net7["id"], name="p7", **{"binding:vnic_type": "direct"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    message = show(api, tokens.demo, server_id)["fault"]["message"]
    assert "no host has physical network physnet7" in message, message
    assert f"port 'p7' ({p['id']})" in message
    assert request_id_of(engine, server_id) not in message
    # a port on a network some host has, but with no VF free, is not called that
    assert "no free matching device" not in message


def test_an_unknown_alias_lists_the_defined_ones_and_where(
    api: Api, tokens: Tokens, settings: ApiSettings
) -> None:
    flavor = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {"name": "f-nvme", "ram": 512, "vcpus": 1, "disk": 1}},
    ).json()["flavor"]
    url = f"{COMPUTE}/flavors/{flavor['id']}/os-extra_specs"
    resp = api.post(
        url, token=tokens.admin, json={"extra_specs": {"pci_passthrough:alias": "nvme:1"}}
    )
    message = compute_error(resp, 400, "badRequest")
    assert "alias 'nvme' is not defined" in message
    assert f"defined in {settings.alias_source}: {', '.join(sorted(settings.aliases))}" in message


def explain(api: Api, token: str, **params: Any) -> Any:
    return api.get("/pcifleet/v1/explain/servers", token=token, params=params)


def test_explain_says_which_request_fails_which_filter_on_each_host(
    api: Api, tokens: Tokens
) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    FakeAgent(api, tokens.admin, "compute2").report(drop_vfs_of="0000:3b:00.0")
    ok = create_port(
        api, tokens.demo, env["net"]["id"], name="ok", **{"binding:vnic_type": "direct"}
    )
    resp = explain(api, tokens.admin, flavor="m1", ports=["ok"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    by_host = {h["host"]: h for h in body["hosts"]}
    assert by_host["compute1"] == {"host": "compute1", "fits": True, "failures": []}
    (failure,) = by_host["compute2"]["failures"]
    assert failure["filter"] == "PCI"
    assert failure["request"].startswith(f"port 'ok' ({ok['id']})")
    assert body["fits"] == 1
    # a physical network nobody has: every host fails, on PCI, for that port
    net7 = sriov_network(api, tokens.admin, physnet="physnet7", vlan=700)
    create_port(api, tokens.demo, net7["id"], name="p7", **{"binding:vnic_type": "direct"})
    body = explain(api, tokens.admin, ports=["ok", "p7"]).json()
    assert body["fits"] == 0
    for host in body["hosts"]:
        assert [f["request"].split(" (")[0] for f in host["failures"]] == ["port 'p7'"] or (
            host["host"] == "compute2" and len(host["failures"]) == 2
        )
    # a flavor too big for any host fails the RAM filter everywhere, and nothing was claimed
    big = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {"name": "huge", "ram": 2**30, "vcpus": 1, "disk": 1}},
    )
    assert big.status_code == 200, big.text
    body = explain(api, tokens.admin, flavor="huge").json()
    assert {f["filter"] for h in body["hosts"] for f in h["failures"]} == {"RAM"}
    assert explain(api, tokens.admin, flavor="m1", ports=["ok"]).json()["fits"] == 1


def test_explain_refuses_bad_questions_and_non_admins(api: Api, tokens: Tokens) -> None:
    assert explain(api, tokens.demo, flavor="m1").status_code == 403
    assert explain(api, tokens.admin).status_code == 400
    missing = explain(api, tokens.admin, ports=["no-such-port"])
    assert missing.status_code == 404 and "ports[0]" in missing.text
    bad = explain(api, tokens.admin, sriov_ports=["physnet1:normal"])
    assert bad.status_code == 400 and "sriov_ports[0]" in bad.text
    assert explain(api, tokens.admin, flavor="x" * 300).status_code == 400
