"""The hosts ``pcifleet up`` runs agents for: simulated ones, or this machine.

Each simulated host gets ``DATA_DIR/hosts/NAME/`` with its sysfs tree
(``sys/``), its agent credential, its image cache, its servers' disks and
console logs, and (``xml`` driver) the domains it writes. Trees and credentials
are made once and kept, so a restart finds the same hosts.

Two kinds of simulated host (``--virt``), fixed when the data directory's hosts
are first made (``hosts/virt``), because the servers stored there live in one
or the other:

- ``xml``: the agent's ``xml`` driver writes domain files and runs nothing;
- ``libvirt``: the hosts share the machine's real libvirtd. Their VF netdevs are
  real veth interfaces (``pcifleet.cli.simnet``), normal ports get real Linux
  bridges, each server is a real QEMU domain with its own disk; what needs
  hardware (a ``direct`` port's VF, a GPU) fails at start, as it would on a
  host without it. Each host's agent marks its domains with its own owner name,
  so the hosts' sweeps leave each other's domains alone.

``--local`` runs one agent for this machine instead: its real ``/sys``, its
device specs from ``--config``, the libvirt driver.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from pcifleet.agent import Agent, AgentConfig
from pcifleet.agent.config import AgentConfigError, agent_config
from pcifleet.api.agents import set_agent_credential, set_agent_credentials
from pcifleet.cli.errors import CliError
from pcifleet.cli.libvirt_uris import HostUris, migration_settings
from pcifleet.cli.secrets import read_or_create_secret
from pcifleet.cli.simnet import (
    SimNetError,
    ensure_veths,
    sim_tag,
    vf_netdevs,
    with_host_macs,
    with_unique_vf_netdevs,
)
from pcifleet.host import HostConfig, fake_devices_from, read_sysfs
from pcifleet.host.fakesys import FakeSysfs
from pcifleet.host.numa import write_numa_topology
from pcifleet.pci import DeviceSpec, HostLayout, NumaCell, NumaTopology, PciDevice

# What a simulated host offers besides its PCI devices.
SIM_VCPUS = 64
SIM_MEMORY_MB = 256 * 1024
VIRT_FILE = "virt"
# Hosts whose sysfs trees are written at once, and agents reporting at once
TREE_WRITERS = 4
FIRST_REPORTS = 8
VIRTS = ("xml", "libvirt")


@dataclass
class SimHost:
    name: str
    directory: Path
    credential: str

    @property
    def sysfs_root(self) -> Path:
        return self.directory / "sys"


def check_virt(hosts_dir: Path, virt: str) -> None:
    """Record the hosts' kind on first use; refuse to switch it later."""
    path = hosts_dir / VIRT_FILE
    try:
        known = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        # Hosts made before the kind was recorded were all xml hosts.
        known = "xml" if any(hosts_dir.glob("compute-*")) else ""
    if known and known != virt:
        raise CliError(
            f"the simulated hosts in {hosts_dir} run with --virt {known}; their servers "
            f"live there. Use --virt {known}, or another --data-dir for --virt {virt}."
        )
    hosts_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(virt + "\n", encoding="utf-8")


def prepare_hosts(
    engine: Engine, data_dir: Path, layout: HostLayout, count: int, virt: str = "xml"
) -> list[SimHost]:
    hosts_dir = data_dir / "hosts"
    check_virt(hosts_dir, virt)
    tag = sim_tag(hosts_dir) if virt == "libvirt" else None
    devices = layout.devices()
    topology = sim_topology(devices)

    def tree(i: int) -> FakeSysfs:
        mine = with_host_macs(devices, i)
        if tag is not None:
            mine = with_unique_vf_netdevs(mine, tag, i)
        return FakeSysfs(fake_devices_from(mine))

    def prepare(i: int, like: tuple[FakeSysfs, Path] | None) -> SimHost:
        name = f"compute-{i}"
        directory = hosts_dir / name
        if not (directory / "sys").exists():
            tree(i).write(directory / "sys", like)
        if not (directory / "sys" / "devices" / "system" / "node").exists():
            # Also for hosts made before they had cells: their devices are the same.
            write_numa_topology(topology, directory / "sys")
        secret, _ = read_or_create_secret(directory / "credential")
        return SimHost(name, directory, secret)

    # The first host this run makes is written whole; the others hard-link
    # every entry they share with it (all but their MACs).
    numbers = list(range(1, count + 1))
    new = [i for i in numbers if not (hosts_dir / f"compute-{i}" / "sys").exists()]
    like = None
    if new:
        first = tree(new[0])
        like = (first, first.write(hosts_dir / f"compute-{new[0]}" / "sys"))
    # What is left of a tree is the kernel's, and a few writers at once overlap
    # it (the GIL is free during the calls).
    with ThreadPoolExecutor(max_workers=TREE_WRITERS) as pool:
        hosts = list(pool.map(lambda i: prepare(i, like), numbers))
    # Setting them again is idempotent and registers a host the store lost.
    set_agent_credentials(engine, {h.name: h.credential for h in hosts})
    return hosts


