"""Evacuate with two stand-in agents: only off a host that is down, rebuilt on
the other with fresh claims (same request ids), the old host's claims freed
and its instance list no longer naming the server; a failed rebuild, no valid
host, a delete meanwhile, a stopped server, a new host going down, and the
400s/403s/404s/409s. Every story ends with nothing held."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pcifleet.compute.reconciler import reconcile
from pcifleet.store.cloud import Port
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_move_repair import config, host_down, host_up
from tests.api.test_moves import MV80, act, active_on_sriov, held, host_of, migrations
from tests.api.test_servers import port, show

SERVICES = f"{COMPUTE}/os-services"
V253 = {"OpenStack-API-Version": "compute 2.53"}


def force_down(api: Api, tokens: Tokens, host: str, down: bool = True) -> None:
    """As `openstack compute service set --down HOST nova-compute`."""
    found = api.get(f"{SERVICES}?host={host}", token=tokens.admin, headers=V253).json()
    (service,) = found["services"]
    resp = api.put(f"{SERVICES}/{service['id']}", token=tokens.admin,
                   json={"forced_down": down}, headers=V253)  # fmt: skip
    assert resp.status_code == 200, resp.text


def evacuate(api: Api, token: str, uuid: str, body: dict[str, Any] | None = None) -> Any:
    return api.post(f"{COMPUTE}/servers/{uuid}/action", token=token,
                    json={"evacuate": body or {}}, headers=MV80)  # fmt: skip


def expected(api: Api, agents: dict[str, Any], host: str) -> list[str]:
    resp = api.get(f"/pcifleet/v1/hosts/{host}/instances", headers=agents[host].headers)
    assert resp.status_code == 200, resp.text
    found: list[str] = resp.json()["instances"]
    return found


def delete_all(api: Api, tokens: Tokens, engine: Engine, uuid: str, agents: Any) -> None:
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    for host, agent in agents.items():
        host_up(engine, host)
        agent.run_all()
    reconcile(engine, config())
    assert leftovers(engine) == CLEAN


def test_evacuate_rebuilds_on_the_other_host_and_frees_the_old_one(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    old_slot = port(api, tokens.admin, port_id)["binding:profile"]["pci_slot"]
    # the host is up: Nova's ComputeServiceInUse
    message = compute_error(evacuate(api, tokens.admin, uuid), 400, "badRequest")
    assert source in message and "still in use" in message

    force_down(api, tokens, source)
    assert evacuate(api, tokens.admin, uuid).status_code == 200
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("REBUILD", "rebuild_spawning")
    assert server["OS-EXT-SRV-ATTR:host"] == dest
    (task,) = agents[dest].tasks()
    assert task["kind"] == "rebuild"
    (device,) = task["payload"]["devices"]
    with Session(engine) as session:  # the port's VF under the port's own PCI request
        assert device["request_id"] == session.get(Port, port_id).pci_request_id  # type: ignore[union-attr]
    bound = port(api, tokens.admin, port_id)
    assert bound["binding:host_id"] == dest
    assert bound["binding:profile"]["pci_slot"] == device["address"]
    # both ends held until the rebuild is done; the old host's domain is kept meanwhile
    assert held(api, tokens, uuid) == sorted(
        [(source, old_slot, "allocated"), (dest, device["address"], "claimed")]
    )
    assert uuid in expected(api, agents, source)
    agents[dest].finish(task)

    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", dest)
    assert held(api, tokens, uuid) == [(dest, device["address"], "allocated")]
    assert port(api, tokens.admin, port_id)["status"] == "ACTIVE"
    (mig,) = migrations(api, tokens, uuid)
    assert (mig["migration_type"], mig["status"]) == ("evacuation", "done")
    assert (mig["source_compute"], mig["dest_compute"]) == (source, dest)
    # the old host comes back: it is told not to keep the server, so its sweep
    # destroys the stale domain; the new host keeps it
    force_down(api, tokens, source, down=False)
    assert uuid not in expected(api, agents, source)
    assert uuid in expected(api, agents, dest)
    actions = api.get(f"{COMPUTE}/servers/{uuid}/os-instance-actions", token=tokens.demo,
                      headers=MV80).json()["instanceActions"]  # fmt: skip
    assert [a["action"] for a in reversed(actions)] == ["create", "evacuate"]
    delete_all(api, tokens, engine, uuid, agents)


def test_a_failed_rebuild_leaves_an_error_on_the_old_host_evacuable_again(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    before = port(api, tokens.admin, port_id)
    host_down(engine, source)
    assert evacuate(api, tokens.admin, uuid, {"host": dest}).status_code == 200
    (task,) = agents[dest].tasks()
    agents[dest].finish(task, "failed", "libvirt: no IOMMU group")
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ERROR", source)
    assert "IOMMU" in server["fault"]["message"]
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    after = port(api, tokens.admin, port_id)
    assert (after["binding:host_id"], after["binding:profile"]) == (
        source,
        before["binding:profile"],
    )
    assert migrations(api, tokens, uuid)[0]["status"] == "failed"
    # an ERROR server may be evacuated again
    assert evacuate(api, tokens.admin, uuid).status_code == 200
    agents[dest].run_all()
    assert show(api, tokens.admin, uuid)["status"] == "ACTIVE"
    assert [h for h, _, _ in held(api, tokens, uuid)] == [dest]
    delete_all(api, tokens, engine, uuid, agents)


def test_no_valid_host_is_an_error_that_keeps_the_old_claims(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    host_down(engine, source)
    force_down(api, tokens, dest)  # the scheduler learns of it at once
    assert evacuate(api, tokens.admin, uuid).status_code == 200
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ERROR", source)
    assert "No valid host" in server["fault"]["message"]
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    assert migrations(api, tokens, uuid)[0]["status"] == "error"
    force_down(api, tokens, dest, down=False)
    delete_all(api, tokens, engine, uuid, agents)


def test_a_delete_during_the_rebuild_frees_both_hosts(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    host_down(engine, source)
    assert evacuate(api, tokens.admin, uuid).status_code == 200
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[dest].run_all()  # the rebuild is cancelled or reported late, then the delete
    for host, agent in agents.items():
        host_up(engine, host)
        agent.run_all()
    assert api.get(f"{COMPUTE}/servers/{uuid}", token=tokens.admin).status_code == 404
    assert leftovers(engine) == CLEAN


def test_a_stopped_server_is_rebuilt_stopped(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    agents[source].run_all()
    host_down(engine, source)
    assert evacuate(api, tokens.admin, uuid).status_code == 200
    assert show(api, tokens.admin, uuid)["status"] == "REBUILD"
    (task,) = agents[dest].tasks()
    assert task["payload"]["start"] is False
    agents[dest].finish(task)
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("SHUTOFF", 4)
    delete_all(api, tokens, engine, uuid, agents)


def test_a_new_host_going_down_ends_the_evacuation_in_error(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    host_down(engine, source)
    assert evacuate(api, tokens.admin, uuid).status_code == 200
    host_down(engine, dest)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ERROR", source)
    assert dest in server["fault"]["message"]
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    delete_all(api, tokens, engine, uuid, agents)


def test_evacuate_refusals(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    host_down(engine, source)
    assert compute_error(evacuate(api, tokens.demo, uuid), 403, "forbidden")
    same = evacuate(api, tokens.admin, uuid, {"host": source})
    assert "same" in compute_error(same, 400, "badRequest")
    nowhere = evacuate(api, tokens.admin, uuid, {"host": "compute9"})
    assert "compute9" in compute_error(nowhere, 404, "itemNotFound")
    shared = evacuate(api, tokens.admin, uuid, {"onSharedStorage": False})
    assert "onSharedStorage" in compute_error(shared, 400, "badRequest")  # gone since 2.14
    forced = evacuate(api, tokens.admin, uuid, {"force": True})
    assert "force" in compute_error(forced, 400, "badRequest")  # gone since 2.68
    for body in ({"host": 7}, {"adminPass": ""}):
        field = next(iter(body))
        assert field in compute_error(evacuate(api, tokens.admin, uuid, body), 400, "badRequest")
    resp = api.post(f"{COMPUTE}/servers/{uuid}/action", token=tokens.admin,
                    json={"evacuate": None}, headers=MV80)  # fmt: skip
    assert "evacuate" in compute_error(resp, 400, "badRequest")
    old = {"OpenStack-API-Version": "compute 2.1"}
    resp = api.post(f"{COMPUTE}/servers/{uuid}/action", token=tokens.admin,
                    json={"evacuate": {}}, headers=old)  # fmt: skip
    assert "onSharedStorage" in compute_error(resp, 400, "badRequest")
    assert leftovers(engine)["live"] == 1  # nothing above changed the server
    assert show(api, tokens.admin, uuid)["status"] == "ACTIVE"
    delete_all(api, tokens, engine, uuid, agents)
