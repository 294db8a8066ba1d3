"""``pcifleet down`` and the data directory's lock: one ``up`` per directory,
no ``down`` while it runs, and a directory of simulated ``xml`` hosts (nothing
outside it) removed whole, or kept with ``--keep-data``. What ``down`` removes
from a real libvirtd is in tests/e2e/test_down_real.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcifleet.cli.errors import CliError
from pcifleet.cli.main import cli
from pcifleet.cli.rundir import DomainRecord, hold_lock, record_domains, recorded_domains

HOLD = """
import sys, time
from pathlib import Path
from pcifleet.cli.rundir import hold_lock
lock = hold_lock(Path(sys.argv[1]), "up")
print("held", flush=True)
time.sleep(60)
"""


def xml_data_dir(tmp_path: Path) -> Path:
    """What `up --virt xml` leaves: hosts with sysfs trees, no domain record."""
    data = tmp_path / "data"
    (data / "hosts" / "compute-1" / "sys").mkdir(parents=True)
    (data / "hosts" / "virt").write_text("xml\n")
    (data / "admin-password").write_text("x\n")
    return data


def test_a_second_process_cannot_take_a_held_directory(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CliError, match=rf"in use by pcifleet up \(pid {holder.pid}\)"):
            hold_lock(tmp_path, "up")
        data = xml_data_dir(tmp_path)
        holder2 = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder2.stdout is not None and holder2.stdout.readline().strip() == "held"
            result = CliRunner().invoke(cli, ["down", "--yes", "--data-dir", str(data)])
            assert result.exit_code != 0 and "in use by pcifleet up" in result.output
            assert (data / "admin-password").exists()  # nothing removed
        finally:
            holder2.kill()
            holder2.wait()
    finally:
        holder.kill()
        holder.wait()
    # the kernel let go with the process: the directory is free again
    hold_lock(tmp_path, "up").close()


def test_down_removes_a_directory_of_xml_hosts_or_keeps_it(tmp_path: Path) -> None:
    data = xml_data_dir(tmp_path)
    kept = CliRunner().invoke(cli, ["down", "--yes", "--keep-data", "--data-dir", str(data)])
    assert kept.exit_code == 0, kept.output
    assert "nothing outside the directory" in kept.output and data.is_dir()
    asked = CliRunner().invoke(cli, ["down", "--data-dir", str(data)], input="n\n")
    assert asked.exit_code != 0 and data.is_dir()  # said no: nothing removed
    gone = CliRunner().invoke(cli, ["down", "--yes", "--data-dir", str(data)])
    assert gone.exit_code == 0, gone.output
    assert not data.exists()


def test_down_refuses_a_directory_up_never_made(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["down", "--yes", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0 and "not a data directory" in result.output
    assert (tmp_path / "precious.txt").exists()


def test_a_hosts_domain_record_reads_back_and_junk_reads_as_none(tmp_path: Path) -> None:
    record = DomainRecord("qemu+tcp://127.0.0.3/system", "compute-1@3fa1", tmp_path / "disks")
    record_domains(tmp_path / "compute-1", record)
    assert recorded_domains(tmp_path / "compute-1") == record
    for junk in ("", "{", "[]", '{"uri": 1}', "\x00"):
        (tmp_path / "x").mkdir(exist_ok=True)
        (tmp_path / "x" / "libvirt.json").write_text(junk)
        assert recorded_domains(tmp_path / "x") is None
    assert recorded_domains(tmp_path / "nowhere") is None