def sim_topology(devices: list[PciDevice]) -> NumaTopology:
    """A simulated host's cells: one per NUMA node its devices sit on (two when
    they name fewer), one socket each, the host's CPUs and memory split evenly."""
    nodes = sorted({d.numa_node for d in devices if d.numa_node is not None})
    if len(nodes) < 2:
        nodes = sorted(set(nodes) | {0, 1})[:2]
    per_cpu, per_mem = SIM_VCPUS // len(nodes), SIM_MEMORY_MB // len(nodes)
    return NumaTopology(
        tuple(
            NumaCell(node, frozenset(range(i * per_cpu, (i + 1) * per_cpu)), per_mem, socket=i)
            for i, node in enumerate(nodes)
        )
    )


def make_vf_netdevs(hosts: list[SimHost]) -> int:
    """Make the VF netdevs named in the hosts' sysfs trees as real veths; how
    many were new."""
    names: list[str] = []
    for host in hosts:
        names.extend(vf_netdevs(read_sysfs(host.sysfs_root).devices))
    try:
        return ensure_veths(names)
    except SimNetError as exc:
        raise CliError(str(exc)) from None


def sim_agent_configs(
    controller: str, hosts: list[SimHost], virt: str, uris: HostUris, data_dir: Path
) -> list[AgentConfig]:
    """One agent config per simulated host (on its libvirtd, with ``--virt libvirt``)."""
    tag = sim_tag(data_dir / "hosts") if virt == "libvirt" else None
    return [
        AgentConfig(
            controller=controller,
            host=h.name,
            credential=h.credential,
            driver=virt,
            libvirt_uri=uris.of(h.name),
            live_migration_uri=migration_settings(uris.of(h.name))[0],
            live_migration_inbound_addr=migration_settings(uris.of(h.name))[1],
            state_dir=h.directory,
            sysfs_root=h.sysfs_root,
            report_interval=30.0,
            # A simulated host's sweep is cheap: run it with each report, so a
            # domain left on a host that was down (an evacuated server's) goes
            # within a report interval of its return.
            sweep_interval=30.0,
            poll_wait=10.0,
            vcpus=SIM_VCPUS,
            memory_mb=SIM_MEMORY_MB,
            # Several data directories' hosts may share the libvirtd.
            domain_owner=None if tag is None else f"{h.name}@{tag}",
            veth_vfs=virt == "libvirt",
        )
        for h in hosts
    ]


def local_agent_config(
    engine: Engine,
    controller: str,
    data_dir: Path,
    host_config: HostConfig | None,
    libvirt_uri: str,
) -> AgentConfig:
    """The agent of this machine: its real ``/sys`` (or ``[agent] sysfs_root``),
    the libvirt driver, its state under ``[agent] state_dir`` or the data directory."""
    raw: dict[str, Any] = dict(host_config.raw) if host_config is not None else {}
    section = raw.get("agent", {})
    if not isinstance(section, dict):
        raise CliError("[agent] must be a table")
    name = str(section.get("host") or socket.gethostname())
    directory = data_dir / "hosts" / name
    secret, _ = read_or_create_secret(directory / "credential")
    set_agent_credential(engine, name, secret)
    try:
        return agent_config(
            raw,
            controller=controller,
            host=name,
            credential=secret,
            driver="libvirt",
            libvirt_uri=section.get("libvirt_uri") or libvirt_uri,
            state_dir=Path(section["state_dir"]) if "state_dir" in section else directory,
        )
    except AgentConfigError as exc:
        raise CliError(f"{host_config.path if host_config else 'config'}: {exc}") from None


class AgentThreads:
    """Runs one agent per host in threads of this process."""

    def __init__(self, configs: list[AgentConfig], specs: list[DeviceSpec]) -> None:
        self.agents = [Agent(config, specs) for config in configs]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Every agent's first inventory report, several at once (each waits on
        the API most of the time), then one thread per agent."""
        if self.agents:
            with ThreadPoolExecutor(max_workers=FIRST_REPORTS) as pool:
                list(pool.map(lambda agent: agent.report_inventory(), self.agents))
        for agent in self.agents:
            t = threading.Thread(target=agent.run, name=f"agent-{agent.config.host}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop every agent, waiting up to ``timeout`` seconds in all; a second
        call only waits again for what the first left running."""
        for agent in self.agents:
            agent.stop()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self.threads = [t for t in self.threads if t.is_alive()]
        if not self.threads:
            for agent in self.agents:
                agent.close()
            self.agents = []
