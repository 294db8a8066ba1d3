"""How the CLI reports a failure: one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import click


class CliError(click.ClickException):
    """Exit 1 with ``pcifleet: <message>`` on stderr."""

    exit_code = 1

    def format_message(self) -> str:
        return self.message

    def show(self, file: object = None) -> None:
        click.echo(f"pcifleet: {self.message}", err=True)
