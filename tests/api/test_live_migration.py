"""Live migration with two stand-in agents: the source's task (direct ports to
unplug, macvtap ports onto the destination's VF netdevs), the destination's
(the source's XML to run, the direct ports' new VFs to plug), the ports'
bindings and os-pci at each step, a failure at either end with nothing
leaked, the alias refusal and the request checks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select, update

from pcifleet.compute.reconciler import reconcile
from pcifleet.store.models import InstancePciRequest
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api, compute_error, create_port
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_move_repair import config, host_down, host_up
from tests.api.test_moves import (
    MV80,
    act,
    finish_one,
    gpu_flavor,
    held,
    host_of,
    migrations,
    two_hosts,
)
from tests.api.test_servers import boot, boot_env, port, show

XML = "<domain><name>x</name><devices/></domain>"  # what a source reports; opaque here
FILES = {"disk": "/var/lib/pcifleet/disks/x.qcow2", "console_log": None, "owner": None,
         "inbound_addr": "192.0.2.7"}  # fmt: skip


def prepared(agent: Any, files: dict[str, Any] | None = None) -> dict[str, Any]:
    """The destination's ``live_prepare`` task, done with ``files`` (what it made)."""
    (task,) = agent.tasks()
    assert task["kind"] == "live_prepare"
    agent.finish(task, details={"dest_files": files or FILES})
    return task


def live(api: Api, token: str, uuid: str, host: str | None = None, **extra: Any) -> Any:
    body = {"os-migrateLive": {"host": host, "block_migration": "auto", **extra}}
    return api.post(f"{COMPUTE}/servers/{uuid}/action", token=token, json=body, headers=MV80)


def two_port_server(api: Api, tokens: Tokens) -> tuple[str, str, str, dict[str, Any]]:
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    direct = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    macvtap = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "macvtap"})
    uuid = boot(api, tokens.demo, env, [{"port": direct["id"]}, {"port": macvtap["id"]}]).json()[
        "server"
    ]["id"]
    for agent in agents.values():
        agent.run_all()
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
    return uuid, direct["id"], macvtap["id"], agents


