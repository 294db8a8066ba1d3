"""Ports as Neutron and Nova guard them together: binding fields for admins
only, a port names only a server its caller may use, and a port a live server
holds is neither re-pointed nor deleted under it."""

from __future__ import annotations

from typing import Any

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, NET, Api, create_network, create_port, neutron_error
from tests.api.test_servers import boot, boot_env, show

BINDING_FIELDS = ("binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details")


def booted(api: Api, tokens: Tokens, vnic_type: str = "direct") -> tuple[dict[str, Any], str, str]:
    """A member's ACTIVE server on one port of its own: (env, server id, port id)."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": vnic_type})
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    agent.run_all()
    assert show(api, tokens.demo, server_id)["status"] == "ACTIVE"
    return env | {"agent": agent}, server_id, p["id"]


def test_members_do_not_see_binding_fields(api: Api, tokens: Tokens) -> None:
    _, _, port_id = booted(api, tokens)
    as_admin = api.get(f"{NET}/ports/{port_id}", token=tokens.admin).json()["port"]
    assert as_admin["binding:host_id"] == "compute1"
    assert as_admin["binding:profile"]["pci_slot"].startswith("0000:3b:")
    views = [
        api.get(f"{NET}/ports/{port_id}", token=tokens.demo).json()["port"],
        *api.get(f"{NET}/ports", token=tokens.demo).json()["ports"],
        api.put(
            f"{NET}/ports/{port_id}", token=tokens.demo, json={"port": {"name": "renamed"}}
        ).json()["port"],
    ]
    for view in views:
        assert not set(BINDING_FIELDS) & set(view), view
        assert view["binding:vnic_type"] == "direct"  # the owner's own choice stays visible
    asked = api.get(
        f"{NET}/ports/{port_id}", token=tokens.demo, params={"fields": "binding:host_id"}
    ).json()["port"]
    assert "binding:host_id" not in asked


def test_a_port_names_only_a_server_of_its_caller(api: Api, tokens: Tokens) -> None:
    _, server_id, _ = booted(api, tokens)
    alice_net = create_network(api, tokens.alice, name="alice-net")
    made = api.post(
        f"{NET}/ports",
        token=tokens.alice,
        json={"port": {"network_id": alice_net["id"], "device_id": server_id}},
    )
    assert "device_id" in neutron_error(made, 403)
    assert (
        api.get(f"{NET}/ports", token=tokens.admin, params={"network_id": alice_net["id"]}).json()[
            "ports"
        ]
        == []
    )
    own = create_port(api, tokens.alice, alice_net["id"])
    moved = api.put(
        f"{NET}/ports/{own['id']}", token=tokens.alice, json={"port": {"device_id": server_id}}
    )
    assert "device_id" in neutron_error(moved, 403)
    # an id that is no server is anyone's to write, as in Neutron
    free = api.put(
        f"{NET}/ports/{own['id']}", token=tokens.alice, json={"port": {"device_id": "dhcp-1"}}
    )
    assert free.status_code == 200 and free.json()["port"]["device_id"] == "dhcp-1"
    interfaces = api.get(f"{COMPUTE}/servers/{server_id}/os-interface", token=tokens.demo).json()
    assert own["id"] not in [i["port_id"] for i in interfaces["interfaceAttachments"]]


def test_a_held_port_is_neither_repointed_nor_deleted(api: Api, tokens: Tokens) -> None:
    env, server_id, port_id = booted(api, tokens)
    for token in (tokens.demo, tokens.admin):
        for change in ({"device_id": ""}, {"device_owner": "network:dhcp"}):
            resp = api.put(f"{NET}/ports/{port_id}", token=token, json={"port": change})
            message = neutron_error(resp, 409, "PortInUse")
            assert server_id in message and "vm" in message
        message = neutron_error(api.delete(f"{NET}/ports/{port_id}", token=token), 409, "PortInUse")
        assert server_id in message
    held = api.get(f"{NET}/ports/{port_id}", token=tokens.admin).json()["port"]
    assert held["device_id"] == server_id and held["binding:host_id"] == "compute1"
    same = api.put(
        f"{NET}/ports/{port_id}",
        token=tokens.demo,
        json={"port": {"device_id": server_id, "name": "kept"}},
    )
    assert same.status_code == 200 and same.json()["port"]["name"] == "kept"

    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    env["agent"].run_all()
    assert api.delete(f"{NET}/ports/{port_id}", token=tokens.demo).status_code == 204


def test_an_errored_server_still_holds_its_port(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    # no host reported: the boot ends in ERROR, and the port stays attached (as in Nova)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    server_id = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    assert show(api, tokens.demo, server_id)["status"] == "ERROR"
    resp = api.delete(f"{NET}/ports/{p['id']}", token=tokens.demo)
    assert server_id in neutron_error(resp, 409, "PortInUse")
    assert api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo).status_code == 204
    assert api.delete(f"{NET}/ports/{p['id']}", token=tokens.demo).status_code == 204
