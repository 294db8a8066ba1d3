"""``pcifleet agent``: the per-host process of a real compute host."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import click

from pcifleet.cli.errors import CliError


@click.command()
@click.option("--controller", metavar="URL", help="The controller's base URL.")
@click.option("--host", "host_name", metavar="NAME", help="This host's name [default: hostname].")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="pcifleet.toml ([pci] device_spec, [agent]) or a nova.conf with a [pci] section.",
)
@click.option(
    "--credential-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding this host's credential (`pcifleet host credential NAME`).",
)
@click.option("--driver", type=click.Choice(["libvirt", "xml"]), help="Virt driver [libvirt].")
@click.option("--libvirt-uri", metavar="URI", help="libvirt URI [qemu:///system].")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Image cache and xml-driver domains [/var/lib/pcifleet].",
)
@click.option(
    "--sysfs-root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to read PCI devices from [/sys].",
)
@click.option("--once", is_flag=True, help="Report the inventory, run pending tasks, exit.")
@click.option("-v", "--verbose", is_flag=True, help="Log reports and tasks.")
def agent(
    controller: str | None,
    host_name: str | None,
    config: Path | None,
    credential_file: Path | None,
    driver: str | None,
    libvirt_uri: str | None,
    state_dir: Path | None,
    sysfs_root: Path | None,
    once: bool,
    verbose: bool,
) -> None:
    """Report this host's PCI devices and run the controller's build/delete tasks."""
    # Imported when the agent runs, so `pcifleet agent --help` answers at once.
    from pcifleet.agent import Agent, ControllerError
    from pcifleet.agent.config import AgentConfigError, agent_config
    from pcifleet.host import HostConfigError, load_host_config
    from pcifleet.logcontext import configure_logging

    configure_logging(verbose)
    raw: dict[str, Any] = {}
    specs = []
    if config is not None:
        try:
            host_config = load_host_config(config)
        except HostConfigError as exc:
            raise CliError(str(exc)) from None
        raw, specs = host_config.raw, host_config.device_spec
    try:
        cfg = agent_config(
            raw,
            controller=controller,
            host=host_name,
            credential_file=credential_file,
            driver=driver,
            libvirt_uri=libvirt_uri,
            state_dir=state_dir,
            sysfs_root=sysfs_root,
            poll_wait=0.0 if once else None,
        )
        runner = Agent(cfg, specs)
    except (AgentConfigError, ValueError) as exc:
        raise CliError(str(exc)) from None
    try:
        if once:
            runner.run_once(include_running=True)
            return
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        try:
            runner.run()
        except KeyboardInterrupt:
            runner.stop()
    except ControllerError as exc:
        raise CliError(str(exc)) from None
    finally:
        runner.close()