def test_live_migration_moves_both_kinds_of_port(api: Api, tokens: Tokens, engine: Engine) -> None:
    uuid, direct, macvtap, agents = two_port_server(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    before = {
        p: port(api, tokens.admin, p)["binding:profile"]["pci_slot"] for p in (direct, macvtap)
    }
    mac = port(api, tokens.admin, macvtap)["mac_address"]

    assert live(api, tokens.admin, uuid).status_code == 202
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("MIGRATING", "migrating")
    assert agents[source].tasks() == []  # the destination prepares first
    assert migrations(api, tokens, uuid)[0]["status"] == "preparing"
    prep = prepared(agents[dest])
    # the image and root disk to make ready there; the SR-IOV ports stay the source's
    assert prep["payload"]["image"]["file"].startswith(f"/pcifleet/v1/hosts/{dest}/images/")
    assert prep["payload"]["ports"] == [] and prep["payload"]["devices"] == []
    (task,) = agents[source].tasks()
    assert task["kind"] == "live_source" and task["payload"]["dest_host"] == dest
    assert task["payload"]["dest_files"] == FILES
    assert migrations(api, tokens, uuid)[0]["status"] == "running"
    # the direct port is unplugged from its source VF; the macvtap port moves
    # onto the destination VF's netdev
    (unplug,) = task["payload"]["unplug"]
    assert unplug["port"]["id"] == direct and unplug["device"]["address"] == before[direct]
    assert list(task["payload"]["netdevs"]) == [mac.lower()]
    # both ends held, the ports still bound on the source while it runs there
    assert sorted({h for h, _, _ in held(api, tokens, uuid)}) == sorted([source, dest])
    assert port(api, tokens.admin, direct)["binding:host_id"] == source
    agents[source].finish(task, details={"domain_xml": XML})

    (task,) = agents[dest].tasks()
    assert task["kind"] == "live_dest" and task["payload"]["domain_xml"] == XML
    (plug,) = task["payload"]["plug"]
    moved = port(api, tokens.admin, direct)
    assert plug["port"]["id"] == direct and moved["binding:host_id"] == dest
    assert plug["device"]["address"] == moved["binding:profile"]["pci_slot"]
    assert show(api, tokens.admin, uuid)["OS-EXT-SRV-ATTR:host"] == dest
    agents[dest].finish(task)

    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", dest)
    assert {h for h, _, _ in held(api, tokens, uuid)} == {dest}
    for p in (direct, macvtap):
        bound = port(api, tokens.admin, p)
        assert bound["binding:host_id"] == dest and bound["status"] == "ACTIVE"
    (mig,) = migrations(api, tokens, uuid)
    assert (mig["migration_type"], mig["status"]) == ("live-migration", "completed")
    finish_one(agents[source], "live_cleanup")  # the source's domain goes
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[dest].run_all()
    assert leftovers(engine) == CLEAN


def test_a_failed_destination_rolls_back_to_the_source(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, direct, _, agents = two_port_server(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    before = port(api, tokens.admin, direct)
    assert live(api, tokens.admin, uuid, dest).status_code == 202
    prepared(agents[dest])
    (task,) = agents[source].tasks()
    agents[source].finish(task, details={"domain_xml": XML})
    finish_one(agents[dest], "live_dest", "failed", "qemu: migration stream broken")
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", source)
    after = port(api, tokens.admin, direct)
    assert (after["binding:host_id"], after["binding:profile"]) == (
        source,
        before["binding:profile"],
    )
    assert {h for h, _, _ in held(api, tokens, uuid)} == {source}
    (rollback,) = agents[source].tasks()
    assert rollback["kind"] == "live_rollback"
    assert (
        rollback["payload"]["plug"][0]["device"]["address"] == before["binding:profile"]["pci_slot"]
    )
    agents[source].finish(rollback)
    assert migrations(api, tokens, uuid)[0]["status"] == "error"
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[source].run_all()
    assert leftovers(engine) == CLEAN


def test_a_failed_source_gives_the_destination_back(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, _, agents = two_port_server(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    assert live(api, tokens.admin, uuid).status_code == 202
    prepared(agents[dest])
    finish_one(agents[source], "live_source", "failed", "cannot unplug")
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", source)
    assert {h for h, _, _ in held(api, tokens, uuid)} == {source}
    finish_one(agents[dest], "live_cleanup")  # the disk it prepared goes
    # a destination that cannot prepare ends it the same way
    assert live(api, tokens.admin, uuid).status_code == 202
    finish_one(agents[dest], "live_prepare", "failed", "image disk format 'vhdx'")
    assert agents[source].tasks() == []
    assert {h for h, _, _ in held(api, tokens, uuid)} == {source}
    finish_one(agents[dest], "live_cleanup")
    assert [m["status"] for m in migrations(api, tokens, uuid)] == ["error", "error"]
    assert show(api, tokens.admin, uuid)["status"] == "ACTIVE"
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[source].run_all()
    assert leftovers(engine) == CLEAN


def test_a_delete_during_the_migration_frees_both_hosts(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, _, agents = two_port_server(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    assert live(api, tokens.admin, uuid).status_code == 202
    prepared(agents[dest])
    (task,) = agents[source].tasks()
    agents[source].finish(task, details={"domain_xml": XML})
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    for _ in range(2):
        for agent in agents.values():
            agent.run_all()
    assert leftovers(engine) == CLEAN


def test_live_migration_refusals(api: Api, tokens: Tokens, engine: Engine) -> None:
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    gpu = gpu_flavor(api, tokens)
    uuid = boot(api, tokens.demo, {**env, "flavor": gpu}, "none").json()["server"]["id"]
    for agent in agents.values():
        agent.run_all()
    source = host_of(api, tokens, uuid)
    # the gpu alias is not live_migratable
    message = compute_error(live(api, tokens.admin, uuid), 400, "badRequest")
    assert "gpu" in message and "live_migratable" in message
    assert compute_error(live(api, tokens.demo, uuid), 403, "forbidden")
    assert "current host" in compute_error(live(api, tokens.admin, uuid, source), 400, "badRequest")
    assert "compute9" in compute_error(live(api, tokens.admin, uuid, "compute9"), 400, "badRequest")
    bad = api.post(f"{COMPUTE}/servers/{uuid}/action", token=tokens.admin,
                   json={"os-migrateLive": {"host": None}}, headers=MV80)  # fmt: skip
    assert "block_migration" in compute_error(bad, 400, "badRequest")
    assert "force" in compute_error(live(api, tokens.admin, uuid, force=True), 400, "badRequest")
    # an alias marked live_migratable is let through; its spec then matches only
    # devices whose device spec is tagged so, and the sample hosts tag none
    with engine.begin() as conn:
        for row in conn.execute(select(InstancePciRequest).where(
                InstancePciRequest.instance_uuid == uuid)).all():  # fmt: skip
            specs = [{**spec, "live_migratable": "true"} for spec in row.specs]
            conn.execute(update(InstancePciRequest).where(InstancePciRequest.id == row.id)
                         .values(specs=specs))  # fmt: skip
    assert live(api, tokens.admin, uuid).status_code == 202
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", source)
    assert migrations(api, tokens, uuid)[0]["status"] == "error"  # no tagged GPU anywhere
    assert act(api, tokens.demo, uuid, {"os-stop": None}).status_code == 202
    agents[source].run_all()
    assert "vm_state stopped" in compute_error(
        live(api, tokens.admin, uuid), 409, "conflictingRequest"
    )
    assert show(api, tokens.admin, uuid)["status"] == "SHUTOFF"
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[source].run_all()
    assert leftovers(engine) == CLEAN


def test_an_end_going_down_ends_the_migration_on_the_source(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, direct, _, agents = two_port_server(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    before = port(api, tokens.admin, direct)
    # the destination goes down before it ran the guest: rolled back
    assert live(api, tokens.admin, uuid).status_code == 202
    prepared(agents[dest])
    (task,) = agents[source].tasks()
    agents[source].finish(task, details={"domain_xml": XML})
    host_down(engine, dest)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", source)
    assert port(api, tokens.admin, direct)["binding:profile"] == before["binding:profile"]
    assert {h for h, _, _ in held(api, tokens, uuid)} == {source}
    finish_one(agents[source], "live_rollback")
    host_up(engine, dest)
    # its live_dest was failed; what it may have made for the guest goes
    finish_one(agents[dest], "live_cleanup")
    assert agents[dest].tasks() == []
    # the destination goes down while it prepares: the migration ends there
    assert live(api, tokens.admin, uuid).status_code == 202
    host_down(engine, dest)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    assert {h for h, _, _ in held(api, tokens, uuid)} == {source}
    host_up(engine, dest)
    finish_one(agents[dest], "live_cleanup")
    # the source goes down before it sent the guest: the destination is freed
    assert live(api, tokens.admin, uuid).status_code == 202
    prepared(agents[dest])
    host_down(engine, source)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    assert show(api, tokens.admin, uuid)["status"] == "ACTIVE"
    assert {h for h, _, _ in held(api, tokens, uuid)} == {source}
    assert [m["status"] for m in migrations(api, tokens, uuid)] == ["error"] * 3
    finish_one(agents[dest], "live_cleanup")
    host_up(engine, source)
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    agents[source].run_all()
    assert leftovers(engine) == CLEAN
