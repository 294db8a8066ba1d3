"""Entry point of the ``pcifleet`` command; subcommands live in their own modules.

Subcommands are imported only when one runs: ``up`` pulls in FastAPI,
SQLAlchemy and Alembic (seconds on a busy machine), which ``--help``,
``--version`` or ``inventory`` must not pay for. The listing in ``--help``
comes from ``COMMANDS`` below, so it imports nothing either; a test checks it
says what each command's own docstring says.
"""

from __future__ import annotations

import importlib

import click

from pcifleet import __version__

# name -> (module, attribute, the one line `pcifleet --help` shows)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "up": (
        "pcifleet.cli.up",
        "up",
        "Start the API, the store and simulated hosts; print how to use them.",
    ),
    "down": (
        "pcifleet.cli.down",
        "down",
        "Remove a data directory's domains, veths and bridges, then the directory.",
    ),
    "inventory": (
        "pcifleet.cli.inventory",
        "inventory",
        "List this host's PCI devices, the pools the device specs put them in, and why.",
    ),
    "agent": (
        "pcifleet.cli.agent",
        "agent",
        "Report this host's PCI devices and run the controller's build/delete tasks.",
    ),
    "bootstrap": (
        "pcifleet.cli.admin",
        "bootstrap",
        "Create the first admin (project admin) and a demo member (project demo).",
    ),
    "host": ("pcifleet.cli.admin", "host", "Compute host registration."),
    "pools": (
        "pcifleet.cli.fleet",
        "pools",
        "Show the fleet's PCI pools: free and total devices per host and pool.",
    ),
    "capacity": (
        "pcifleet.cli.fleet",
        "capacity",
        "How many more servers of this shape fit now, and on which hosts.",
    ),
    "explain-boot": (
        "pcifleet.cli.fleet",
        "explain_boot",
        "Dry-run a boot: for each host, which request fails which filter.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, listed from ``COMMANDS``."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _ = entry
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx) if name in COMMANDS]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pcifleet")
def cli() -> None:
    """pcifleet: hand PCI devices and SR-IOV ports to VMs on KVM/libvirt hosts."""


def main() -> None:
    cli()
