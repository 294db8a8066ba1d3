"""The agent's main loop: report inventory, long-poll tasks, run them, report back.

The controller is the source of truth; the agent keeps no state of its own beyond
the domains its driver defines, so a restarted agent picks up where it stopped
(tasks it had been handed but not finished are handed out again).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcifleet.agent.actions import console, power
from pcifleet.agent.bridges import HostNetworking, LinuxBridges, NoHostNetworking
from pcifleet.agent.client import ControllerClient, ControllerError, DiskCorrupt, ImageCorrupt
from pcifleet.agent.config import AgentConfig
from pcifleet.agent.disks import Disks, disks_for
from pcifleet.agent.errors import TaskFailed
from pcifleet.agent.interfaces import attach_interface, detach_interface
from pcifleet.agent.live import HostFiles, live_dest, live_prepare, live_rollback, live_source
from pcifleet.agent.moves import move_source
from pcifleet.agent.tasks import build, delete, parse, rebuild_in_place, sweep_orphans
from pcifleet.host import (
    Inventory,
    classify_inventory,
    read_nodedev_dir,
    read_sysfs,
)
from pcifleet.host.numa import read_numa_topology
from pcifleet.pci import DeviceSpec, PciAddress, PciDevice
from pcifleet.virt import VirtDriver, VirtDriverError, get_driver
from pcifleet.virt.tasks import (
    BuildTask,
    ConsoleTask,
    DeleteTask,
    InstanceRef,
    MoveDisk,
    PowerTask,
    TaskImage,
)

log = logging.getLogger(__name__)
# Backoff when the controller cannot be reached: short first, then capped.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0)
# Results sent in one call at most, and the longest the first of them waits.
RESULT_BATCH = 64
# Inventory reports sent with a fresh generation before giving up for this round.
REPORT_TRIES = 4
# After a round of reports all refused as stale (a burst of claims on this
# host), the next try waits this long: re-reading sysfs and resending on every
# feed round cost more CPU, on both sides, than the tasks themselves.
REPORT_DEFER_SECONDS = 5.0
RESULT_BATCH_SECONDS = 0.25


@dataclass(frozen=True)
class TaskOutcome:
    """How one task of the feed ended, to report to the controller."""

    task: dict[str, Any]
    state: str
    message: str = ""
    details: dict[str, Any] | None = None

    @property
    def task_id(self) -> int:
        return int(self.task["id"])

    @property
    def kind(self) -> object:
        return self.task.get("kind")

    @property
    def payload(self) -> Any:
        return self.task.get("payload") or {}


def host_memory_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _networking(config: AgentConfig) -> HostNetworking:
    if not config.plug_bridges:
        return NoHostNetworking()
    return LinuxBridges(dict(config.physical_interface_mappings))


class Agent:
    """One host's agent. ``run()`` blocks until ``stop()``."""

    def __init__(
        self,
        config: AgentConfig,
        specs: list[DeviceSpec],
        client: ControllerClient | None = None,
        driver: VirtDriver | None = None,
        disks: Disks | None = None,
        networking: HostNetworking | None = None,
    ) -> None:
        self.config = config
        self.specs = specs
        self.client = client or ControllerClient(config.controller, config.host, config.credential)
        self.driver = driver or get_driver(config.driver, **config.driver_options())
        # Each server's overlay disk lives in <state_dir>/disks (see agent.disks).
        self.disks = disks or disks_for(config.state_dir, config.driver)
        self.networking = networking or _networking(config)
        self.generation: int | None = None
        self.devices: dict[PciAddress, PciDevice] = {}
        self._stop = threading.Event()
        self._last_report: float | None = None
        self._report_deferred_until = 0.0
        self._last_sweep: float | None = None

    # --- inventory -------------------------------------------------------------

    def read_inventory(self) -> Inventory:
        if self.config.nodedev_xml is not None:
            return read_nodedev_dir(self.config.nodedev_xml)
        return read_sysfs(self.config.sysfs_root)

    def report_inventory(self) -> dict[str, Any]:
        """Send the whole classified inventory with the generation last seen; when the
        controller says it is stale (or the agent has just started), read it and resend."""
        inventory = self.read_inventory()
        for warning in inventory.warnings:
            log.warning("%s: %s", self.config.host, warning)
        report = classify_inventory(inventory, self.specs)
        self.devices = inventory.by_address()
        devices = [
            {"device": c.device.to_dict(), "tags": c.tags} for c in report.classified if c.matched
        ]
        topology, numa_warnings = read_numa_topology(self.config.sysfs_root)
        for warning in numa_warnings:
            log.warning("%s: %s", self.config.host, warning)
        body: dict[str, Any] = {
            "generation": self.generation,
            "vcpus": self.config.vcpus or os.cpu_count() or 1,
            "memory_mb": self.config.memory_mb or host_memory_mb(),
            "devices": devices,
        }
        if topology.cells:
            body["numa_topology"] = topology.to_json()
        if body["generation"] is None:
            # Just started: ask the generation (a short read) rather than send the
            # whole inventory only to be told it is stale.
            body["generation"] = self.client.host_generation()
        for attempt in range(REPORT_TRIES):
            try:
                result = self.client.report_inventory(body)
                break
            except ControllerError as exc:
                if exc.status != 409 or attempt == REPORT_TRIES - 1:
                    raise
                # Expected after a start or when the controller changed the host
                # (every claim on it does): the generation we sent is stale, so
                # read it and send again.
                log.debug("%s: inventory generation stale (%s); resending", self.config.host, exc)
                body["generation"] = self.client.host_generation()
        self.generation = int(result["generation"])
        self._last_report = time.monotonic()
        log.info(
            "%s: reported %d devices (generation %s)",
            self.config.host,
            len(devices),
            self.generation,
        )
        return result

    # --- tasks -----------------------------------------------------------------

    def fetch_image(self, image_id: str, expect: TaskImage | None = None) -> tuple[Path, str]:
        """The cached image (downloaded and checked once per host) and its format."""
        try:
            return self.client.download_image(image_id, self.config.image_cache / image_id, expect)
        except ImageCorrupt as exc:
            raise TaskFailed(f"{exc}; the download was deleted") from None

    def fetch_move_disk(self, disk: MoveDisk, directory: Path) -> Path:
        """A cold move's disk from the controller, checked, in a temporary file."""
        try:
            return self.client.download_move_disk(disk, directory)
        except DiskCorrupt as exc:
            raise TaskFailed(f"{exc}; the download was deleted") from None

    def _host_files(self) -> HostFiles:
        return HostFiles(
            self.fetch_image,
            self.disks,
            self.config.console_dir,
            self.networking,
            self.config.owner,
            self.config.live_migration_inbound_addr,
        )

    def handle(self, kind: object, payload: Any) -> dict[str, Any]:
        """Run one task's work; its details, or ``TaskFailed``.

        The payload is read into its task model first, so a malformed one fails
        the task naming the field before anything touches the host.
        """
        # move_dest: a moved server's new domain; rebuild: an evacuated one's;
        # rebuild_in_place: Nova's rebuild, a fresh disk where the server is
        if kind in ("build", "move_dest", "rebuild", "rebuild_in_place"):
            run = rebuild_in_place if kind == "rebuild_in_place" else build
            return run(
                self.driver,
                parse("build", BuildTask, payload),
                self.devices,
                self.fetch_image,
                self.disks,
                self.config.console_dir,
                self.networking,
                self.config.owner,
                self.config.veth_vfs,
                self.fetch_move_disk,
            )
        if kind == "delete":
            return delete(self.driver, parse("delete", DeleteTask, payload), self.disks)
        if kind == "power":
            return power(self.driver, parse("power", PowerTask, payload))
        if kind == "console":
            return console(self.driver, parse("console", ConsoleTask, payload))
        if kind == "move_source":  # a cold move stops the source and hands its disk over
            return move_source(self.driver, payload, self.disks, self.client.upload_move_disk)
        if kind == "revert_source":  # a reverted move starts the source again
            return power(self.driver, parse("power", PowerTask, payload))
        if kind in ("revert_dest", "confirm_source"):  # the end of a move left behind
            return delete(self.driver, parse("delete", DeleteTask, payload), self.disks)
        if kind == "live_prepare":
            return live_prepare(payload, self.devices, self._host_files())
        if kind == "live_source":
            return live_source(self.driver, payload, self.devices, self.config.live_migration_uri)
        if kind == "live_dest":
            return live_dest(self.driver, payload, self.devices, self.disks)
        if kind == "live_rollback":
            return live_rollback(self.driver, payload, self.devices)
        if kind == "live_cleanup":  # the source's domain after a live migration
            return delete(self.driver, parse("delete", DeleteTask, payload), self.disks)
        if kind == "attach_interface":
            return attach_interface(
                self.driver, payload, self.devices, self.networking, self.config.veth_vfs
            )
        if kind == "detach_interface":
            return detach_interface(self.driver, payload, self.devices, self.config.veth_vfs)
        raise TaskFailed(f"unknown task kind {kind!r:.100}")

    def outcome(self, task: dict[str, Any]) -> TaskOutcome:
        """Run one task; how it ended, to report."""
        kind, payload = task.get("kind"), task.get("payload") or {}
        task_id = int(task["id"])
        try:
            details = self.handle(kind, payload)
        except TaskFailed as exc:
            log.warning("%s: task %s (%s) failed: %s", self.config.host, task_id, kind, exc)
            return TaskOutcome(task, "failed", str(exc), exc.details)
        except ControllerError as exc:
            return TaskOutcome(task, "failed", f"controller: {exc}")
        except Exception as exc:
            # A payload no handler foresaw must fail its task, not stop the agent.
            log.exception("%s: task %s (%s) crashed", self.config.host, task_id, kind)
            message = f"agent error in {kind!r:.100} task: {type(exc).__name__}: {exc}"
            return TaskOutcome(task, "failed", message)
        log.info("%s: task %s (%s) done", self.config.host, task_id, kind)
        return TaskOutcome(task, "done", "", details)

    def run_task(self, task: dict[str, Any]) -> None:
        """Run one task and report it on its own."""
        done = self.outcome(task)
        recorded = self.client.report_result(done.task_id, done.state, done.message, done.details)
        self.after_report(done, recorded)

    def run_tasks(self, tasks: list[dict[str, Any]]) -> None:
        """Run a feed's tasks in order, reporting their results in batches: one
        call (and one transaction on the controller) for a run of results,
        sent when ``RESULT_BATCH`` are waiting or the oldest has waited
        ``RESULT_BATCH_SECONDS``, so a long run does not hold early results back."""
        waiting: list[TaskOutcome] = []
        since = 0.0
        for task in tasks:
            if not waiting:
                since = time.monotonic()
            waiting.append(self.outcome(task))
            if len(waiting) >= RESULT_BATCH or time.monotonic() - since >= RESULT_BATCH_SECONDS:
                self._report(waiting)
                waiting = []
        if waiting:
            self._report(waiting)

    def _report(self, outcomes: list[TaskOutcome]) -> None:
        recorded = self.client.report_results(
            [(o.task_id, o.state, o.message, o.details) for o in outcomes]
        )
        for done, state in zip(outcomes, recorded, strict=True):
            self.after_report(done, state)

    def after_report(self, done: TaskOutcome, recorded: str) -> None:
        if done.kind == "build" and done.state == "done" and recorded == "cancelled":
            # The server was deleted or timed out while we built it: the domain
            # we made is nobody's, and its devices are already given back.
            instance = BuildTask.from_dict(done.payload).instance  # it parsed for the build
            log.warning(
                "%s: build of %s was cancelled; removing its domain",
                self.config.host,
                instance.uuid,
            )
            try:
                delete(
                    self.driver, DeleteTask(InstanceRef(instance.uuid, instance.name)), self.disks
                )
            except TaskFailed as exc:
                log.warning("%s: could not remove %s: %s", self.config.host, instance.uuid, exc)

    # --- orphan sweep ----------------------------------------------------------

    def sweep(self) -> list[str] | None:
        """Bring this host and the controller in step: remove pcifleet domains the
        controller does not expect here, then report the power state of those it
        does (it marks a server whose guest went off SHUTOFF, and so on; see
        ``pcifleet.compute.power_sync``). What was removed, or None when the
        controller offers no list (an older one).

        Run when the agent starts, this is how it takes back the domains it ran
        before: the ones the controller knows stay as they are, in the state
        they are in; the ones deleted meanwhile go; domains another agent or an
        operator made are never touched.
        """
        expected = self.client.expected_instances()
        if expected is None:
            log.debug("%s: controller has no instance list; no orphan sweep", self.config.host)
            return None
        if not self.same_registration(getattr(self.client, "registration", None)):
            return None
        removed = sweep_orphans(self.driver, expected, self.disks, self.config.owner)
        self.report_power_states(expected)
        return removed

    def report_power_states(self, expected: set[str]) -> dict[str, Any] | None:
        """Tell the controller the power state of each pcifleet domain here that
        it expects here (a missing one is simply absent: the controller notes
        it). Expected is enough: a domain that came by live migration still
        carries the mark of the agent that made it."""
        states = {
            info.uuid.lower(): info.power_state.value
            for info in self.driver.list()
            if info.managed and info.uuid.lower() in expected
        }
        outcome = self.client.report_power_states(states)
        if outcome:
            for key in ("stopped", "stop_requested", "missing"):
                if outcome.get(key):
                    log.warning("%s: power sync %s: %s", self.config.host, key, outcome[key])
        return outcome

    def same_registration(self, registration: str | None) -> bool:
        """Whether the controller's list belongs to the host registration this
        agent swept against before (remembered in its state directory).

        A controller pointed at another database (a fresh one, a restored
        backup) answers for a different registration of this host: its list,
        maybe empty, must not make the agent destroy every domain it runs. The
        operator removes the file to accept the new registration.
        """
        if registration is None:
            return True  # an older controller: nothing to compare
        path = self.config.state_dir / "controller-registration"
        try:
            known = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(registration + "\n", encoding="utf-8")
            return True
        if known == registration:
            return True
        log.error(
            "%s: the controller's instance list is for host registration %s, this agent "
            "knows %s (another database?); no orphan sweep until %s is removed",
            self.config.host,
            registration,
            known,
            path,
        )
        return False

    def maybe_sweep(self) -> None:
        """Sweep when due: first after an inventory report, then every sweep_interval."""
        interval = self.config.sweep_interval
        if interval <= 0 or self._last_report is None:
            return
        now = time.monotonic()
        if self._last_sweep is not None and now - self._last_sweep < interval:
            return
        self._last_sweep = now
        try:
            self.sweep()
        except (ControllerError, VirtDriverError) as exc:
            # The sweep is housekeeping: tasks go on, and it is tried again next time.
            log.warning("%s: orphan sweep skipped: %s", self.config.host, exc)

    def run_once(self, include_running: bool = False) -> int:
        """One poll: report inventory when due, sweep orphans when due, then run
        what the feed hands out."""
        last = self._last_report
        now = time.monotonic()
        due = last is None or now - last >= self.config.report_interval
        if due and now >= self._report_deferred_until:
            try:
                self.report_inventory()
            except ControllerError as exc:
                if exc.status != 409 or last is None:
                    raise
                # Claims kept changing the host under a burst: the controller
                # has this host's devices already, so serve the tasks and try
                # the report again a little later instead of backing off.
                self._report_deferred_until = now + min(
                    REPORT_DEFER_SECONDS, self.config.report_interval
                )
                log.info("%s: inventory report deferred: %s", self.config.host, exc)
        self.maybe_sweep()
        tasks = self.client.poll_tasks(self.config.poll_wait, include_running=include_running)
        self.run_tasks(tasks)
        return len(tasks)

    def run(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                self.run_once(include_running=first)
                first, failures = False, 0
            except ControllerError as exc:
                if self._stop.is_set():
                    break  # stopping: a call cut short by the stop is not a failure
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("%s: %s; retrying in %.0f s", self.config.host, exc, delay)
                self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.client.close()
        self.driver.close()
