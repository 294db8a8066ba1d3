"""``pcifleet agent`` as a real host would run it, against ``pcifleet up``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pcifleet.host import write_sysfs
from tests.pci.sample import sample_layout

from .conftest import Cloud
from .helpers import admin_token

pytestmark = pytest.mark.slow
PCIFLEET = str(Path(sys.executable).with_name("pcifleet"))


def test_agent_once_reports_its_inventory(cloud: Cloud, tmp_path: Path) -> None:
    token = admin_token(cloud.url, cloud.data_dir)
    headers = {"X-Auth-Token": token}
    r = httpx.post(cloud.url + "/pcifleet/v1/hosts/edge-1/credential", headers=headers)
    assert r.status_code == 201, r.text
    credential = tmp_path / "credential"
    credential.write_text(r.json()["credential"])
    write_sysfs(sample_layout(), tmp_path / "sys")
    config = tmp_path / "pcifleet.toml"
    config.write_text(
        '[pci]\ndevice_spec = [{ devname = "ens2f0", physical_network = "physnet2" }]\n'
    )
    args = [
        PCIFLEET,
        "agent",
        "--once",
        "--controller",
        cloud.url,
        "--host",
        "edge-1",
        "--config",
        str(config),
        "--credential-file",
        str(credential),
        "--driver",
        "xml",
        "--state-dir",
        str(tmp_path / "state"),
        "--sysfs-root",
        str(tmp_path / "sys"),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    host = httpx.get(cloud.url + "/pcifleet/v1/hosts/edge-1", headers=headers).json()["host"]
    assert host["status"] == "up"
    assert {(p["dev_type"], p["count"]) for p in host["pci_stats"]} == {
        ("type-PF", 1),
        ("type-VF", 64),
    }

    # Another host's credential is refused: an agent acts for its own host only.
    args[args.index("edge-1")] = "compute-1"
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("pcifleet: ") and "401" in proc.stderr


def test_agent_without_credential_says_how_to_get_one(tmp_path: Path) -> None:
    proc = subprocess.run(
        [PCIFLEET, "agent", "--controller", "http://127.0.0.1:9", "--host", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin"},
    )
    assert proc.returncode == 1
    assert "no host credential" in proc.stderr and "pcifleet host credential" in proc.stderr
