"""Moves a host left behind, ended by the reconciler: the host a step waits on
went down, or the step's task is gone. Each story ends with the server in a
stable state (never resize_*), the destination's claim freed and the ports
bound where the server is."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, update

from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.reconciler import reconcile
from pcifleet.compute.release import tell_scheduler
from pcifleet.store.models import Host, Instance, Migration, Task, utcnow
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_moves import act, active_on_sriov, finish_one, held, host_of, migrations
from tests.api.test_servers import port, show


def host_down(engine: Engine, host: str, *, ago: timedelta = timedelta(hours=1)) -> None:
    with engine.begin() as conn:
        conn.execute(update(Host).where(Host.name == host).values(last_report_at=utcnow() - ago))


def host_up(engine: Engine, host: str) -> None:
    """The agent reports again (its heartbeat, without a new inventory); the
    scheduler learns it at once, as it does of an inventory report."""
    host_down(engine, host, ago=timedelta(0))
    tell_scheduler(engine, host)


def config() -> ComputeConfig:
    return ComputeConfig(reconcile_interval=0)


def settle(api: Api, tokens: Tokens, engine: Engine, uuid: str, agents: dict[str, Any]) -> None:
    """Delete the server and let every agent report: nothing may stay held."""
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    for host, agent in agents.items():
        host_up(engine, host)
        agent.run_all()
    reconcile(engine, config())
    assert leftovers(engine) == CLEAN


def test_a_source_down_before_it_stops_ends_the_move_on_the_source(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    before = port(api, tokens.admin, port_id)
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    host_down(engine, source)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
    assert server["OS-EXT-SRV-ATTR:host"] == source
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    after = port(api, tokens.admin, port_id)
    assert after["binding:profile"] == before["binding:profile"]
    assert migrations(api, tokens, uuid)[0]["status"] == "error"
    # the source is back: its stop task is void, the domain stays expected
    host_up(engine, source)
    assert agents[source].tasks() == []
    listed = api.get(f"/pcifleet/v1/hosts/{source}/instances", headers=agents[source].headers)
    assert uuid in listed.json()["instances"]
    assert not reconcile(engine, config()).counts.get("lost moves ended")
    settle(api, tokens, engine, uuid, agents)


def test_a_destination_down_before_it_builds_leaves_an_error_on_the_source(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    before = port(api, tokens.admin, port_id)
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    finish_one(agents[source], "move_source")
    host_down(engine, dest)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ERROR", source)
    assert dest in server["fault"]["message"] and "down" in server["fault"]["message"]
    after = port(api, tokens.admin, port_id)
    assert (after["binding:host_id"], after["binding:profile"]) == (
        source,
        before["binding:profile"],
    )
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    # back up, the destination is not asked to build and does not keep the server
    host_up(engine, dest)
    assert agents[dest].tasks() == []
    listed = api.get(f"/pcifleet/v1/hosts/{dest}/instances", headers=agents[dest].headers)
    assert uuid not in listed.json()["instances"]
    settle(api, tokens, engine, uuid, agents)


def test_a_revert_goes_on_without_a_destination_that_is_down(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, port_id, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    dest = next(h for h in agents if h != source)
    before = port(api, tokens.admin, port_id)
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    finish_one(agents[source], "move_source")
    finish_one(agents[dest], "move_dest")
    assert act(api, tokens.demo, uuid, {"revertResize": None}).status_code == 202
    host_down(engine, dest)
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    finish_one(agents[source], "revert_source")
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", source)
    assert port(api, tokens.admin, port_id)["binding:profile"] == before["binding:profile"]
    host_up(engine, dest)
    assert agents[dest].tasks() == []  # its revert_dest was failed; the sweep removes the domain
    listed = api.get(f"/pcifleet/v1/hosts/{dest}/instances", headers=agents[dest].headers)
    assert uuid not in listed.json()["instances"]
    settle(api, tokens, engine, uuid, agents)


def test_a_move_whose_task_is_gone_ends_after_a_lease(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    finish_one(agents[source], "move_source")
    with engine.begin() as conn:
        conn.execute(update(Task).where(Task.instance_uuid == uuid, Task.kind == "move_dest")
                     .values(state="cancelled"))  # fmt: skip
    assert not reconcile(engine, config()).counts.get("lost moves ended")  # not still long enough
    with engine.begin() as conn:
        conn.execute(update(Instance).where(Instance.uuid == uuid)
                     .values(updated_at=utcnow() - timedelta(hours=1)))  # fmt: skip
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-SRV-ATTR:host"]) == ("ERROR", source)
    assert [h for h, _, _ in held(api, tokens, uuid)] == [source]
    settle(api, tokens, engine, uuid, agents)


def test_a_move_whose_job_is_gone_ends_with_nothing_claimed(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    uuid, _, agents, _ = active_on_sriov(api, tokens)
    source = host_of(api, tokens, uuid)
    # a move asked for whose job was lost: put the server back to resize_prep
    assert act(api, tokens.admin, uuid, {"migrate": None}).status_code == 202
    finish_one(agents[source], "move_source")
    dest = next(h for h in agents if h != source)
    finish_one(agents[dest], "move_dest")
    assert act(api, tokens.demo, uuid, {"confirmResize": None}).status_code == 204
    agents[source].run_all()
    long_ago = utcnow() - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(update(Instance).where(Instance.uuid == uuid).values(
            task_state="resize_prep", status="RESIZE", updated_at=long_ago))  # fmt: skip
        conn.execute(update(Migration).where(Migration.instance_uuid == uuid)
                     .values(status="pre-migrating"))  # fmt: skip
    assert reconcile(engine, config()).counts.get("lost moves ended") == 1
    server = show(api, tokens.admin, uuid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("ACTIVE", None)
    assert [h for h, _, _ in held(api, tokens, uuid)] == [dest]
    settle(api, tokens, engine, uuid, agents)
