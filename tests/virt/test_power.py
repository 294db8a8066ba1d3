"""Power actions and console output, run against both drivers: ``xml`` (files)
and ``libvirt`` (libvirt-python on test:///default).

What test:///default can and cannot show, checked by hand against libvirt's
test driver: create, destroy, shutdown, suspend/resume (vCPUs), managedSave
(and create restoring it), managedSaveRemove and undefine with
VIR_DOMAIN_UNDEFINE_MANAGED_SAVE all work. Its guest always obeys the ACPI power
button at once, so a guest that ignores it is simulated below by a domain whose
shutdown() does nothing. It never reaches the crashed or pmsuspended states
(those mappings are tested with a stand-in domain), and it writes no console log
(the tests write the file the domain XML names, as qemu would).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from pcifleet.virt import (
    DomainNotFound,
    DomainStateError,
    InvalidVirtSpec,
    LibvirtDriver,
    PowerState,
    UnsupportedOperation,
    VirtDriver,
    XmlDriver,
)
from tests.virt.conftest import fresh_test_host
from tests.virt.shapes import agent_built, docs_example

P = PowerState
OTHER_UUID = "11111111-2222-4333-8444-555555555555"
UUID = docs_example().uuid


def defined(driver: VirtDriver, state: PowerState = P.SHUTDOWN) -> str:
    """Define the docs example and bring it to ``state`` through the driver's own calls."""
    driver.define(docs_example())
    if state is not P.SHUTDOWN:
        driver.start(UUID)
    if state is P.PAUSED:
        driver.pause(UUID)
    elif state is P.SUSPENDED:
        driver.suspend(UUID)
    assert driver.power_state(UUID) is state
    return UUID


def test_a_defined_domain_is_shut_down_and_info_carries_the_state(driver: VirtDriver) -> None:
    uuid = defined(driver)
    info = driver.info(uuid)
    assert (info.power_state, info.running, info.state) == (P.SHUTDOWN, False, "shut off")
    driver.start(uuid)
    info = driver.info(uuid)
    assert (info.power_state, info.running, info.state) == (P.RUNNING, True, "running")


def test_only_domains_with_the_pcifleet_mark_are_managed(driver: VirtDriver) -> None:
    driver.define(agent_built())
    assert driver.info(UUID).managed
    driver.define(dataclasses.replace(docs_example(), uuid=OTHER_UUID, name="by-hand"))
    assert not driver.info(OTHER_UUID).managed
    managed = {d.uuid for d in driver.list() if d.managed}
    assert managed == {UUID}


def test_pause_and_unpause(driver: VirtDriver) -> None:
    uuid = defined(driver, P.RUNNING)
    driver.pause(uuid)
    assert driver.power_state(uuid) is P.PAUSED
    assert driver.info(uuid).running  # still active: only its vCPUs are stopped
    with pytest.raises(DomainStateError, match=r"cannot pause domain .*: it is paused"):
        driver.pause(uuid)
    with pytest.raises(DomainStateError, match="already running"):
        driver.start(uuid)
    driver.unpause(uuid)
    assert driver.power_state(uuid) is P.RUNNING
    with pytest.raises(DomainStateError, match="unpause needs paused"):
        driver.unpause(uuid)


def test_pause_on_a_shut_off_domain_says_why(driver: VirtDriver) -> None:
    uuid = defined(driver)
    with pytest.raises(DomainStateError) as excinfo:
        driver.pause(uuid)
    assert str(excinfo.value) == (
        f"cannot pause domain {uuid}: it is shutdown (pause needs running)"
    )
    assert driver.power_state(uuid) is P.SHUTDOWN


@pytest.mark.parametrize("start_from", [P.RUNNING, P.PAUSED])
def test_suspend_then_resume_runs_again(driver: VirtDriver, start_from: PowerState) -> None:
    uuid = defined(driver, start_from)
    driver.suspend(uuid)
    assert driver.power_state(uuid) is P.SUSPENDED
    assert not driver.info(uuid).running
    with pytest.raises(DomainStateError, match="it is suspended"):
        driver.suspend(uuid)
    with pytest.raises(DomainStateError, match="it is suspended"):
        driver.pause(uuid)
    driver.resume(uuid)
    assert driver.power_state(uuid) is P.RUNNING
    with pytest.raises(DomainStateError, match="resume needs suspended"):
        driver.resume(uuid)


def test_start_restores_a_suspended_domain(driver: VirtDriver) -> None:
    uuid = defined(driver, P.SUSPENDED)
    driver.start(uuid)
    assert driver.power_state(uuid) is P.RUNNING


def test_suspend_and_resume_refuse_a_shut_off_domain(driver: VirtDriver) -> None:
    uuid = defined(driver)
    with pytest.raises(DomainStateError, match="suspend needs running or paused"):
        driver.suspend(uuid)
    with pytest.raises(DomainStateError, match="resume needs suspended"):
        driver.resume(uuid)


