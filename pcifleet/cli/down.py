"""``pcifleet down``: take back what ``pcifleet up`` put on this machine for a
data directory, then the directory itself.

``up --virt libvirt`` and ``up --local`` leave real things behind on purpose
(the domains keep running, the veths and bridges stay for the next ``up``).
When the data directory is done with, ``down`` removes them: each host's
domains (only those its own agent marked, on the daemon it recorded), their
disks, the veths standing in for the simulated hosts' VFs, the bridges of the
directory's networks, and finally the directory (store, images, credentials).
``--keep-data`` stops before that last step. It refuses while an ``up`` runs
on the directory.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from pcifleet.cli.errors import CliError


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The data directory `pcifleet up` used [default: ~/.local/share/pcifleet].",
)
@click.option(
    "--database",
    metavar="URL",
    default=None,
    help="The database `up` used, for its networks' bridges [default: SQLite in --data-dir].",
)
@click.option("--keep-data", is_flag=True, help="Remove only what is outside the directory.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before removing.")
def down(data_dir: Path | None, database: str | None, keep_data: bool, yes: bool) -> None:
    """Remove a data directory's domains, veths and bridges, then the directory."""
    from rich.console import Console

    from pcifleet.cli.rundir import LOCK_FILE, hold_lock
    from pcifleet.store.db import default_data_dir

    console = Console(stderr=True)
    data_dir = (data_dir or default_data_dir()).resolve()
    if not (data_dir / LOCK_FILE).exists() and not (data_dir / "hosts").is_dir():
        raise CliError(f"{data_dir} is not a data directory `pcifleet up` made")
    lock = hold_lock(data_dir, "down")
    try:
        plan = _plan(data_dir, database)
        for line in plan.describe(data_dir, keep_data):
            console.print(f"  {line}")
        if not yes and not click.confirm("Remove all of this?", err=True):
            raise click.Abort()
        problems = plan.carry_out()
    finally:
        lock.close()
    for problem in problems:
        console.print(f"[yellow]warning:[/yellow] {problem}")
    if not keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    console.print(f"[bold green]done[/bold green]: {data_dir} " +
                  ("kept" if keep_data else "removed"))  # fmt: skip
    if problems:
        raise SystemExit(1)


class _Plan:
    """What ``down`` found to remove, and removing it."""

    def __init__(self) -> None:
        self.domains: list[tuple[str, str, Path]] = []  # (uri, owner, disks dir)
        self.veths: list[str] = []
        self.bridges: list[str] = []

    def describe(self, data_dir: Path, keep_data: bool) -> list[str]:
        lines = [f"the domains of {owner} on {uri}" for uri, owner, _ in self.domains]
        if self.veths:
            lines.append(f"{len(self.veths)} veth interfaces standing in for VFs")
        if self.bridges:
            lines.append(f"bridges {', '.join(self.bridges)}")
        if not keep_data:
            lines.append(f"the directory {data_dir} (store, images, disks, credentials)")
        return lines or ["nothing outside the directory"]

    def carry_out(self) -> list[str]:
        """Remove everything; what could not be removed."""
        from pcifleet.agent.disks import Disks
        from pcifleet.agent.tasks import sweep_orphans
        from pcifleet.cli.simnet import SimNetError, remove_veths
        from pcifleet.virt import LibvirtDriver, VirtDriverError

        problems = []
        for uri, owner, disks_dir in self.domains:
            try:
                with LibvirtDriver(uri) as driver:
                    # nothing is expected any more: every domain the owner marked goes
                    sweep_orphans(driver, set(), Disks(disks_dir, None), owner)
            except (VirtDriverError, OSError) as exc:
                problems.append(f"domains of {owner} on {uri}: {exc}")
        try:
            remove_veths(self.veths)
        except SimNetError as exc:
            problems.append(f"veths: {exc}")
        for bridge in self.bridges:
            done = subprocess.run(
                ["ip", "link", "del", "dev", bridge], capture_output=True, text=True, check=False
            )
            if done.returncode != 0 and "Cannot find device" not in done.stderr:
                problems.append(f"bridge {bridge}: {done.stderr.strip()}")
        return problems


def _plan(data_dir: Path, database: str | None) -> _Plan:
    from pcifleet.cli.rundir import recorded_domains
    from pcifleet.cli.simnet import existing_links, vf_netdevs
    from pcifleet.host import read_sysfs

    plan = _Plan()
    hosts = data_dir / "hosts"
    real = False
    for host_dir in sorted(p for p in hosts.iterdir() if p.is_dir()) if hosts.is_dir() else []:
        record = recorded_domains(host_dir)
        if record is None:
            continue  # an xml host: its domains are files in the directory
        real = True
        plan.domains.append((record.uri, record.owner, record.disks_dir))
        sysfs = host_dir / "sys"
        if sysfs.is_dir():  # a simulated host: its VF netdevs are veths
            plan.veths += vf_netdevs(read_sysfs(sysfs).devices)
    links = existing_links() if real else set()
    plan.veths = [v for v in plan.veths if v in links]
    if real:
        plan.bridges = [b for b in _bridges(data_dir, database) if b in links]
    return plan


def _bridges(data_dir: Path, database: str | None) -> list[str]:
    """The bridges of the directory's networks (Neutron's names, ``brq`` + id)."""
    from sqlalchemy import select

    from pcifleet.store.cloud import Network
    from pcifleet.store.db import default_database_url, make_engine
    from pcifleet.virt.tasks import bridge_name_for

    url = database or default_database_url(data_dir)
    try:
        engine = make_engine(url)
        with engine.connect() as conn:
            ids = list(conn.scalars(select(Network.id)))
        engine.dispose()
    except Exception as exc:  # any driver error ends the command the same way
        raise CliError(f"database {url}: {exc}") from None
    return [bridge_name_for(i) for i in ids]
