"""Interface attach and detach (``os-interface``) with a stand-in agent: an SR-IOV
port's VF claimed on the server's host and given back on detach or failure, a
network's new port plugged as a bridge interface and deleted on detach, the
409s and 400s, a delete racing an attach, and the reconciler undoing an attach
whose host task was lost. Every story ends with nothing held."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from pcifleet.api.settings import ApiSettings
from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.reconciler import reconcile
from pcifleet.store.models import Instance, InstancePciRequest, Task, utcnow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, create_port, sriov_network
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_servers import MV, boot, boot_env, port, show, vf_pool


@pytest.fixture(autouse=True)
def _no_wait(settings: ApiSettings) -> None:
    # The stand-in agent runs in the test's thread: the POST must not wait for it.
    settings.interface_attach_wait_seconds = 0


def active_server(api: Api, tokens: Tokens) -> tuple[str, FakeAgent, dict[str, Any]]:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    agent.run_all()
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
    return uuid, agent, env


def attach(api: Api, token: str, uuid: str, **body: Any) -> Any:
    return api.post(
        f"{COMPUTE}/servers/{uuid}/os-interface",
        token=token,
        json={"interfaceAttachment": body},
        headers=MV,
    )


def interfaces(api: Api, token: str, uuid: str) -> list[dict[str, Any]]:
    resp = api.get(f"{COMPUTE}/servers/{uuid}/os-interface", token=token, headers=MV)
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["interfaceAttachments"]
    return found


def delete_server(api: Api, tokens: Tokens, agent: FakeAgent, uuid: str) -> None:
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agent.run_all()


def test_attach_and_detach_an_sriov_port(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, agent, env = active_server(api, tokens)
    free = vf_pool(api, tokens, "physnet1")["count"]
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})

    resp = attach(api, tokens.demo, uuid, port_id=p["id"])
    assert resp.status_code == 202, resp.text  # the agent has not plugged it yet
    assert resp.json()["interfaceAttachment"]["port_id"] == p["id"]
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] == "interface_attaching"
    bound = port(api, tokens.admin, p["id"])
    assert bound["device_id"] == uuid and bound["binding:host_id"] == "compute1"
    slot = bound["binding:profile"]["pci_slot"]
    assert slot.startswith("0000:3b:") and bound["binding:vif_type"] == "hw_veb"
    assert vf_pool(api, tokens, "physnet1")["count"] == free - 1

    (task,) = agent.tasks()
    assert task["kind"] == "attach_interface"
    assert task["payload"]["port"]["binding:profile"]["pci_slot"] == slot
    assert task["payload"]["device"]["address"] == slot
    agent.finish(task)
    server = show(api, tokens.demo, uuid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
    assert [i["port_id"] for i in interfaces(api, tokens.demo, uuid)] == [p["id"]]
    assert port(api, tokens.demo, p["id"])["status"] == "ACTIVE"
    pci = api.get(f"{COMPUTE}/os-pci/detail?instance_uuid={uuid}", token=tokens.admin).json()
    assert [(d["address"], d["status"]) for d in pci["pci_devices"]] == [(slot, "allocated")]
    shown = api.get(f"{COMPUTE}/servers/{uuid}/os-interface/{p['id']}", token=tokens.demo)
    assert shown.json()["interfaceAttachment"]["port_state"] == "ACTIVE"

    gone = api.delete(f"{COMPUTE}/servers/{uuid}/os-interface/{p['id']}", token=tokens.demo)
    assert gone.status_code == 202, gone.text
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] == "interface_detaching"
    (task,) = agent.tasks()
    assert task["kind"] == "detach_interface" and task["payload"]["device"]["address"] == slot
    agent.finish(task)
    after = port(api, tokens.admin, p["id"])
    assert (after["device_id"], after["binding:host_id"], after["binding:profile"]) == ("", "", {})
    assert vf_pool(api, tokens, "physnet1")["count"] == free
    assert interfaces(api, tokens.demo, uuid) == []
    with Session(engine) as session:
        assert session.scalars(select(InstancePciRequest)).all() == []
    actions = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    assert [a["action"] for a in actions[:2]] == ["detach_interface", "attach_interface"]
    assert all(a["message"] is None for a in actions)
    delete_server(api, tokens, agent, uuid)
    assert leftovers(engine) == CLEAN | {"bound": 0}


def test_a_failed_attach_frees_the_vf_and_unbinds(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, agent, env = active_server(api, tokens)
    free = vf_pool(api, tokens, "physnet1")["count"]
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    assert attach(api, tokens.demo, uuid, port_id=p["id"]).status_code == 202
    (task,) = agent.tasks()
    agent.finish(task, "failed", "libvirt: no free PCIe slot for hot plug")
    server = show(api, tokens.demo, uuid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
    after = port(api, tokens.admin, p["id"])
    assert after["device_id"] == "" and after["binding:host_id"] == ""
    assert vf_pool(api, tokens, "physnet1")["count"] == free
    actions = api.get(
        f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo, headers=MV
    ).json()["instanceActions"]
    assert actions[0]["action"] == "attach_interface" and actions[0]["message"] == "Error"
    delete_server(api, tokens, agent, uuid)
    assert leftovers(engine) == CLEAN


def test_no_free_vf_on_the_host_is_400_and_takes_nothing(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, agent, _ = active_server(api, tokens)
    nowhere = sriov_network(api, tokens.admin, physnet="physnet9", vlan=7)
    p = create_port(api, tokens.demo, nowhere["id"], **{"binding:vnic_type": "direct"})
    message = compute_error(attach(api, tokens.demo, uuid, port_id=p["id"]), 400, "badRequest")
    assert "physical_network physnet9" in message and "compute1" in message
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] is None
    assert port(api, tokens.admin, p["id"])["device_id"] == ""
    assert agent.tasks() == []
    delete_server(api, tokens, agent, uuid)
    assert leftovers(engine) == CLEAN


def test_add_network_plugs_a_bridge_port_that_detach_deletes(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, agent, env = active_server(api, tokens)
    resp = attach(api, tokens.demo, uuid, net_id=env["net"]["id"])
    assert resp.status_code == 202, resp.text
    port_id = resp.json()["interfaceAttachment"]["port_id"]
    bound = port(api, tokens.admin, port_id)
    assert bound["binding:vif_type"] == "bridge" and bound["binding:host_id"] == "compute1"
    (task,) = agent.tasks()
    assert task["payload"]["device"] is None
    agent.finish(task)
    gone = api.delete(f"{COMPUTE}/servers/{uuid}/os-interface/{port_id}", token=tokens.demo)
    assert gone.status_code == 202
    agent.run_all()
    assert api.get(f"/networking/v2.0/ports/{port_id}", token=tokens.admin).status_code == 404
    delete_server(api, tokens, agent, uuid)
    assert leftovers(engine) == CLEAN


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 400, "port_id or net_id"),
        ({"port_id": "a", "net_id": "b"}, 400, "both"),
        ({"port_id": "nope"}, 404, "nope"),
        ({"net_id": "nope"}, 404, "nope"),
        ({"port_id": "x", "bogus": 1}, 400, "bogus"),
    ],
)
def test_bad_attach_requests_name_the_field(
    api: Api, tokens: Tokens, body: dict[str, Any], status: int, says: str
) -> None:
    uuid, _, _ = active_server(api, tokens)
    resp = attach(api, tokens.demo, uuid, **body)
    assert resp.status_code == status, resp.text
    assert says in resp.text
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] is None


def test_attach_while_an_action_runs_is_409_naming_the_task(api: Api, tokens: Tokens) -> None:
    uuid, _, env = active_server(api, tokens)
    stop = api.post(
        f"{COMPUTE}/servers/{uuid}/action", token=tokens.demo, json={"os-stop": None}, headers=MV
    )
    assert stop.status_code == 202
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    message = compute_error(
        attach(api, tokens.demo, uuid, port_id=p["id"]), 409, "conflictingRequest"
    )
    assert "task_state powering-off" in message
    detach = api.delete(f"{COMPUTE}/servers/{uuid}/os-interface/{p['id']}", token=tokens.demo)
    assert detach.status_code == 404


def test_a_port_in_use_is_409(api: Api, tokens: Tokens) -> None:
    uuid, agent, env = active_server(api, tokens)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    other = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    agent.run_all()
    assert other != uuid
    message = compute_error(
        attach(api, tokens.demo, uuid, port_id=p["id"]), 409, "conflictingRequest"
    )
    assert "in use" in message


def test_a_delete_during_an_attach_leaves_nothing(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, agent, env = active_server(api, tokens)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    assert attach(api, tokens.demo, uuid, port_id=p["id"]).status_code == 202
    (plug,) = agent.tasks()  # the agent is plugging when the delete comes
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agent.finish(plug)  # late: changes nothing
    agent.run_all()  # the delete
    assert leftovers(engine) == CLEAN


def test_the_reconciler_undoes_an_attach_whose_task_was_lost(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, agent, env = active_server(api, tokens)
    free = vf_pool(api, tokens, "physnet1")["count"]
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    assert attach(api, tokens.demo, uuid, port_id=p["id"]).status_code == 202
    with Session(engine) as session, session.begin():
        session.execute(update(Task).where(Task.kind == "attach_interface").values(state="failed"))
        session.execute(
            update(Instance)
            .where(Instance.uuid == uuid)
            .values(updated_at=utcnow() - timedelta(hours=1))
        )
    report = reconcile(engine, ComputeConfig(reconcile_interval=0))
    assert report.counts.get("lost attaches undone") == 1
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] is None
    assert port(api, tokens.admin, p["id"])["device_id"] == ""
    assert vf_pool(api, tokens, "physnet1")["count"] == free
    delete_server(api, tokens, agent, uuid)
    assert leftovers(engine) == CLEAN