@pytest.mark.parametrize("start_from", [P.RUNNING, P.PAUSED])
@pytest.mark.parametrize("timeout", [0, 5])
def test_stop_shuts_off_and_a_second_stop_does_nothing(
    driver: VirtDriver, start_from: PowerState, timeout: int
) -> None:
    uuid = defined(driver, start_from)
    driver.stop(uuid, timeout=timeout)
    assert driver.power_state(uuid) is P.SHUTDOWN
    driver.stop(uuid, timeout=timeout)
    assert driver.power_state(uuid) is P.SHUTDOWN


def test_stop_refuses_to_throw_away_a_suspended_domain(driver: VirtDriver) -> None:
    uuid = defined(driver, P.SUSPENDED)
    with pytest.raises(DomainStateError, match=r"cannot stop domain .*: it is suspended"):
        driver.stop(uuid)
    assert driver.power_state(uuid) is P.SUSPENDED


def test_soft_reboot_needs_a_running_guest(driver: VirtDriver) -> None:
    uuid = defined(driver, P.RUNNING)
    driver.reboot(uuid, hard=False, timeout=5)
    assert driver.power_state(uuid) is P.RUNNING
    driver.pause(uuid)
    with pytest.raises(DomainStateError, match="soft reboot needs running"):
        driver.reboot(uuid, hard=False)
    driver.stop(uuid)
    with pytest.raises(DomainStateError, match="it is shutdown"):
        driver.reboot(uuid, hard=False)


@pytest.mark.parametrize("start_from", [P.RUNNING, P.PAUSED, P.SHUTDOWN, P.SUSPENDED])
def test_hard_reboot_from_any_state_ends_running(
    driver: VirtDriver, start_from: PowerState
) -> None:
    uuid = defined(driver, start_from)
    driver.reboot(uuid, hard=True)
    assert driver.power_state(uuid) is P.RUNNING
    # A power cycle boots afresh: no saved image is left to restore later.
    driver.stop(uuid, timeout=0)
    assert driver.power_state(uuid) is P.SHUTDOWN


def test_a_suspended_domain_can_be_undefined(driver: VirtDriver) -> None:
    uuid = defined(driver, P.SUSPENDED)
    driver.destroy(uuid)  # nothing runs: the saved image is left alone
    assert driver.power_state(uuid) is P.SUSPENDED
    driver.undefine(uuid)
    with pytest.raises(DomainNotFound):
        driver.power_state(uuid)


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.power_state(OTHER_UUID),
        lambda d: d.stop(OTHER_UUID, 1),
        lambda d: d.reboot(OTHER_UUID, hard=False),
        lambda d: d.reboot(OTHER_UUID, hard=True),
        lambda d: d.pause(OTHER_UUID),
        lambda d: d.unpause(OTHER_UUID),
        lambda d: d.suspend(OTHER_UUID),
        lambda d: d.resume(OTHER_UUID),
        lambda d: d.console_output(OTHER_UUID, None),
    ],
)
def test_power_calls_on_an_unknown_domain(driver: VirtDriver, call: Any) -> None:
    with pytest.raises(DomainNotFound):
        call(driver)


@pytest.mark.parametrize("timeout", [-1, "60", None, float("nan"), True])
def test_a_bad_timeout_is_refused_before_anything_happens(driver: VirtDriver, timeout: Any) -> None:
    uuid = defined(driver, P.RUNNING)
    with pytest.raises(InvalidVirtSpec, match="timeout"):
        driver.stop(uuid, timeout)
    with pytest.raises(InvalidVirtSpec, match="timeout"):
        driver.reboot(uuid, hard=False, timeout=timeout)
    assert driver.power_state(uuid) is P.RUNNING


@pytest.mark.parametrize("length", [-1, 2.5, "10", True])
def test_a_bad_console_length_is_refused(driver: VirtDriver, length: Any) -> None:
    uuid = defined(driver)
    with pytest.raises(InvalidVirtSpec, match="length"):
        driver.console_output(uuid, length)


# -- console output -------------------------------------------------------------------


def test_xml_driver_console_tells_each_power_change(tmp_path: Path) -> None:
    driver = XmlDriver(tmp_path)
    uuid = defined(driver)
    assert driver.console_output(uuid) == ""  # never powered on: nothing printed
    driver.start(uuid)
    driver.pause(uuid)
    driver.unpause(uuid)
    driver.reboot(uuid, hard=False)
    driver.stop(uuid)
    lines = driver.console_output(uuid).splitlines()
    assert all(" pcifleet xml driver: " in line for line in lines)
    events = [line.split("pcifleet xml driver: ", 1)[1] for line in lines]
    assert events == [
        "domain started",
        "domain paused (vCPUs stopped)",
        "domain resumed (vCPUs running)",
        "ACPI reboot requested",
        "guest rebooted",
        "ACPI power button pressed",
        "guest shut down cleanly",
    ]
    assert driver.console_output(uuid, 2).splitlines() == lines[-2:]
    assert driver.console_output(uuid, 0) == ""
    assert driver.console_output(uuid, 1000).splitlines() == lines


