"""The agent's dispatch, its orphan sweep and the controller's instance list,
with the xml driver and a stand-in controller."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from pcifleet.agent import Agent, AgentConfig, ControllerClient, ControllerError
from pcifleet.agent.agent import REPORT_DEFER_SECONDS, REPORT_TRIES
from pcifleet.agent.tasks import build, sweep_orphans
from pcifleet.virt import DomainNotFound, XmlDriver, server_domain_spec
from tests.agent.test_tasks import LOCAL, fake_image, host_disks, payload

OURS_KEPT = "00000000-0000-4000-8000-000000000001"
OURS_ORPHAN = "00000000-0000-4000-8000-000000000002"
BY_HAND = "00000000-0000-4000-8000-000000000003"
OURS_SUSPENDED_ORPHAN = "00000000-0000-4000-8000-000000000004"


class FakeController:
    """Records what the agent reports; answers the instance list as told."""

    def __init__(
        self, expected: set[str] | Exception | None = None, recorded: str | None = None
    ) -> None:
        self.expected = expected
        # what the controller says it recorded (None: what was reported)
        self.recorded = recorded
        self.results: list[tuple[int, str, str, dict[str, Any]]] = []
        self.batches: list[list[int]] = []  # task ids of each batched report
        self.instance_calls = 0
        self.power_reports: list[dict[str, str]] = []

    def report_result(
        self, task_id: int, state: str, message: str = "", details: dict[str, Any] | None = None
    ) -> str:
        self.results.append((task_id, state, message, details or {}))
        return self.recorded or state

    def report_results(
        self, results: list[tuple[int, str, str, dict[str, Any] | None]]
    ) -> list[str]:
        self.batches.append([r[0] for r in results])
        return [self.report_result(*r) for r in results]

    def expected_instances(self) -> set[str] | None:
        self.instance_calls += 1
        if isinstance(self.expected, Exception):
            raise self.expected
        return self.expected

    def report_power_states(self, domains: dict[str, str]) -> dict[str, Any]:
        self.power_reports.append(domains)
        return {"stopped": [], "stop_requested": [], "missing": [], "recorded": []}

    def close(self) -> None:
        pass


def host(tmp_path: Path) -> XmlDriver:
    driver = XmlDriver(tmp_path / "state")
    for uuid, managed in (
        (OURS_KEPT, True),
        (OURS_ORPHAN, True),
        (BY_HAND, False),
        (OURS_SUSPENDED_ORPHAN, True),
    ):
        driver.define(server_domain_spec(uuid, uuid[-1], 1, 512, "/images/x", managed=managed))
        driver.start(uuid)
    driver.suspend(OURS_SUSPENDED_ORPHAN)
    return driver


def agent(tmp_path: Path, controller: FakeController, **changes: Any) -> Agent:
    config = AgentConfig(
        controller="http://controller", host="h1", credential="x", driver="xml",
        state_dir=tmp_path / "state", **changes,
    )  # fmt: skip
    return Agent(config, [], client=controller, driver=XmlDriver(config.state_dir))  # type: ignore[arg-type]


def test_sweep_removes_only_managed_domains_the_controller_does_not_expect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    driver = host(tmp_path)
    with caplog.at_level(logging.WARNING):
        removed = sweep_orphans(driver, {OURS_KEPT.upper()}, host_disks(tmp_path))
    assert sorted(removed) == [OURS_ORPHAN, OURS_SUSPENDED_ORPHAN]
    assert sorted(d.uuid for d in driver.list()) == [OURS_KEPT, BY_HAND]
    assert driver.info(BY_HAND).running  # an operator's domain is never touched
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert OURS_ORPHAN in warned and OURS_SUSPENDED_ORPHAN in warned and BY_HAND not in warned
    assert sweep_orphans(driver, {OURS_KEPT}, host_disks(tmp_path)) == []


def test_the_agent_sweeps_after_its_first_report_and_then_each_interval(tmp_path: Path) -> None:
    host(tmp_path)
    controller = FakeController({OURS_KEPT, OURS_ORPHAN, OURS_SUSPENDED_ORPHAN})
    ag = agent(tmp_path, controller, sweep_interval=300.0)
    ag.maybe_sweep()
    assert controller.instance_calls == 0  # no inventory reported yet
    ag._last_report = 1.0
    ag.maybe_sweep()
    ag.maybe_sweep()  # not due again yet
    assert controller.instance_calls == 1
    controller.expected = {OURS_KEPT}
    assert ag._last_sweep is not None
    ag._last_sweep -= 301
    ag.maybe_sweep()
    assert controller.instance_calls == 2
    assert sorted(d.uuid for d in ag.driver.list()) == [OURS_KEPT, BY_HAND]


def test_a_sweep_reports_the_power_state_of_the_expected_domains_it_owns(
    tmp_path: Path,
) -> None:
    driver = host(tmp_path)
    other = "00000000-0000-4000-8000-000000000005"
    # Another agent's domain on the same libvirtd: expected by nobody here,
    # and neither removed nor reported.
    driver.define(server_domain_spec(other, "o", 1, 512, "/images/x", managed=True, owner="h2"))
    driver.start(other)
    mine = "00000000-0000-4000-8000-000000000006"
    driver.define(server_domain_spec(mine, "m", 1, 512, "/images/x", managed=True, owner="h1"))
    controller = FakeController({OURS_KEPT, OURS_SUSPENDED_ORPHAN, mine})
    ag = agent(tmp_path, controller)
    assert ag.sweep() == [OURS_ORPHAN]
    assert controller.power_reports == [
        {OURS_KEPT: "running", OURS_SUSPENDED_ORPHAN: "suspended", mine: "shutdown"}
    ]
    assert driver.info(other).running and driver.info(BY_HAND).running


def test_sweeps_of_agents_sharing_one_libvirtd_leave_each_others_domains(
    tmp_path: Path,
) -> None:
    driver = XmlDriver(tmp_path / "state")
    a, b = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
    for uuid, owner in ((a, "sim-1"), (b, "sim-2")):
        driver.define(server_domain_spec(uuid, "x", 1, 512, "/images/x", managed=True, owner=owner))
    assert driver.info(a).owner == "sim-1"
    assert sweep_orphans(driver, set(), host_disks(tmp_path), owner="sim-1") == [a]
    assert [d.uuid for d in driver.list()] == [b]


@pytest.mark.parametrize(
    "answer", [None, ControllerError("GET /hosts/h1/instances: 500 boom", 500)]
)
def test_an_older_or_failing_controller_means_no_sweep_and_no_crash(
    tmp_path: Path, answer: Any
) -> None:
    host(tmp_path)
    ag = agent(tmp_path, FakeController(answer))
    ag._last_report = 1.0
    ag.maybe_sweep()
    assert len(ag.driver.list()) == 4


def test_a_zero_interval_turns_the_sweep_off(tmp_path: Path) -> None:
    host(tmp_path)
    controller = FakeController(set())
    ag = agent(tmp_path, controller, sweep_interval=0.0)
    ag._last_report = 1.0
    ag.maybe_sweep()
    assert controller.instance_calls == 0
    assert len(ag.driver.list()) == 4


# -- dispatch ------------------------------------------------------------------------


def run(ag: Agent, kind: Any, body: Any) -> tuple[str, str, dict[str, Any]]:
    ag.run_task({"id": 7, "kind": kind, "payload": body})
    assert isinstance(ag.client, FakeController)
    _, state, message, details = ag.client.results[-1]
    return state, message, details


def test_power_and_console_tasks_through_the_agent(tmp_path: Path) -> None:
    host(tmp_path)
    ag = agent(tmp_path, FakeController())
    instance = {"uuid": OURS_KEPT, "name": "1"}
    assert run(ag, "power", {"instance": instance, "action": "pause"}) == (
        "done",
        "",
        {"power_state": "paused"},
    )
    state, message, details = run(ag, "power", {"instance": instance, "action": "suspend"})
    assert (state, details) == ("done", {"power_state": "suspended"})
    state, message, details = run(ag, "power", {"instance": instance, "action": "unpause"})
    assert state == "failed"
    assert message.startswith(f"power action unpause on server {OURS_KEPT} failed: ")
    assert details == {"power_state": "suspended"}
    state, _, details = run(ag, "console", {"instance": instance, "length": 1})
    assert state == "done" and details["output"].endswith("domain stopped\n")


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("power", {"instance": {"uuid": OURS_KEPT}, "action": "explode"}, "is not a power action"),
        ("power", {"instance": {"uuid": OURS_KEPT}, "action": "stop", "timeout": "x"}, "timeout"),
        ("console", {"instance": {"uuid": OURS_KEPT}, "length": -5}, "length: must be"),
        ("power", "not an object", "power: payload: must be a JSON object"),
        ("console", 42, "console: payload: must be a JSON object"),
        ("reboot", {}, "unknown task kind 'reboot'"),
        # A payload the models refuse fails cleanly, naming the field, not as a crash.
        ("delete", ["x"], "delete: payload: must be a JSON object"),
        ("build", {"instance": {"uuid": OURS_KEPT}, "ports": [{}]}, "build: ports[0].vnic_type"),
    ],
)
def test_hostile_tasks_fail_and_the_agent_carries_on(
    tmp_path: Path, kind: str, body: Any, message: str
) -> None:
    host(tmp_path)
    ag = agent(tmp_path, FakeController())
    state, got, _ = run(ag, kind, body)
    assert state == "failed"
    assert message in got
    assert ag.driver.info(OURS_KEPT).running


def test_a_handler_that_crashes_fails_its_task_and_the_agent_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host(tmp_path)
    ag = agent(tmp_path, FakeController())

    def boom(uuid: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ag.driver, "destroy", boom)
    state, got, _ = run(ag, "delete", {"instance": {"uuid": OURS_KEPT}})
    assert (state, got) == ("failed", "agent error in 'delete' task: RuntimeError: boom")
    assert ag.driver.info(OURS_KEPT).running


# -- build ---------------------------------------------------------------------------


def test_build_marks_the_domain_and_logs_its_console_in_console_dir(tmp_path: Path) -> None:
    driver = XmlDriver(tmp_path / "state")
    build(
        driver, payload(), LOCAL, fake_image(tmp_path), host_disks(tmp_path), tmp_path / "console"
    )
    uuid = payload()["instance"]["uuid"]
    info = driver.info(uuid)
    assert info.managed and info.running
    assert f'<log file="{tmp_path}/console/{uuid}.log" append="on"/>' in driver.get_xml(uuid)
    # ...so a sweep that does not expect it would remove it.
    assert sweep_orphans(driver, set(), host_disks(tmp_path)) == [uuid]
    with pytest.raises(DomainNotFound):
        driver.info(uuid)


def test_the_agent_builds_with_its_configured_console_dir(tmp_path: Path) -> None:
    ag = agent(tmp_path, FakeController(), console_dir_setting=tmp_path / "logs")
    ag.devices = dict(LOCAL)
    ag.fetch_image = fake_image(tmp_path)  # type: ignore[method-assign]
    assert run(ag, "build", payload())[0] == "done"
    uuid = payload()["instance"]["uuid"]
    assert f"{tmp_path}/logs/{uuid}.log" in ag.driver.get_xml(uuid)
    assert dataclasses.replace(ag.config, console_dir_setting=None).console_dir == (
        tmp_path / "state" / "console"
    )


# -- the controller's instance list ----------------------------------------------------


def client_answering(status: int, body: Any) -> ControllerClient:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/pcifleet/v1/hosts/h1/instances"
        return httpx.Response(status, content=json.dumps(body).encode())

    client = ControllerClient("http://controller", "h1", "secret")
    client._http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(answer))
    return client


def test_expected_instances_reads_the_list() -> None:
    client = client_answering(200, {"instances": [OURS_KEPT.upper(), OURS_ORPHAN]})
    assert client.expected_instances() == {OURS_KEPT, OURS_ORPHAN}


def test_expected_instances_is_none_from_an_older_controller() -> None:
    assert client_answering(404, {"detail": "Not Found"}).expected_instances() is None


@pytest.mark.parametrize("body", [{"instances": "all"}, {"servers": []}, [1], {"instances": [1]}])
def test_a_malformed_instance_list_is_an_error_not_an_empty_list(body: Any) -> None:
    with pytest.raises(ControllerError, match="expected"):
        client_answering(200, body).expected_instances()


def test_a_server_error_on_the_instance_list_is_raised() -> None:
    with pytest.raises(ControllerError) as excinfo:
        client_answering(500, {"errors": [{"detail": "boom"}]}).expected_instances()
    assert excinfo.value.status == 500


def test_a_build_the_controller_cancelled_meanwhile_is_removed(tmp_path: Path) -> None:
    """The server was deleted (or timed out) while the agent built it: the
    controller answers the report with "cancelled" and the domain goes."""
    ag = agent(tmp_path, FakeController(recorded="cancelled"))
    ag.devices = dict(LOCAL)
    ag.fetch_image = fake_image(tmp_path)  # type: ignore[method-assign]
    assert run(ag, "build", payload())[0] == "done"
    with pytest.raises(DomainNotFound):
        ag.driver.info(payload()["instance"]["uuid"])


def _result_client(statuses: list[int]) -> tuple[ControllerClient, list[int]]:
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        body = {"task": {"id": 7, "state": "done"}} if status == 200 else {"errors": []}
        return httpx.Response(status, content=json.dumps(body).encode())

    client = ControllerClient("http://controller", "h1", "secret")
    client._http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(answer))
    return client, seen


def test_a_result_is_retried_while_the_controller_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pcifleet.agent.client.RESULT_RETRY_DELAYS", (0.0, 0.0, 0.0))
    client, seen = _result_client([503, 503, 200])
    assert client.report_result(7, "done") == "done"
    assert seen == [503, 503, 200]
    client, seen = _result_client([503])
    with pytest.raises(ControllerError):
        client.report_result(7, "done")
    assert len(seen) == 4  # every try, then the error
    client, seen = _result_client([403])
    with pytest.raises(ControllerError):
        client.report_result(7, "done")
    assert seen == [403]  # a refusal is not retried


# -- disks in the sweep ------------------------------------------------------------------


def test_the_sweep_removes_the_disks_of_orphans_and_of_half_made_builds(tmp_path: Path) -> None:
    driver = host(tmp_path)
    disks = host_disks(tmp_path)
    image = tmp_path / "img.raw"
    image.write_bytes(b"\0" * 4096)
    crashed = "00000000-0000-4000-8000-000000000005"  # disk made, domain never defined
    for uuid in (OURS_KEPT, OURS_ORPHAN, BY_HAND, crashed):
        disks.create(uuid, image, "raw", 1)
    removed = sweep_orphans(driver, {OURS_KEPT}, disks)
    assert sorted(removed) == sorted([OURS_ORPHAN, OURS_SUSPENDED_ORPHAN, crashed])
    # The expected server's disk stays, and so does the disk of the operator's
    # domain: it is still defined and may be in use.
    assert disks.servers() == {OURS_KEPT, BY_HAND}


def test_a_cancelled_build_takes_its_disk_with_it(tmp_path: Path) -> None:
    ag = agent(tmp_path, FakeController(recorded="cancelled"))
    ag.devices = dict(LOCAL)
    ag.fetch_image = fake_image(tmp_path)  # type: ignore[method-assign]
    assert run(ag, "build", payload())[0] == "done"
    assert ag.disks.servers() == set()


def test_a_list_from_another_registration_of_the_host_is_not_swept(tmp_path: Path) -> None:
    """A controller now answering from another database (its host row made anew)
    sends a list that must not make the agent destroy what it runs."""
    controller = FakeController(expected=set())
    ag = agent(tmp_path, controller)
    host(tmp_path)
    controller.registration = "7@2026-11-01T00:00:00+00:00"  # type: ignore[attr-defined]
    assert ag.same_registration(controller.registration)  # type: ignore[attr-defined]
    controller.registration = "1@2026-11-27T13:00:00+00:00"  # type: ignore[attr-defined]
    assert ag.sweep() is None  # refused: every domain is still there
    assert len(ag.driver.list()) == 4
    (tmp_path / "state" / "controller-registration").unlink()  # the operator accepts it
    assert sorted(ag.sweep() or []) == [OURS_KEPT, OURS_ORPHAN, OURS_SUSPENDED_ORPHAN]


def test_expected_instances_keeps_the_registration() -> None:
    client = client_answering(200, {"instances": [], "registration": "3@2026-11-27"})
    assert client.expected_instances() == set()
    assert client.registration == "3@2026-11-27"


def test_a_started_agent_reports_with_the_controllers_generation(tmp_path: Path) -> None:
    """The first report carries the generation the controller has, so it is
    taken the first time instead of being refused as stale."""

    class Counting(FakeController):
        def __init__(self) -> None:
            super().__init__()
            self.bodies: list[dict[str, Any]] = []

        def report_inventory(self, body: dict[str, Any]) -> dict[str, Any]:
            self.bodies.append(dict(body))
            if body["generation"] != 4:
                raise ControllerError("POST /hosts/h1/inventory: 409 stale", 409)
            return {"generation": 5}

        def host_generation(self) -> int:
            return 4

    controller = Counting()
    ag = agent(tmp_path, controller, sysfs_root=tmp_path / "sys")
    (tmp_path / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
    ag.report_inventory()
    assert [b["generation"] for b in controller.bodies] == [4]
    assert ag.generation == 5


def test_a_stale_inventory_generation_is_resent_and_logged_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The 409 an agent gets when the controller changed the host is expected:
    not a warning."""

    class StaleOnce(FakeController):
        def __init__(self) -> None:
            super().__init__()
            self.bodies: list[dict[str, Any]] = []

        def report_inventory(self, body: dict[str, Any]) -> dict[str, Any]:
            self.bodies.append(dict(body))
            if len(self.bodies) == 1:
                raise ControllerError("POST /hosts/h1/inventory: 409 stale", 409)
            return {"generation": 8}

        def host_generation(self) -> int:
            return 7

    controller = StaleOnce()
    ag = agent(tmp_path, controller, sysfs_root=tmp_path / "sys")
    (tmp_path / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
    ag.generation = 6  # what it saw before the controller changed the host
    with caplog.at_level(logging.DEBUG, logger="pcifleet.agent"):
        ag.report_inventory()
    assert [b["generation"] for b in controller.bodies] == [6, 7]
    assert ag.generation == 8
    stale = [r for r in caplog.records if "stale" in r.getMessage()]
    assert stale and all(r.levelno == logging.DEBUG for r in stale)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_feeds_tasks_are_reported_in_one_batch(tmp_path: Path) -> None:
    """One report for the run of results; a cancelled build in it still goes."""
    host(tmp_path)
    controller = FakeController(recorded="cancelled")
    ag = agent(tmp_path, controller)
    ag.devices = dict(LOCAL)
    ag.fetch_image = fake_image(tmp_path)  # type: ignore[method-assign]
    instance = {"uuid": OURS_KEPT, "name": "1"}
    ag.run_tasks(
        [
            {"id": 1, "kind": "power", "payload": {"instance": instance, "action": "pause"}},
            {"id": 2, "kind": "build", "payload": payload()},
            {"id": 3, "kind": "no-such-kind", "payload": {}},
        ]
    )
    assert controller.batches == [[1, 2, 3]]
    assert [r[1] for r in controller.results] == ["done", "done", "failed"]
    with pytest.raises(DomainNotFound):
        ag.driver.info(payload()["instance"]["uuid"])


def test_a_batch_the_controller_does_not_take_is_reported_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pcifleet.agent.client.RESULT_RETRY_DELAYS", (0.0,))
    paths: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/results"):
            return httpx.Response(404, content=b'{"errors": []}')
        task_id = int(request.url.path.split("/")[-2])
        return httpx.Response(200, json={"task": {"id": task_id, "state": "done"}})

    client = ControllerClient("http://controller", "h1", "secret")
    client._http = httpx.Client(base_url="http://controller", transport=httpx.MockTransport(answer))
    assert client.report_results([(7, "done", "", None), (8, "failed", "x", None)]) == [
        "done",
        "done",
    ]
    assert paths == [
        "/pcifleet/v1/hosts/h1/results",
        "/pcifleet/v1/tasks/7/result",
        "/pcifleet/v1/tasks/8/result",
    ]


def test_a_report_refused_as_stale_every_time_waits_before_the_next_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a burst of claims every resend can be stale: the agent serves its
    tasks and tries again after a pause, not on every feed round."""

    class AlwaysStale(FakeController):
        def __init__(self) -> None:
            super().__init__(expected=set())
            self.reports = 0
            self.polls = 0

        def report_inventory(self, body: dict[str, Any]) -> dict[str, Any]:
            self.reports += 1
            raise ControllerError("POST /hosts/h1/inventory: 409 stale", 409)

        def host_generation(self) -> int:
            return 9

        def poll_tasks(self, wait: float, include_running: bool = False) -> list[Any]:
            self.polls += 1
            return []

    clock = [1000.0]
    monkeypatch.setattr("pcifleet.agent.agent.time.monotonic", lambda: clock[0])
    controller = AlwaysStale()
    ag = agent(tmp_path, controller, sysfs_root=tmp_path / "sys", report_interval=30.0)
    (tmp_path / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
    ag._last_report = clock[0] - 60  # a report is due
    ag.run_once()
    tried = controller.reports
    assert tried == REPORT_TRIES and controller.polls == 1
    clock[0] += REPORT_DEFER_SECONDS / 2
    ag.run_once()
    assert controller.reports == tried and controller.polls == 2  # tasks served, no report
    clock[0] += REPORT_DEFER_SECONDS
    ag.run_once()
    assert controller.reports == 2 * tried
