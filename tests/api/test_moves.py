"""Cold migrate and resize with two stand-in agents: the destination's claim
(a new VF for the port, the new flavor's GPU), the source keeping its devices
until confirm, the ports' binding following the server there and back on
revert, os-migrations, the 400s/403s/409s, and races (a delete at each step of
a move, two moves at once). Every story ends with nothing held."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, create_port
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_servers import MV, boot, boot_env, port, show

MV80 = {"OpenStack-API-Version": "compute 2.80"}


def two_hosts(api: Api, tokens: Tokens) -> dict[str, FakeAgent]:
    agents = {h: FakeAgent(api, tokens.admin, h) for h in ("compute1", "compute2")}
    for agent in agents.values():
        agent.report()
    return agents


def active_on_sriov(api: Api, tokens: Tokens) -> tuple[str, str, dict[str, FakeAgent], Any]:
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    for agent in agents.values():
        agent.run_all()
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
    return uuid, p["id"], agents, env


def act(api: Api, token: str, uuid: str, body: dict[str, Any]) -> Any:
    return api.post(f"{COMPUTE}/servers/{uuid}/action", token=token, json=body, headers=MV)


def host_of(api: Api, tokens: Tokens, uuid: str) -> str:
    return str(show(api, tokens.admin, uuid)["OS-EXT-SRV-ATTR:host"])


def held(api: Api, tokens: Tokens, uuid: str) -> list[tuple[str, str, str]]:
    found = api.get(f"{COMPUTE}/os-pci/detail?instance_uuid={uuid}", token=tokens.admin).json()
    return sorted((d["host"], d["address"], d["status"]) for d in found["pci_devices"])


def finish_one(agent: FakeAgent, kind: str, state: str = "done", message: str = "") -> None:
    (task,) = agent.tasks()
    assert task["kind"] == kind, task
    agent.finish(task, state, message)


def migrations(api: Api, tokens: Tokens, uuid: str) -> list[dict[str, Any]]:
    resp = api.get(f"{COMPUTE}/os-migrations?instance_uuid={uuid}", token=tokens.admin,
                   headers=MV80)  # fmt: skip
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["migrations"]
    return found


def gpu_flavor(api: Api, tokens: Tokens) -> str:
    flavor = api.post(
        f"{COMPUTE}/flavors",
        token=tokens.admin,
        json={"flavor": {"name": "m1.gpu", "ram": 2048, "vcpus": 2, "disk": 1}},
    ).json()["flavor"]
    resp = api.post(
        f"{COMPUTE}/flavors/{flavor['id']}/os-extra_specs",
        token=tokens.admin,
        json={"extra_specs": {"pci_passthrough:alias": "gpu:1"}},
    )
    assert resp.status_code == 200, resp.text
    return str(flavor["id"])


def test_migrate_confirm_then_resize_revert(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    old_slot = port(api, tokens.admin, port_id)["binding:profile"]["pci_slot"]

    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    # the destination is claimed; the source stops the domain
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("RESIZE", "resize_migrating")
    assert [h for h, _, _ in held(api, tokens, uuid)] == sorted([source, dest])
    finish_one(agents[source], "move_source")
    bound = port(api, tokens.admin, port_id)
    assert bound["binding:host_id"] == dest  # follows the server before it is built there
    finish_one(agents[dest], "move_dest")
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "VERIFY_RESIZE" and server["OS-EXT-SRV-ATTR:host"] == dest
    assert held(api, tokens, uuid) == sorted(
        [(source, old_slot, "allocated"), (dest, bound["binding:profile"]["pci_slot"], "allocated")]
    )
    (mig,) = migrations(api, tokens, uuid)
    assert (mig["status"], mig["source_compute"], mig["dest_compute"]) == ("finished", source, dest)
    assert mig["migration_type"] == "migration" and mig["uuid"]
    # the flavor's id is text (a UUID): no integer to show, as strict clients require
    assert (mig["old_instance_type_id"], mig["new_instance_type_id"]) == (None, None)
    listed = api.get(f"{COMPUTE}/servers/{uuid}/migrations", token=tokens.admin, headers=MV80)
    assert [m["id"] for m in listed.json()["migrations"]] == [mig["id"]]

    # tempest and openstacksdk send {} for "no arguments"; other content is refused
    odd = act(api, tokens.demo, uuid, {"confirmResize": {"now": True}})
    assert "confirmResize" in compute_error(odd, 400, "badRequest")
    assert act(api, tokens.demo, uuid, {"confirmResize": {}}).status_code == 204
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
    assert [h for h, _, _ in held(api, tokens, uuid)] == [dest]
    finish_one(agents[source], "confirm_source")  # the old domain goes
    assert migrations(api, tokens, uuid)[0]["status"] == "confirmed"

    # resize to a flavor with a GPU, then revert: everything back on `dest`
    on_dest = port(api, tokens.admin, port_id)["binding:profile"]
    gpu = gpu_flavor(api, tokens)
    assert act(api, tokens.demo, uuid, {"resize": {"flavorRef": gpu}}).status_code == 202
    finish_one(agents[dest], "move_source")
    (build,) = agents[source].tasks()
    assert build["kind"] == "move_dest" and build["payload"]["instance"]["vcpus"] == 2
    assert [d["for_port"] for d in build["payload"]["devices"]].count(False) == 1  # the GPU
    agents[source].finish(build)
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "VERIFY_RESIZE" and server["flavor"]["vcpus"] == 2
    assert act(api, tokens.demo, uuid, {"revertResize": {}}).status_code == 202
    assert show(api, tokens.admin, uuid)["status"] == "REVERT_RESIZE"
    finish_one(agents[source], "revert_dest")
    finish_one(agents[dest], "revert_source")
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == dest
    assert server["flavor"]["vcpus"] == 1
    back = port(api, tokens.admin, port_id)
    assert back["binding:host_id"] == dest and back["binding:profile"] == on_dest
    assert [h for h, _, _ in held(api, tokens, uuid)] == [dest]
    assert migrations(api, tokens, uuid)[0]["status"] == "reverted"
    events = api.get(f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo,
                     headers=MV).json()["instanceActions"]  # fmt: skip
    names = [a["action"] for a in reversed(events)]
    assert names == ["create", "migrate", "confirmResize", "resize", "revertResize"]
    assert all(a["message"] is None for a in events)

    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[dest].run_all()
    assert leftovers(engine) == CLEAN


def test_no_other_host_leaves_the_server_active(api: Api, tokens: Tokens, engine: Engine) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    agent.run_all()
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
    (mig,) = migrations(api, tokens, uuid)
    assert mig["status"] == "error"
    actions = api.get(f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo,
                      headers=MV).json()["instanceActions"]  # fmt: skip
    assert actions[0]["action"] == "migrate" and actions[0]["message"] == "Error"
    assert agent.tasks() == []
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agent.run_all()
    assert leftovers(engine) == CLEAN


def test_a_failed_build_on_the_destination_frees_it(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    old = port(api, tokens.admin, port_id)
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    finish_one(agents[source], "move_source")
    finish_one(agents[dest], "move_dest", "failed", "libvirt: no IOMMU group")
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ERROR" and server["OS-EXT-SRV-ATTR:host"] == source
    assert "IOMMU" in server["fault"]["message"]
    after = port(api, tokens.admin, port_id)
    assert (after["binding:host_id"], after["binding:profile"]) == (
        source,
        old["binding:profile"],
    )
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[source].run_all()
    assert leftovers(engine) == CLEAN


@pytest.mark.parametrize("step", ["asked", "claimed", "source_stopped", "built"])
def test_a_delete_at_each_step_of_a_move_frees_both_hosts(
    api: Api, tokens: Tokens, engine: Engine, step: str
) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    if step == "asked":
        # the job has not run yet: take it away from the inline runner
        from sqlalchemy import update as sa_update
        from sqlalchemy.orm import Session

        from pcifleet.store.models import Instance

        with Session(engine) as session, session.begin():
            session.execute(
                sa_update(Instance).where(Instance.uuid == uuid).values(task_state="resize_prep",
                                                                        status="RESIZE")
            )  # fmt: skip
    else:
        assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
        if step in ("source_stopped", "built"):
            finish_one(agents[source], "move_source")
        if step == "built":
            finish_one(agents[dest], "move_dest")
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    for agent in agents.values():
        agent.run_all()  # late move reports and the delete
    assert show_gone(api, tokens, uuid)
    assert leftovers(engine) == CLEAN


def show_gone(api: Api, tokens: Tokens, uuid: str) -> bool:
    return api.get(f"{COMPUTE}/servers/{uuid}", token=tokens.admin).status_code == 404


def test_second_move_and_bad_requests(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, _, agents, env = active_on_sriov(api, tokens)
    message = compute_error(act(api, tokens.demo, uuid, {"migrate": None}), 403, "forbidden")
    assert "os-migrate-server" in message
    same = {"resize": {"flavorRef": env["flavor"]}}
    assert "must change flavor" in compute_error(act(api, tokens.demo, uuid, same), 400,
                                                 "badRequest")  # fmt: skip
    missing = {"resize": {"flavorRef": "nope"}}
    assert "nope" in compute_error(act(api, tokens.demo, uuid, missing), 400, "badRequest")
    assert "flavorRef" in compute_error(act(api, tokens.demo, uuid, {"resize": {}}), 400,
                                        "badRequest")  # fmt: skip
    confirm = act(api, tokens.demo, uuid, {"confirmResize": None})
    assert "vm_state active" in compute_error(confirm, 409, "conflictingRequest")
    assert act(api, tokens.admin, uuid, {"migrate": {}}).status_code == 202
    again = compute_error(act(api, tokens.admin, uuid, {"migrate": None}), 409,
                          "conflictingRequest")  # fmt: skip
    assert "task_state resize_migrating" in again
    gpu = gpu_flavor(api, tokens)
    resize = act(api, tokens.demo, uuid, {"resize": {"flavorRef": gpu}})
    assert "task_state resize_migrating" in compute_error(resize, 409, "conflictingRequest")
    assert len(migrations(api, tokens, uuid)) == 1
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    for agent in agents.values():
        agent.run_all()
    assert leftovers(engine) == CLEAN


def test_a_stopped_server_moves_and_stays_stopped(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    source = host_of(api, tokens, uuid)
    agents[source].run_all()
    assert show(api, tokens.demo, uuid)["status"] == "SHUTOFF"
    dest = next(h for h in agents if h != source)

    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    finish_one(agents[source], "move_source")  # a stop of a stopped domain: nothing to do
    (build,) = agents[dest].tasks()
    assert build["kind"] == "move_dest" and build["payload"]["start"] is False
    agents[dest].finish(build)
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("VERIFY_RESIZE", 4)
    assert act(api, tokens.demo, uuid, {"confirmResize": None}).status_code == 204
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("SHUTOFF", dest)
    finish_one(agents[source], "confirm_source")

    # resize, then revert: back on `dest`, still stopped, nothing started
    gpu = gpu_flavor(api, tokens)
    assert act(api, tokens.demo, uuid, {"resize": {"flavorRef": gpu}}).status_code == 202
    finish_one(agents[dest], "move_source")
    (build,) = agents[source].tasks()
    assert build["payload"]["start"] is False
    agents[source].finish(build)
    assert act(api, tokens.demo, uuid, {"revertResize": None}).status_code == 202
    finish_one(agents[source], "revert_dest")
    assert agents[dest].tasks() == []  # no start on the source of the resize
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("SHUTOFF", 4)
    assert server["OS-EXT-SRV-ATTR:host"] == dest and server["flavor"]["vcpus"] == 1
    assert port(api, tokens.admin, port_id)["binding:host_id"] == dest
    assert [h for h, _, _ in held(api, tokens, uuid)] == [dest]
    assert migrations(api, tokens, uuid)[0]["status"] == "reverted"
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[dest].run_all()
    assert leftovers(engine) == CLEAN
