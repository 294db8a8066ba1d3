"""``pcifleet down`` after ``pcifleet up --virt libvirt``: the running domain,
its disk, the veths standing in for VFs and the networks' bridges leave this
machine, then the data directory; refused while ``up`` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pcifleet.cli.simnet import existing_links, vf_netdevs
from pcifleet.host import read_sysfs

from .helpers import PCIFLEET, OscRunner, osc_json, osc_ok, start_up, stop
from .test_real_vms import LAYOUT, URI, _preflight, virsh

pytestmark = pytest.mark.slow


def down(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PCIFLEET, "down", "--data-dir", str(data_dir), *extra],
        capture_output=True, text=True, timeout=300, input="n\n", check=False,
    )  # fmt: skip


def test_down_takes_back_what_up_put_on_the_machine() -> None:
    _preflight()
    work = Path(tempfile.mkdtemp(prefix="pcifleet-down-"))
    work.chmod(0o711)
    (work / "layout.toml").write_text(LAYOUT)
    data = work / "data"
    proc = None
    try:
        proc, _ = start_up(data, "--virt", "libvirt", "--layout", str(work / "layout.toml"),
                           hosts=1)  # fmt: skip
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(data / "clouds.yaml"))
        cli = OscRunner(env)
        try:
            image = work / "tiny.img"
            image.write_bytes(b"\0" * (1 << 20))
            osc_ok(cli, "image", "create", "--disk-format", "raw", "--file", str(image), "dn")
            osc_ok(cli, "flavor", "create", "--ram", "128", "--vcpus", "1", "--disk", "1", "dn")
            net = osc_json(cli, "network", "create", "dn-plain")
            osc_ok(cli, "subnet", "create", "--network", "dn-plain", "--subnet-range",
                   "10.93.0.0/24", "dn-sub")  # fmt: skip
            sid = osc_json(cli, "server", "create", "--flavor", "dn", "--image", "dn",
                           "--network", "dn-plain", "--wait", "dn-1")["id"]  # fmt: skip
        finally:
            cli.close()
        domain = f"pcifleet-{sid}"
        assert domain in virsh("list", "--name").split()
        veths = vf_netdevs(read_sysfs(data / "hosts" / "compute-1" / "sys").devices)
        bridge = "brq" + net["id"][:11]
        assert set(veths) | {bridge} <= existing_links()

        refused = down(data, "--yes")
        assert refused.returncode != 0 and "in use by pcifleet up" in refused.stderr
        stop(proc)
        proc = None
        asked = down(data)  # answers "n"
        assert asked.returncode != 0 and domain in virsh("list", "--name").split()
        assert "the domains of compute-1@" in asked.stderr and bridge in asked.stderr

        done = down(data, "--yes")
        assert done.returncode == 0, done.stderr
        assert domain not in virsh("list", "--all", "--name").split()
        assert not (set(veths) | {bridge}) & existing_links()
        assert not data.exists()
    finally:
        stop(proc)
        if data.exists():  # a failure above: leave nothing behind either way
            down(data, "--yes")
        shutil.rmtree(work, ignore_errors=True)
    assert URI  # the daemon the domain ran on