@pytest.fixture
def lv(libvirt_module: Any) -> Any:
    fresh_test_host()
    drv = LibvirtDriver("test:///default")
    assert [d.name for d in drv.list()] == ["test"]
    yield drv
    drv.close()


def test_libvirt_console_reads_the_log_file_the_domain_names(
    lv: LibvirtDriver, tmp_path: Path
) -> None:
    log = tmp_path / "console.log"
    lv.define(dataclasses.replace(agent_built(), console_log=str(log)))
    assert lv.console_output(UUID) == ""  # not written yet: no output, as in Nova
    log.write_bytes(b"SeaBIOS\nbooting\nlogin: \xff\n")
    assert lv.console_output(UUID) == "SeaBIOS\nbooting\nlogin: \ufffd\n"
    assert lv.console_output(UUID, 1) == "login: \ufffd\n"


def test_libvirt_console_without_a_log_file_is_unsupported(lv: LibvirtDriver) -> None:
    uuid = defined(lv)
    with pytest.raises(UnsupportedOperation, match="does not log its serial console"):
        lv.console_output(uuid)


# -- a guest that ignores the power button (libvirt) -----------------------------------


class DeafGuest:
    """A libvirt domain whose guest ignores ACPI: shutdown() is accepted, nothing happens."""

    def __init__(self, dom: Any) -> None:
        self._dom = dom
        self.shutdowns = 0

    def shutdown(self) -> int:
        self.shutdowns += 1
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dom, name)


@pytest.fixture
def deaf(lv: LibvirtDriver, monkeypatch: pytest.MonkeyPatch) -> DeafGuest:
    defined(lv, P.RUNNING)
    guest = DeafGuest(lv.conn.lookupByUUIDString(UUID))
    monkeypatch.setattr(lv, "_lookup", lambda uuid: guest)
    return guest


def test_stop_powers_off_a_guest_that_ignores_acpi_after_the_timeout(
    lv: LibvirtDriver, deaf: DeafGuest
) -> None:
    began = time.monotonic()
    lv.stop(UUID, timeout=0.3)
    assert time.monotonic() - began >= 0.3
    assert deaf.shutdowns == 1
    assert lv.power_state(UUID) is P.SHUTDOWN


def test_soft_reboot_goes_hard_when_the_guest_ignores_acpi(
    lv: LibvirtDriver, deaf: DeafGuest
) -> None:
    lv.reboot(UUID, hard=False, timeout=0.2)
    assert deaf.shutdowns == 1
    assert lv.power_state(UUID) is P.RUNNING


def test_stop_with_no_timeout_does_not_ask_the_guest(lv: LibvirtDriver, deaf: DeafGuest) -> None:
    lv.stop(UUID, timeout=0)
    assert deaf.shutdowns == 0
    assert lv.power_state(UUID) is P.SHUTDOWN


# -- libvirt states test:///default never reaches -------------------------------------


class StandIn:
    def __init__(self, state: int, saved: bool = False) -> None:
        self._state, self._saved = state, saved

    def state(self) -> list[int]:
        return [self._state, 0]

    def hasManagedSaveImage(self, flags: int) -> int:
        return int(self._saved)

    def UUIDString(self) -> str:
        return UUID


@pytest.mark.parametrize(
    ("name", "saved", "expected"),
    [
        ("VIR_DOMAIN_NOSTATE", False, P.NOSTATE),
        ("VIR_DOMAIN_RUNNING", False, P.RUNNING),
        ("VIR_DOMAIN_BLOCKED", False, P.RUNNING),
        ("VIR_DOMAIN_PAUSED", False, P.PAUSED),
        ("VIR_DOMAIN_SHUTDOWN", False, P.RUNNING),
        ("VIR_DOMAIN_SHUTOFF", False, P.SHUTDOWN),
        ("VIR_DOMAIN_SHUTOFF", True, P.SUSPENDED),
        ("VIR_DOMAIN_CRASHED", False, P.CRASHED),
        ("VIR_DOMAIN_PMSUSPENDED", False, P.SUSPENDED),
    ],
)
def test_libvirt_states_map_to_power_states(
    lv: LibvirtDriver, libvirt_module: Any, name: str, saved: bool, expected: PowerState
) -> None:
    assert lv._state(StandIn(getattr(libvirt_module, name), saved)) is expected


def test_libvirt_console_log_that_cannot_be_read_says_why(
    lv: LibvirtDriver, tmp_path: Path
) -> None:
    log = tmp_path / "console.log"
    log.mkdir()  # a directory where the log should be: readable by nobody as a file
    lv.define(dataclasses.replace(agent_built(), console_log=str(log)))
    with pytest.raises(UnsupportedOperation, match=r"console\.log of domain .* cannot be read"):
        lv.console_output(UUID)
