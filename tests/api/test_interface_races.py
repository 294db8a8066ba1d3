"""Interface attach and detach racing a delete under real concurrency (threads
calling the compute layer with their own sessions), on SQLite and PostgreSQL
(``PCIFLEET_TEST_PG_URL``): a delete against step 1 (the server taking the
port), against step 2 (the VF claim with the bind and the agent task in its
transaction), against the agent's report, and a detach against a delete. Each
ends in one outcome: no device held twice, the port bound at most to a live
server, and once the agents have reported nothing held or bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.compute import jobs
from pcifleet.compute.errors import ApiError
from pcifleet.compute.interfaces import Attaching, begin_attach, request_detach, send_attach
from pcifleet.compute.results import apply_result
from pcifleet.compute.worker import run_job
from pcifleet.store.cloud import Port
from pcifleet.store.models import Instance, Task
from tests.api.conftest import Tokens, make_settings
from tests.api.helpers import Api, create_port
from tests.api.test_lifecycle import CLEAN, leftovers
from tests.api.test_move_races import (
    ADMIN,
    ROUNDS,
    _delete,
    _drain,
    _held_twice,
    race,
    race_env,  # noqa: F401  (the fixture, on SQLite and PostgreSQL)
)
from tests.api.test_moves import two_hosts
from tests.api.test_servers import boot, boot_env, show


def _begin(engine: Engine, uuid: str, port_id: str) -> Attaching:
    with Session(engine) as session, session.begin():
        return begin_attach(session, ADMIN, uuid, port_id=port_id, request_id="req-att",
                            host_down_after=60)  # fmt: skip


def _attach(engine: Engine, uuid: str, port_id: str) -> int | None:
    return send_attach(engine, _begin(engine, uuid, port_id))


def _detach(engine: Engine, uuid: str, port_id: str) -> int:
    with Session(engine) as session, session.begin():
        return request_detach(session, ADMIN, uuid, port_id, request_id="req-det",
                              host_down_after=60)  # fmt: skip


def _report(engine: Engine, uuid: str, kind: str) -> None:
    """The agent's report of the server's ``kind`` task, as the task route applies it."""
    with Session(engine) as session, session.begin():
        task = session.scalar(
            select(Task).where(
                Task.instance_uuid == uuid,
                Task.kind == kind,
                Task.state.in_(("pending", "running")),
            )
        )
        if task is None:
            return  # cancelled by the delete
        task.state = "done"
        task.result = {"message": "", "details": {}}
        apply_result(session, task, True, "", {})


def _port_bound_to_the_dead(engine: Engine, port_id: str) -> bool:
    with Session(engine) as session:
        port = session.get(Port, port_id)
        assert port is not None
        if not port.device_id:
            return False
        server = session.get(Instance, port.device_id)
        return server is None or server.vm_state == "deleted"


@pytest.mark.parametrize("story", ["delete_vs_take", "delete_vs_claim", "delete_vs_report",
                                   "detach_vs_delete"])  # fmt: skip
def test_interface_changes_race_a_delete_to_one_outcome(
    race_env: tuple[Api, Tokens, Engine],  # noqa: F811
    story: str,
) -> None:
    api, tokens, engine = race_env
    env = boot_env(api, tokens)
    agents = two_hosts(api, tokens)
    config = make_settings(str(engine.url), Path(".")).compute_config()
    for _ in range(ROUNDS):
        first = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
        extra = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
        uuid = boot(api, tokens.demo, env, [{"port": first["id"]}]).json()["server"]["id"]
        for job in jobs.take(engine, "boot", limit=10):
            run_job(engine, job, config)
        _drain(agents)
        assert show(api, tokens.demo, uuid)["status"] == "ACTIVE"
        out = _one_round(engine, uuid, extra["id"], story)
        assert all(o is None or isinstance(o, int | ApiError) for o in out), out
        assert _held_twice(engine) == 0
        _drain(agents)
        assert not _port_bound_to_the_dead(engine, extra["id"]), story
        if api.get(f"/compute/v2.1/servers/{uuid}", token=tokens.admin).status_code == 200:
            _delete(engine, uuid)
            _drain(agents)
        assert leftovers(engine) == CLEAN, story


def _one_round(engine: Engine, uuid: str, port_id: str, story: str) -> list[Any]:
    if story == "delete_vs_take":
        return race(lambda: _attach(engine, uuid, port_id), lambda: _delete(engine, uuid))
    if story == "delete_vs_claim":
        attaching = _begin(engine, uuid, port_id)
        return race(lambda: send_attach(engine, attaching), lambda: _delete(engine, uuid))
    if story == "delete_vs_report":
        _attach(engine, uuid, port_id)
        return race(lambda: _report(engine, uuid, "attach_interface"),
                    lambda: _delete(engine, uuid))  # fmt: skip
    _attach(engine, uuid, port_id)
    _report(engine, uuid, "attach_interface")
    return race(lambda: _detach(engine, uuid, port_id), lambda: _delete(engine, uuid))
