"""What ``pcifleet up`` checks before it hands hosts to a real libvirtd, and the
option combinations it refuses: each fails at once, saying what to do."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pcifleet.cli import libvirt_check
from pcifleet.cli.errors import CliError
from pcifleet.cli.libvirt_check import (
    check_libvirt,
    check_state_dir,
    closed_directory,
    kvm_warning,
)
from pcifleet.cli.main import cli
from pcifleet.cli.simhosts import check_virt
from pcifleet.cli.up_config import up_pci
from pcifleet.pci import classify, parse_aliases


def test_local_takes_no_simulated_hosts(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["up", "--local", "--hosts", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "--local runs no simulated hosts" in result.output


def test_config_gives_the_simulated_hosts_its_specs_and_aliases(tmp_path: Path) -> None:
    config = tmp_path / "pcifleet.toml"
    config.write_text(
        "[pci]\n"
        'device_spec = [{ devname = "ens2f0", physical_network = "physnet9" }]\n'
        'alias = [{ name = "nvme", vendor_id = "144d", product_id = "a808" }]\n'
        "[agent]\nhost = 'elsewhere'\n"
    )
    pci = up_pci(None, config, local=False)
    assert set(pci.aliases) == {"nvme"} and str(config) in pci.alias_source
    tagged = {
        c.device.address: c.tags for c in classify(pci.layout.devices(), pci.specs) if c.matched
    }
    pf = next(n for n in pci.layout.nics if n.ifname == "ens2f0")
    assert tagged and all(t == {"physical_network": "physnet9"} for t in tagged.values())
    # the PF named and all its VFs, nothing of the other NIC or the GPUs
    assert len(tagged) == 1 + pf.numvfs
    assert any("[agent]" in note for note in pci.notes)


def test_without_config_the_layout_decides(tmp_path: Path) -> None:
    pci = up_pci(None, None, local=False)
    assert pci.aliases == parse_aliases(list(pci.layout.alias))
    assert "host layout" in pci.alias_source and pci.notes == []
    only_aliases = tmp_path / "aliases.toml"
    only_aliases.write_text(
        '[pci]\nalias = [{ name = "x", vendor_id = "1234", product_id = "5678" }]\n'
    )
    mixed = up_pci(None, only_aliases, local=False)
    assert set(mixed.aliases) == {"x"}
    assert len(mixed.specs) == len(pci.specs) and mixed.specs  # the layout's specs still apply


def test_a_bad_config_is_refused_naming_its_entry(tmp_path: Path) -> None:
    config = tmp_path / "pcifleet.toml"
    config.write_text('[pci]\ndevice_spec = [{ address = "zz:00.0" }]\n')
    result = CliRunner().invoke(
        cli, ["up", "--config", str(config), "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code != 0
    assert "device_spec" in result.output and "zz" in result.output


def test_the_kind_of_simulated_host_is_fixed_per_data_dir(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    check_virt(hosts, "libvirt")
    check_virt(hosts, "libvirt")  # the same again is fine
    with pytest.raises(CliError, match="run with --virt libvirt"):
        check_virt(hosts, "xml")
    older = tmp_path / "older" / "hosts"
    (older / "compute-1").mkdir(parents=True)  # made before the kind was recorded
    with pytest.raises(CliError, match="run with --virt xml"):
        check_virt(older, "libvirt")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter, on a path every user may enter (pytest's
    own temporary root is closed to others)."""
    path = Path(tempfile.mkdtemp(prefix="pcifleet-test-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_a_directory_closed_to_other_users_is_found(open_dir: Path) -> None:
    closed = open_dir / "closed"
    inner = closed / "a" / "b"
    inner.mkdir(parents=True)
    closed.chmod(0o700)
    assert closed_directory(inner) == closed
    closed.chmod(0o711)
    (closed / "a").chmod(0o755)
    inner.chmod(0o755)
    assert closed_directory(inner) is None
    assert closed_directory(open_dir / "not-made-yet" / "x") is None
    assert closed_directory(Path("/root/x")) in (Path("/root"), None)


def test_a_state_dir_qemu_cannot_reach_is_refused_only_for_system_libvirt(
    tmp_path: Path,
) -> None:
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0o700)
    with pytest.raises(CliError, match="--data-dir"):
        check_state_dir("qemu:///system", closed / "hosts")
    check_state_dir("qemu:///session", closed / "hosts")  # runs as the user: fine
    check_state_dir("test:///default", closed / "hosts")


def test_kvm_closed_to_the_qemu_user_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "kvm"
    fake.write_text("")
    monkeypatch.setattr(libvirt_check, "KVM_DEVICE", fake)
    fake.chmod(0o600)
    if os.access(fake, os.R_OK | os.W_OK):
        warning = kvm_warning()
        assert warning is not None and "chmod 0660 /dev/kvm" in warning
    fake.chmod(0o666)
    assert kvm_warning() is None
    monkeypatch.setattr(libvirt_check, "KVM_DEVICE", tmp_path / "absent")
    assert kvm_warning() is None


def test_an_unreachable_libvirtd_says_how_to_start_one() -> None:
    pytest.importorskip("libvirt")
    with pytest.raises(CliError, match="Is libvirtd running"):
        check_libvirt("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert check_libvirt("test:///default") in ("kvm", "qemu")
