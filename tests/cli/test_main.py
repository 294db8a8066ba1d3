import subprocess
import sys

from click.testing import CliRunner

from pcifleet import __version__
from pcifleet.cli.main import cli


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_the_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "SR-IOV" in result.output


def test_every_listed_command_runs_and_its_listing_is_its_own_first_line() -> None:
    from pcifleet.cli.main import COMMANDS

    ctx = cli.make_context("pcifleet", ["--help"], resilient_parsing=True)
    for name, (_, _, listed) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert (command.help or "").strip().splitlines()[0] == listed, name
        assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0, name


def test_help_and_version_import_no_service_code() -> None:
    """`pcifleet --help`, `--version` and `up --help` must not load the API,
    the store or the agent: their imports are what made them take seconds."""
    probe = (
        "import sys\n"
        "from pcifleet.cli.main import cli\n"
        "for argv in (['--help'], ['--version'], ['up', '--help'], ['agent', '--help'],\n"
        "             ['pools', '--help'], ['capacity', '--help'], ['explain-boot', '--help']):\n"
        "    try:\n"
        "        cli.main(argv, prog_name='pcifleet', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('fastapi', 'sqlalchemy', 'alembic', 'uvicorn', 'httpx', 'pcifleet.api',\n"
        "         'pcifleet.store', 'pcifleet.agent', 'pcifleet.host')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy\n"
        "             or any(m.startswith(h + '.') for h in heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
