"""Entry point of the ``pcifleet`` command; subcommands live in their own modules."""

from __future__ import annotations

import click

from pcifleet import __version__
from pcifleet.cli.admin import bootstrap, host
from pcifleet.cli.agent import agent
from pcifleet.cli.inventory import inventory
from pcifleet.cli.up import up


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcifleet")
def cli() -> None:
    """pcifleet: hand PCI devices and SR-IOV ports to VMs on KVM/libvirt hosts."""


for command in (up, inventory, agent, bootstrap, host):
    cli.add_command(command)


def main() -> None:
    cli()
