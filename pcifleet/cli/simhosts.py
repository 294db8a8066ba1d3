"""Simulated compute hosts for ``pcifleet up``: generated sysfs trees, one agent each.

Each host gets ``DATA_DIR/hosts/NAME/`` with its sysfs tree (``sys/``), its
agent credential, the domains its ``xml`` driver writes and its image cache.
Trees and credentials are made once and kept, so a restart finds the same hosts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from pcifleet.agent import Agent, AgentConfig
from pcifleet.api.agents import set_agent_credential
from pcifleet.cli.secrets import read_or_create_secret
from pcifleet.host import write_sysfs
from pcifleet.pci import HostLayout, parse_device_specs

# What a simulated host offers besides its PCI devices.
SIM_VCPUS = 64
SIM_MEMORY_MB = 256 * 1024


@dataclass
class SimHost:
    name: str
    directory: Path
    credential: str

    @property
    def sysfs_root(self) -> Path:
        return self.directory / "sys"


def prepare_hosts(engine: Engine, data_dir: Path, layout: HostLayout, count: int) -> list[SimHost]:
    hosts = []
    for i in range(1, count + 1):
        name = f"compute-{i}"
        directory = data_dir / "hosts" / name
        if not (directory / "sys").exists():
            write_sysfs(layout, directory / "sys")
        secret, _ = read_or_create_secret(directory / "credential")
        # Setting it again is idempotent and registers a host the store lost.
        set_agent_credential(engine, name, secret)
        hosts.append(SimHost(name, directory, secret))
    return hosts


class AgentThreads:
    """Runs one agent per simulated host in threads of this process."""

    def __init__(self, controller: str, hosts: list[SimHost], layout: HostLayout) -> None:
        specs = parse_device_specs(layout.device_spec)
        self.agents = [
            Agent(
                AgentConfig(
                    controller=controller,
                    host=h.name,
                    credential=h.credential,
                    driver="xml",
                    state_dir=h.directory,
                    sysfs_root=h.sysfs_root,
                    report_interval=30.0,
                    # A simulated host's sweep is cheap: run it with each report,
                    # so a domain left on a host that was down (an evacuated
                    # server's) goes within a report interval of its return.
                    sweep_interval=30.0,
                    poll_wait=10.0,
                    vcpus=SIM_VCPUS,
                    memory_mb=SIM_MEMORY_MB,
                ),
                specs,
            )
            for h in hosts
        ]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for agent in self.agents:
            agent.report_inventory()
        for agent in self.agents:
            t = threading.Thread(target=agent.run, name=f"agent-{agent.config.host}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()
        for t in self.threads:
            t.join(timeout=15)
        for agent in self.agents:
            agent.close()
