"""The durable lifecycle: a boot and a delete interleaved at every step, crash
leftovers the reconciler repairs, agent reports that repeat or fail halfway,
hosts that go away. Each story ends by checking that nothing leaked: no
server came back, every device is free again, no port keeps a binding.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from pcifleet.compute import jobs
from pcifleet.compute.config import ComputeConfig
from pcifleet.compute.placement import launch, place
from pcifleet.compute.reconciler import reconcile
from pcifleet.store.cloud import Port
from pcifleet.store.models import Host, Instance, Job, PciDeviceRow, Task, utcnow
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens, in_process_client
from tests.api.helpers import COMPUTE, Api, compute_error, create_port
from tests.api.test_servers import MV, boot, boot_env, show

StepFn = Callable[[], None]


def leftovers(engine: Engine) -> dict[str, int]:
    """What a fleet with no live servers must not hold."""
    with Session(engine) as session:
        live = session.scalar(
            select(func.count()).select_from(Instance).where(Instance.vm_state != "deleted")
        )
        held = session.scalar(
            select(func.count())
            .select_from(PciDeviceRow)
            .where(PciDeviceRow.status.in_(("claimed", "allocated")))
        )
        bound = session.scalar(
            select(func.count())
            .select_from(Port)
            .where((Port.device_id != "") | (Port.binding_host_id != ""))
        )
        free = sum(p["count"] for h in session.scalars(select(Host)) for p in h.pci_stats)
        total = sum(p["total"] for h in session.scalars(select(Host)) for p in h.pci_stats)
    return {"live": live or 0, "held": held or 0, "bound": bound or 0, "missing": total - free}


CLEAN = {"live": 0, "held": 0, "bound": 0, "missing": 0}


@pytest.fixture
def stepping_app(settings: ApiSettings, engine: Engine) -> FastAPI:
    """The API with jobs left queued, so a test runs each boot step itself."""
    settings.run_jobs_inline = False
    return create_app(settings, engine)


@pytest.fixture
def stepping_api(stepping_app: FastAPI) -> Any:
    with in_process_client(stepping_app) as api:
        yield api


def _only_job(engine: Engine) -> jobs.Job:
    (job,) = jobs.take(engine, "test")
    return job


# --- a boot and a delete, interleaved at each step -------------------------------

STEPS = ("queued", "placed", "launched", "agent_took_build", "built")


@pytest.mark.parametrize("delete_after", STEPS)
def test_delete_interleaved_with_each_boot_step(
    stepping_api: Api, tokens: Tokens, engine: Engine, delete_after: str
) -> None:
    api = stepping_api
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert resp.status_code == 202, resp.text
    uuid = resp.json()["server"]["id"]
    job = _only_job(engine)
    build_tasks: list[dict[str, Any]] = []

    def place_step() -> None:
        place(engine, uuid)

    def launch_step() -> None:
        with Session(engine) as session, session.begin():
            launch(session, uuid, frozenset())
            assert jobs.finish(session, job)

    def take_step() -> None:
        build_tasks.extend(t for t in agent.tasks() if t["kind"] == "build")

    def build_step() -> None:
        for task in build_tasks:
            agent.finish(task)

    steps: list[tuple[str, StepFn]] = [
        ("placed", place_step),
        ("launched", launch_step),
        ("agent_took_build", take_step),
        ("built", build_step),
    ]
    done = "queued"
    for name, step in [("queued", lambda: None), *steps]:
        step()
        done = name
        if done == delete_after:
            assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
            # a second delete while the first is under way changes nothing
            second = api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo)
            assert second.status_code in (204, 404)
    # The rest of the boot runs after the delete: each step must now do nothing
    # harmful, and the agent's delete (if one was asked) finishes the job.
    for task in agent.tasks():
        agent.finish(task)
    resp = api.get(f"{COMPUTE}/servers/{uuid}", token=tokens.demo, headers=MV)
    assert resp.status_code == 404, f"deleted after {delete_after}, came back: {resp.text}"
    assert leftovers(engine) == CLEAN
    # and a boot that was still to be placed never places a deleted server
    assert place(engine, uuid) == ""


def test_delete_before_the_claim_commits_rolls_the_claim_back(
    stepping_api: Api, tokens: Tokens, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete lands while the scheduler is choosing (after it read the server,
    before its claim's transaction): the claim's guarded state change fails,
    so nothing is claimed."""
    api = stepping_api
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    from pcifleet import scheduler

    real = scheduler.select_and_claim

    def delete_first(*args: Any, **kwargs: Any) -> Any:
        assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
        return real(*args, **kwargs)

    monkeypatch.setattr(scheduler, "select_and_claim", delete_first)
    assert place(engine, uuid) == ""
    assert leftovers(engine) == CLEAN


# --- agent reports ------------------------------------------------------------------


