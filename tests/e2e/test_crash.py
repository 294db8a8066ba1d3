"""Crashes: ``kill -9`` of the controller in a burst of boots, and of an agent mid-build.

Whatever a kill leaves behind, a restart (with short timeouts) must bring every
server to ACTIVE or to ERROR with a fault, and deleting them must give every
device and port back.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from pcifleet.store.db import default_database_url, fresh_schema
from tests.system import unavailable

from .helpers import (
    COMPUTE,
    Api,
    admin_token,
    assert_nothing_leaked,
    host_credential,
    start_agent,
    start_up,
    stop,
    wait_for,
    wait_host_up,
)

pytestmark = pytest.mark.slow
BURST = 40
# Short enough that a restart settles everything within the test's bounds, long
# enough that a restart on a loaded machine does not time out builds its agents
# are about to finish. (A schedule job leased by the killed process waits for its
# lease, 120 s, so a server caught in scheduling ends in ERROR by this timeout.)
FAST = ("--build-timeout", "40", "--reconcile-interval", "1")


@contextmanager
def api_for(url: str, data_dir: Path) -> Iterator[Api]:
    api = Api(url, admin_token(url, data_dir))
    try:
        yield api
    finally:
        api.close()


def setup_boot(api: Api, physnet: str, vlan: int) -> dict[str, str]:
    return {
        "net": api.network(f"crash-{physnet}", physnet, vlan),
        "flavor": api.flavor("crash.small"),
        "image": api.image("crash-img"),
    }


def all_servers(api: Api) -> list[dict[str, Any]]:
    return list(api.req("GET", COMPUTE + "/servers/detail")["servers"])


def settled(server: dict[str, Any]) -> bool:
    """ACTIVE, or ERROR with a fault that says why, and nothing in flight."""
    if server.get("OS-EXT-STS:task_state") is not None:
        return False
    if server["status"] == "ACTIVE":
        return True
    return server["status"] == "ERROR" and bool((server.get("fault") or {}).get("message"))


def delete_all_and_check(api: Api) -> None:
    servers = all_servers(api)
    for s in servers:
        api.req("DELETE", f"{COMPUTE}/servers/{s['id']}", (204,))
    wait_for("every server deleted", lambda: not all_servers(api), 60)
    # The reconciler frees what no live server holds; give it a few passes.
    wait_for("no leak", lambda: _no_leak(api), 20)
    assert_nothing_leaked(api)


def _no_leak(api: Api) -> bool:
    try:
        assert_nothing_leaked(api)
    except AssertionError:
        return False
    return True


def boot_burst(
    api: Api, ids: dict[str, str], ports: list[str], up: subprocess.Popen[bytes], kill_after: int
) -> set[str]:
    """Fire one boot per port at once; ``kill -9`` the controller once ``kill_after``
    have been answered. The ids of the boots that were answered."""

    def boot(i: int) -> str:
        return api.boot(f"burst-{i}", ids["flavor"], ids["image"], ports[i])

    accepted: set[str] = set()
    with ThreadPoolExecutor(BURST) as pool:
        futures: list[Future[str]] = [pool.submit(boot, i) for i in range(len(ports))]
        wait_for(
            "the first boots answered",
            lambda: sum(f.done() for f in futures) >= kill_after,
            60,
            every=0.002,
        )
        stop(up, kill=True)
        for f in futures:
            # A boot cut off by the kill raises: its server may or may not exist.
            with suppress(Exception):
                accepted.add(f.result(timeout=90))
    return accepted


def check_controller_killed_in_a_burst(tmp_path: Path, kill_after: int, *extra: str) -> None:
    data = tmp_path / "data"
    up, url = start_up(data, *FAST, *extra, hosts=2)
    try:
        with api_for(url, data) as api:
            ids = setup_boot(api, "physnet1", 310)
            ports = [api.direct_port(ids["net"], f"burst-port-{i}") for i in range(BURST)]
            accepted = boot_burst(api, ids, ports, up, kill_after)
        assert accepted, "no boot was answered before the kill"
        assert len(accepted) < BURST, "the kill came after every boot was answered"

        up, url = start_up(data, *FAST, *extra, hosts=2)
        started = time.monotonic()
        with api_for(url, data) as api:

            def all_settled() -> list[dict[str, Any]] | None:
                servers = all_servers(api)
                return servers if servers and all(settled(s) for s in servers) else None

            servers = wait_for("every server ACTIVE or ERROR with a fault", all_settled, 60)
            took = time.monotonic() - started
            assert accepted <= {s["id"] for s in servers}, "an answered boot was lost"
            active = sum(s["status"] == "ACTIVE" for s in servers)
            faults = {s["fault"]["message"][:120] for s in servers if s["status"] == "ERROR"}
            print(
                f"burst: {len(accepted)} answered, {len(servers)} servers, {active} ACTIVE, "
                f"settled {took:.1f} s after the restart; faults: {faults}"
            )
            delete_all_and_check(api)
    finally:
        stop(up, kill=True)


def test_controller_killed_in_a_burst_of_boots_sqlite(tmp_path: Path) -> None:
    # SQLite has one writer: boots are answered one by one, a third in is mid-burst.
    check_controller_killed_in_a_burst(tmp_path, BURST // 3)


def test_controller_killed_in_a_burst_of_boots_postgresql(tmp_path: Path) -> None:
    base = os.environ.get("PCIFLEET_TEST_PG_URL")
    if not base:
        unavailable("PostgreSQL: set PCIFLEET_TEST_PG_URL to run the crash test on PostgreSQL")
    with fresh_schema(base, prefix="crash_") as url:
        # PostgreSQL answers the whole burst in well under a second: kill early.
        check_controller_killed_in_a_burst(tmp_path, 3, "--database", url)


def task_state(db_file: Path, server_id: str) -> str | None:
    """The state of the server's build task, read from the SQLite file (read-only:
    asking the API for the host's tasks would take them)."""
    with closing(sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute(
            "SELECT state FROM tasks WHERE instance_uuid = ? AND kind = 'build'", (server_id,)
        ).fetchone()
    return None if row is None else str(row[0])


def boot_and_kill_agent(
    api: Api, ids: dict[str, str], name: str, agent: subprocess.Popen[bytes], db_file: Path
) -> str:
    """Boot a server and ``kill -9`` the agent once it has taken the build task but
    before it could report: the agent is stopped (SIGSTOP) inside its long poll, so
    the task the controller hands it is taken and never run."""
    os.kill(agent.pid, signal.SIGSTOP)
    try:
        sid = api.boot(name, ids["flavor"], ids["image"], api.direct_port(ids["net"], name))
        wait_for("the build task taken", lambda: task_state(db_file, sid) == "running", 30)
        server = api.server(sid)
        assert server is not None
        assert server["status"] == "BUILD" and server["OS-EXT-STS:task_state"] == "spawning"
    finally:
        stop(agent, kill=True)
    return sid


def test_agent_killed_mid_build(tmp_path: Path) -> None:
    data = tmp_path / "data"
    work = tmp_path / "edge-1"
    work.mkdir()
    db_file = Path(default_database_url(data).removeprefix("sqlite:///"))
    up, url = start_up(data, "--build-timeout", "20", "--reconcile-interval", "1", hosts=0)
    agent = None
    try:
        with api_for(url, data) as api:
            credential = host_credential(api, "edge-1")
            agent = start_agent(url, work, "edge-1", credential, "--driver", "xml")
            wait_host_up(api, "edge-1")
            ids = setup_boot(api, "physnet1", 320)

            # Restarted, the agent asks for the tasks it was running and finishes the build.
            first = boot_and_kill_agent(api, ids, "agent-crash-1", agent, db_file)
            agent = start_agent(url, work, "edge-1", credential, "--driver", "xml")
            shown = api.wait_status(first, "ACTIVE", "ERROR", timeout=30)
            assert shown["status"] == "ACTIVE", shown.get("fault")

            # Not restarted: the build times out and the server says so.
            second = boot_and_kill_agent(api, ids, "agent-crash-2", agent, db_file)
            shown = api.wait_status(second, "ACTIVE", "ERROR", timeout=45)
            assert shown["status"] == "ERROR"
            assert "timed out" in shown["fault"]["message"], shown["fault"]
            assert task_state(db_file, second) != "running"
            assert api.server(first)["status"] == "ACTIVE"  # type: ignore[index]

            # The agent back: deletes run on it, and nothing is left.
            agent = start_agent(url, work, "edge-1", credential, "--driver", "xml")
            delete_all_and_check(api)
            domains = work / "state" / "domains"
            wait_for("domains removed", lambda: not list(domains.glob("*.xml")), 20)
    finally:
        stop(agent, kill=True)
        stop(up, kill=True)
