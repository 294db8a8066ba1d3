"""Entry point of the ``pcifleet`` command; subcommands live in their own modules."""

from __future__ import annotations

import click

from pcifleet import __version__
from pcifleet.cli.inventory import inventory


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcifleet")
def cli() -> None:
    """pcifleet: hand PCI devices and SR-IOV ports to VMs on KVM/libvirt hosts."""


cli.add_command(inventory)


def main() -> None:
    cli()