def test_repeated_and_contradicting_reports_change_nothing(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    (task,) = agent.tasks()
    assert agent.finish(task)["state"] == "done"
    assert agent.finish(task)["state"] == "done"  # the same report again: 200
    assert agent.finish(task, "failed", "late")["state"] == "done"  # recorded outcome wins
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"


def test_a_result_whose_effect_fails_is_not_recorded(
    api: Api, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task and its effect commit together: when applying fails, the task
    stays running and the agent's retry completes the build."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    (task,) = agent.tasks()
    from pcifleet.api.routes import pcifleet_v1

    real = pcifleet_v1.apply_result
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(pcifleet_v1, "apply_result", flaky)
    resp = api.post(
        f"/pcifleet/v1/tasks/{task['id']}/result", json={"state": "done"}, headers=agent.headers
    )
    # the failure answered in pcifleet's error body, with the request id
    assert resp.status_code == 500
    assert resp.json()["errors"][0]["code"] == "pcifleet.internal_server_error"
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert show(api, tokens.demo, uuid)["status"] == "BUILD"
    assert agent.finish(task)["state"] == "done"
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"


# --- hosts that go away -----------------------------------------------------------


def _host_down(engine: Engine, host: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Host)
            .where(Host.name == host)
            .values(last_report_at=utcnow() - timedelta(hours=1))
        )


def test_delete_on_a_down_host_is_local_and_the_agent_learns_it(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    agent.run_all()
    _host_down(engine, "compute1")
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    compute_error(api.get(f"{COMPUTE}/servers/{uuid}", token=tokens.demo), 404, "itemNotFound")
    assert leftovers(engine) == CLEAN
    # back up, the agent is told which servers it should still have: none
    resp = api.get("/pcifleet/v1/hosts/compute1/instances", headers=agent.headers)
    assert resp.status_code == 200 and resp.json()["instances"] == []


def test_force_delete_of_a_server_stuck_deleting(api: Api, tokens: Tokens, engine: Engine) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    agent.run_all()
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] == "deleting"
    resp = api.post(
        f"{COMPUTE}/servers/{uuid}/action", token=tokens.demo, json={"forceDelete": None}
    )
    assert resp.status_code == 202, resp.text
    compute_error(api.get(f"{COMPUTE}/servers/{uuid}", token=tokens.demo), 404, "itemNotFound")
    assert leftovers(engine) == CLEAN
    # the agent still gets its delete task, and reporting it is harmless
    agent.run_all()
    assert leftovers(engine) == CLEAN


# --- the reconciler -----------------------------------------------------------------


def _config(**kw: Any) -> ComputeConfig:
    return ComputeConfig(reconcile_interval=0, **kw)


def test_reconciler_reschedules_a_server_whose_job_was_lost(
    stepping_api: Api, tokens: Tokens, engine: Engine
) -> None:
    api = stepping_api
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    with engine.begin() as conn:
        conn.execute(delete(Job))
        conn.execute(
            update(Instance)
            .where(Instance.uuid == uuid)
            .values(created_at=utcnow() - timedelta(minutes=5))
        )
    report = reconcile(engine, _config())
    assert report.counts.get("reservations rescheduled") == 1
    from pcifleet.compute.worker import run_job

    run_job(engine, _only_job(engine), _config())
    agent.run_all()
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"


def test_reconciler_times_out_a_build_and_frees_its_claim(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    (task,) = agent.tasks()  # the agent takes the build, then dies
    with engine.begin() as conn:
        conn.execute(
            update(Instance)
            .where(Instance.uuid == uuid)
            .values(created_at=utcnow() - timedelta(hours=1))
        )
    report = reconcile(engine, _config(build_timeout=60))
    assert report.counts.get("builds timed out") == 1
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ERROR" and "timed out" in server["fault"]["message"]
    # the dead agent's late report changes nothing
    assert agent.finish(task)["state"] == "cancelled"
    assert show(api, tokens.admin, uuid)["status"] == "ERROR"
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    assert leftovers(engine) == CLEAN


def test_reconciler_hands_an_expired_task_out_again_then_fails_it(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]

    def expire() -> None:
        with engine.begin() as conn:
            conn.execute(update(Task).values(leased_until=utcnow() - timedelta(seconds=1)))

    config = _config(task_attempts=2)
    assert len(agent.tasks()) == 1
    expire()
    assert reconcile(engine, config).counts.get("tasks handed out again") == 1
    assert len(agent.tasks()) == 1  # the second hand-out
    expire()
    assert reconcile(engine, config).counts.get("tasks failed (lease)") == 1
    server = show(api, tokens.admin, uuid)
    assert server["status"] == "ERROR" and "did not finish" in server["fault"]["message"]
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    assert leftovers(engine) == CLEAN


def test_reconciler_frees_claims_and_bindings_of_servers_that_are_gone(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    uuid = boot(api, tokens.demo, env, [{"port": p["id"]}]).json()["server"]["id"]
    agent.run_all()
    # what a crash in an older version could leave: a deleted server still
    # holding its VF and its port's binding
    with engine.begin() as conn:
        conn.execute(
            update(Instance)
            .where(Instance.uuid == uuid)
            .values(vm_state="deleted", status="DELETED", task_state=None)
        )
    assert leftovers(engine)["held"] == 1
    report = reconcile(engine, _config())
    assert report.counts.get("leaked claims freed") == 1
    assert report.counts.get("stale port bindings cleared") == 1
    assert leftovers(engine) == CLEAN
    assert not reconcile(engine, _config()).changed  # a second pass finds nothing


def test_a_job_taken_over_after_its_lease_launches_once(
    stepping_api: Api, tokens: Tokens, engine: Engine
) -> None:
    """A worker that stalls past its lease and the worker that took the job over
    both run it: the server is launched once, and the stalled worker's
    transaction is rolled back when it finds the job no longer its own."""
    from pcifleet.compute.placement import run_schedule

    api = stepping_api
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    (stalled,) = jobs.take(engine, "worker-a", lease_seconds=0)
    (current,) = jobs.take(engine, "worker-b")
    assert current.id == stalled.id and current.attempts == 2
    run_schedule(engine, current)
    with pytest.raises(jobs.LeaseLost):
        run_schedule(engine, stalled)
    builds = [t for t in agent.tasks() if t["kind"] == "build"]
    assert len(builds) == 1 and builds[0]["instance_uuid"] == uuid
    agent.finish(builds[0])
    assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"


def test_jobs_of_a_dead_process_are_taken_back_at_once(
    stepping_api: Api, tokens: Tokens, engine: Engine
) -> None:
    """A controller killed mid-job and started again does not wait out the
    lease of its former self's jobs; another live process's jobs are left."""
    api = stepping_api
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    boot(api, tokens.demo, env, "none")
    boot(api, tokens.demo, env, "none")
    dead, live = jobs.take(engine, "here:111:1", limit=1) + jobs.take(engine, "here:222:1", limit=1)
    assert jobs.take(engine, "other") == []  # both leased
    freed = jobs.release_dead_owners(engine, "here", alive=lambda pid: pid == 222)
    assert freed == 1
    (again,) = jobs.take(engine, "other")
    assert again.id == dead.id and again.id != live.id


def test_a_restarted_controller_gives_builds_a_whole_timeout_again(
    api: Api, tokens: Tokens, engine: Engine
) -> None:
    """The time a controller was down is not held against the servers it left
    building: a timeout counts from the later of creation and the restart."""
    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    with engine.begin() as conn:
        conn.execute(
            update(Instance)
            .where(Instance.uuid == uuid)
            .values(created_at=utcnow() - timedelta(hours=1))
        )
    config = _config(build_timeout=60)
    just_started = utcnow() - timedelta(seconds=5)
    assert not reconcile(engine, config, running_since=just_started).counts.get("builds timed out")
    assert show(api, tokens.demo, uuid)["status"] == "BUILD"
    long_ago = utcnow() - timedelta(minutes=5)
    assert reconcile(engine, config, running_since=long_ago).counts.get("builds timed out") == 1


def test_a_delete_that_loses_its_swap_twice_still_deletes(
    api: Api, tokens: Tokens, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found under load with two API processes on PostgreSQL: a delete that read
    the server just before a launch and again just before the agent's report
    lost both swaps and answered 204 while the server stayed ACTIVE. Each lost
    swap is now read again, until the delete lands."""
    import dataclasses

    from pcifleet.compute import delete as delete_module
    from pcifleet.compute.states import TaskState, VmState
    from pcifleet.compute.transitions import load as real_load

    env = boot_env(api, tokens)
    agent = FakeAgent(api, tokens.admin, "compute1")
    agent.report()
    uuid = boot(api, tokens.demo, env, "none").json()["server"]["id"]
    agent.run_all()
    stale = {"left": 2}

    def load_behind(bind: Any, server: str) -> Any:
        seen = real_load(bind, server)
        if seen is not None and stale["left"]:
            stale["left"] -= 1  # what it was a moment ago: still building
            return dataclasses.replace(
                seen, vm_state=VmState.BUILDING, task_state=TaskState.SPAWNING
            )
        return seen

    monkeypatch.setattr(delete_module, "load", load_behind)
    assert api.delete(f"{COMPUTE}/servers/{uuid}", token=tokens.demo).status_code == 204
    assert stale["left"] == 0
    assert show(api, tokens.demo, uuid)["OS-EXT-STS:task_state"] == "deleting"
    agent.run_all()
    assert leftovers(engine) == CLEAN
