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
from pathlib import Path
from typing import Any

from pcifleet.agent.client import ControllerClient, ControllerError
from pcifleet.agent.config import AgentConfig
from pcifleet.agent.tasks import TaskFailed, build, delete
from pcifleet.host import (
    Inventory,
    classify_inventory,
    read_nodedev_dir,
    read_sysfs,
)
from pcifleet.pci import DeviceSpec, PciAddress, PciDevice
from pcifleet.virt import VirtDriver, get_driver

log = logging.getLogger(__name__)
# Backoff when the controller cannot be reached: short first, then capped.
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0)


def host_memory_mb() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class Agent:
    """One host's agent. ``run()`` blocks until ``stop()``."""

    def __init__(
        self,
        config: AgentConfig,
        specs: list[DeviceSpec],
        client: ControllerClient | None = None,
        driver: VirtDriver | None = None,
    ) -> None:
        self.config = config
        self.specs = specs
        self.client = client or ControllerClient(config.controller, config.host, config.credential)
        self.driver = driver or get_driver(config.driver, **config.driver_options())
        self.generation: int | None = None
        self.devices: dict[PciAddress, PciDevice] = {}
        self._stop = threading.Event()
        self._last_report: float | None = None

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
        body: dict[str, Any] = {
            "generation": self.generation,
            "vcpus": self.config.vcpus or os.cpu_count() or 1,
            "memory_mb": self.config.memory_mb or host_memory_mb(),
            "devices": devices,
        }
        try:
            result = self.client.report_inventory(body)
        except ControllerError as exc:
            if exc.status != 409:
                raise
            body["generation"] = self.client.host_generation()
            result = self.client.report_inventory(body)
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

    def fetch_image(self, image_id: str) -> tuple[Path, str]:
        return self.client.download_image(image_id, self.config.image_cache / image_id)

    def run_task(self, task: dict[str, Any]) -> None:
        kind, payload = task.get("kind"), task.get("payload") or {}
        try:
            if kind == "build":
                details = build(self.driver, payload, self.devices, self.fetch_image)
            elif kind == "delete":
                details = delete(self.driver, payload)
            else:
                raise TaskFailed(f"unknown task kind {kind!r}")
        except TaskFailed as exc:
            log.warning("%s: task %s (%s) failed: %s", self.config.host, task.get("id"), kind, exc)
            self.client.report_result(int(task["id"]), "failed", str(exc))
            return
        except ControllerError as exc:
            self.client.report_result(int(task["id"]), "failed", f"controller: {exc}")
            return
        log.info("%s: task %s (%s) done", self.config.host, task.get("id"), kind)
        self.client.report_result(int(task["id"]), "done", "", details)

    def run_once(self, include_running: bool = False) -> int:
        """One poll: report inventory when due, then run what the feed hands out."""
        last = self._last_report
        if last is None or time.monotonic() - last >= self.config.report_interval:
            self.report_inventory()
        tasks = self.client.poll_tasks(self.config.poll_wait, include_running=include_running)
        for task in tasks:
            self.run_task(task)
        return len(tasks)

    def run(self) -> None:
        failures = 0
        first = True
        while not self._stop.is_set():
            try:
                self.run_once(include_running=first)
                first, failures = False, 0
            except ControllerError as exc:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.warning("%s: %s; retrying in %.0f s", self.config.host, exc, delay)
                self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.client.close()
        self.driver.close()
