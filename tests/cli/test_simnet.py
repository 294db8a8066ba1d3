"""VF netdevs of simulated hosts on a real libvirtd: unique names that fit the
kernel's limit, read back from the sysfs tree, and (as root) real veths made
idempotently and removed."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from pcifleet.cli.simnet import (
    SimNetError,
    ensure_veths,
    existing_links,
    remove_veths,
    sim_tag,
    vf_netdev_name,
    vf_netdevs,
    with_unique_vf_netdevs,
)
from pcifleet.host import fake_devices_from, read_sysfs, write_fake_sysfs
from pcifleet.pci import DevType
from tests.pci.sample import sample_layout
from tests.system import unavailable


def test_the_tag_is_made_once_and_kept(tmp_path: Path) -> None:
    tag = sim_tag(tmp_path / "hosts")
    assert len(tag) == 4 and int(tag, 16) >= 0
    assert sim_tag(tmp_path / "hosts") == tag
    (tmp_path / "hosts" / "sim-net-tag").write_text("../../etc\n")  # garbled: a new one
    assert sim_tag(tmp_path / "hosts") not in (tag, "../../etc")


def test_vf_names_are_unique_across_hosts_and_fit_with_their_peer(tmp_path: Path) -> None:
    layout = sample_layout()
    names: list[str] = []
    for host in (1, 2, 64):
        devices = with_unique_vf_netdevs(layout.devices(), "ab12", host)
        # PFs keep the layout's names, so device specs by devname still match.
        pfs = [d.ifname for d in devices if d.dev_type is DevType.PF]
        assert pfs == [d.ifname for d in layout.devices() if d.dev_type is DevType.PF]
        names.extend(vf_netdevs(devices))
    assert len(names) == len(set(names)) == 3 * 128
    assert max(len(n) for n in names) + 1 <= 15
    assert vf_netdev_name("ab12", 64, 1, 63) == "ab12h64p1v63"


def test_a_name_that_cannot_fit_is_refused() -> None:
    with pytest.raises(SimNetError, match="15 characters"):
        vf_netdev_name("ab12", 12345, 9, 1000)


def test_the_renamed_tree_reads_back_with_those_names(tmp_path: Path) -> None:
    devices = with_unique_vf_netdevs(sample_layout().devices(), "cd34", 3)
    write_fake_sysfs(fake_devices_from(devices), tmp_path / "sys")
    assert sorted(vf_netdevs(read_sysfs(tmp_path / "sys").devices)) == sorted(vf_netdevs(devices))


@pytest.fixture
def root_net() -> None:
    if os.geteuid() != 0:
        unavailable("making veth interfaces needs root (CAP_NET_ADMIN)")


@pytest.mark.usefixtures("root_net")
def test_veths_are_made_once_and_removed_with_their_peers() -> None:
    names = [f"t{secrets.token_hex(3)}v{i}" for i in range(3)]
    try:
        assert ensure_veths(names) == 3
        assert ensure_veths(names) == 0  # already there: nothing to do
        have = existing_links()
        assert {*names, *(n + "x" for n in names)} <= have
        state = subprocess.run(
            ["ip", "-br", "link", "show", "dev", names[0]], capture_output=True, text=True
        ).stdout
        assert "UP" in state
    finally:
        assert remove_veths(names) == 3
    assert not {*names, *(n + "x" for n in names)} & existing_links()
    assert remove_veths(names) == 0


@pytest.mark.usefixtures("root_net")
def test_a_name_the_kernel_refuses_fails_naming_the_cause() -> None:
    with pytest.raises(SimNetError, match="veth"):
        ensure_veths(["bad name!"])
