"""The power and console tasks with the xml driver: the contract the controller uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pcifleet.agent.actions import ACTIONS, MAX_OUTPUT_BYTES, console, newest, power
from pcifleet.agent.tasks import TaskFailed
from pcifleet.virt import PowerState, XmlDriver, server_domain_spec

UUID = "6f1c8d2e-4b7a-4c3e-9d5f-0a1b2c3d4e5f"
UNKNOWN = "11111111-2222-4333-8444-555555555555"
P = PowerState


@pytest.fixture
def driver(tmp_path: Path) -> XmlDriver:
    drv = XmlDriver(tmp_path / "state")
    drv.define(server_domain_spec(UUID, "vm-1", 1, 512, "/images/x.raw", managed=True))
    return drv


def task(action: str, **extra: Any) -> dict[str, Any]:
    return {"instance": {"uuid": UUID, "name": "vm-1"}, "action": action, **extra}


def at(driver: XmlDriver, state: PowerState) -> None:
    """Bring the domain to ``state`` by the driver's own calls."""
    if state is not P.SHUTDOWN:
        driver.start(UUID)
    if state is P.PAUSED:
        driver.pause(UUID)
    if state is P.SUSPENDED:
        driver.suspend(UUID)


@pytest.mark.parametrize(
    ("action", "start_from", "ends"),
    [
        ("start", P.SHUTDOWN, P.RUNNING),
        ("start", P.SUSPENDED, P.RUNNING),
        ("stop", P.RUNNING, P.SHUTDOWN),
        ("stop", P.PAUSED, P.SHUTDOWN),
        ("reboot_soft", P.RUNNING, P.RUNNING),
        ("reboot_hard", P.PAUSED, P.RUNNING),
        ("reboot_hard", P.SHUTDOWN, P.RUNNING),
        ("pause", P.RUNNING, P.PAUSED),
        ("unpause", P.PAUSED, P.RUNNING),
        ("suspend", P.RUNNING, P.SUSPENDED),
        ("suspend", P.PAUSED, P.SUSPENDED),
        ("resume", P.SUSPENDED, P.RUNNING),
    ],
)
def test_each_action_reports_the_state_it_leaves(
    driver: XmlDriver, action: str, start_from: PowerState, ends: PowerState
) -> None:
    at(driver, start_from)
    assert power(driver, task(action, timeout=5)) == {"power_state": ends.value}
    assert driver.power_state(UUID) is ends


@pytest.mark.parametrize(
    ("action", "state"),
    [
        ("start", P.RUNNING),
        ("stop", P.SHUTDOWN),
        ("pause", P.PAUSED),
        ("unpause", P.RUNNING),
        ("suspend", P.SUSPENDED),
        ("resume", P.RUNNING),
    ],
)
def test_a_task_handed_out_again_is_done_without_touching_the_domain(
    driver: XmlDriver, action: str, state: PowerState
) -> None:
    at(driver, state)
    console_before = driver.console_output(UUID)
    assert power(driver, task(action)) == {"power_state": state.value}
    assert power(driver, task(action)) == {"power_state": state.value}
    assert driver.power_state(UUID) is state
    assert driver.console_output(UUID) == console_before  # nothing happened to it


def test_a_refused_action_names_itself_and_why_and_gives_the_state_now(
    driver: XmlDriver,
) -> None:
    with pytest.raises(TaskFailed) as excinfo:
        power(driver, task("pause"))
    assert str(excinfo.value) == (
        f"power action pause on server {UUID} failed: "
        f"cannot pause domain {UUID}: it is shutdown (pause needs running)"
    )
    assert excinfo.value.details == {"power_state": "shutdown"}


def test_an_unknown_server_fails_without_a_power_state(driver: XmlDriver) -> None:
    payload = task("start")
    payload["instance"]["uuid"] = UNKNOWN
    with pytest.raises(TaskFailed, match=f"power action start on server {UNKNOWN} failed: no dom"):
        power(driver, payload)
    try:
        power(driver, payload)
    except TaskFailed as exc:
        assert exc.details == {}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            task("hibernate"),
            "power: action: 'hibernate' is not a power action; known: start, stop, reboot_soft",
        ),
        (task(None), "action: None is not a power action"),  # type: ignore[arg-type]
        (task("stop", timeout="60"), "timeout: must be a number of seconds, got '60'"),
        (task("stop", timeout=True), "timeout: must be a number of seconds, got True"),
        (task("stop", timeout=-1), r"timeout: must be 0\.\.600 seconds, got -1"),
        (task("stop", timeout=10**9), r"timeout: must be 0\.\.600 seconds"),
        ({"action": "stop"}, "power: instance: is required"),
        ({"instance": "x", "action": "stop"}, "power: instance: must be a JSON object"),
        ({"instance": {"uuid": "../../etc"}, "action": "stop"}, "instance.uuid: '../../etc'"),
        (["stop"], "power: payload: must be a JSON object"),
    ],
)
def test_hostile_power_payloads_fail_with_a_clear_message(
    driver: XmlDriver, payload: Any, message: str
) -> None:
    with pytest.raises(TaskFailed, match=message):
        power(driver, payload)
    assert driver.power_state(UUID) is P.SHUTDOWN


def test_the_timeout_defaults_when_absent_or_null(driver: XmlDriver) -> None:
    at(driver, P.RUNNING)
    assert power(driver, task("stop", timeout=None)) == {"power_state": "shutdown"}
    assert set(ACTIONS) == {
        "start",
        "stop",
        "reboot_soft",
        "reboot_hard",
        "pause",
        "unpause",
        "suspend",
        "resume",
    }


# -- console ------------------------------------------------------------------------


def test_console_returns_the_last_lines(driver: XmlDriver) -> None:
    at(driver, P.PAUSED)
    out = console(driver, {"instance": {"uuid": UUID}, "length": 1})["output"]
    assert out.endswith("pcifleet xml driver: domain paused (vCPUs stopped)\n")
    assert out.count("\n") == 1
    full = console(driver, {"instance": {"uuid": UUID}, "length": None})["output"]
    assert full.count("\n") == 2 and "domain started" in full


@pytest.mark.parametrize("length", [-1, "5", 2.5, True])
def test_console_refuses_a_bad_length(driver: XmlDriver, length: Any) -> None:
    with pytest.raises(TaskFailed, match="console: length: must be a whole number"):
        console(driver, {"instance": {"uuid": UUID}, "length": length})


def test_console_of_an_unknown_server_fails(driver: XmlDriver) -> None:
    with pytest.raises(TaskFailed, match=f"console output of server {UNKNOWN}: no domain"):
        console(driver, {"instance": {"uuid": UNKNOWN}, "length": None})


def test_console_output_is_cut_to_its_newest_512_kib(driver: XmlDriver) -> None:
    at(driver, P.RUNNING)
    log = driver.console_log_path(UUID)
    with log.open("a", encoding="utf-8") as f:
        f.write("OLDEST\n")
        for i in range(12_000):
            f.write(f"line {i:05d} {'é' * 40}\n")  # multi-byte, to cut inside a character
        f.write("NEWEST\n")
    out = console(driver, {"instance": {"uuid": UUID}, "length": None})["output"]
    assert len(out.encode("utf-8")) <= MAX_OUTPUT_BYTES
    assert out.endswith("NEWEST\n") and "OLDEST" not in out
    assert out.startswith("line ")  # whole lines only


def test_newest_keeps_short_text_and_cuts_on_a_line() -> None:
    assert newest("a\nb\n", 100) == "a\nb\n"
    assert newest("aaaa\nbb\n", 5) == "bb\n"
    assert newest("€€€", 4) == "€"  # no half character
