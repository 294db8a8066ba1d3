"""Operator commands that act on the store directly: bootstrap and host credentials."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from pcifleet.cli.errors import CliError

database_option = click.option(
    "--database",
    metavar="URL",
    default=None,
    help="SQLAlchemy URL [default: SQLite in the user's data directory].",
)


@click.command()
@database_option
@click.option("--admin-password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def bootstrap(database: str | None, admin_password: str, as_json: bool) -> None:
    """Create the first admin (project admin) and a demo member (project demo)."""
    if len(admin_password) < 8:
        raise CliError("--admin-password must have at least 8 characters")
    # The store and the API are imported when a command runs, not for `--help`.
    from pcifleet.api.bootstrap import bootstrap as run_bootstrap
    from pcifleet.cli.database import open_store

    result = run_bootstrap(open_store(database), admin_password)
    out = {
        "admin": {"username": result.admin.username, "project": result.admin.project_name},
        "demo": {
            "username": result.demo.username,
            "password": result.demo.password,
            "project": result.demo.project_name,
        },
    }
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(
            f"admin user {result.admin.username} (project {result.admin.project_name}) ready"
        )
        click.echo(f"demo user {result.demo.username} / {result.demo.password} (project demo)")


@click.group()
def host() -> None:
    """Compute host registration."""


@host.command("credential")
@database_option
@click.argument("name")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the credential to this file (mode 0600) instead of printing it.",
)
def host_credential(database: str | None, name: str, output: Path | None) -> None:
    """Create or rotate the agent credential of host NAME."""
    if not name or len(name) > 255 or any(c.isspace() or c == "/" for c in name):
        raise CliError(f"host name {name!r} must be 1-255 characters without spaces or '/'")
    from pcifleet.api.agents import set_agent_credential
    from pcifleet.cli.database import open_store

    secret = set_agent_credential(open_store(database), name)
    if output is None:
        click.echo(secret)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    click.echo(f"credential of {name} written to {output}")
