"""Host layout files: the shipped sample host, and files that are not a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.host import HostConfigError, load_layout, sample_layout_path
from pcifleet.pci import DevType


def test_sample_host_is_the_default() -> None:
    layout = load_layout()
    assert layout.hostname == "sample"
    devices = layout.devices()
    assert len(devices) == 2 + 2 * 64 + 2  # two PFs with 64 VFs each, two GPUs
    assert sum(d.dev_type is DevType.VF for d in devices) == 128
    assert len(layout.device_spec) == 3 and len(layout.alias) == 1
    assert load_layout(sample_layout_path()).devices() == devices


def test_a_layout_file(tmp_path: Path) -> None:
    path = tmp_path / "gpu.toml"
    path.write_text(
        'hostname = "gpu1"\n[[devices]]\naddress = "0000:5e:00.0"\n'
        'vendor_id = "10DE"\nproduct_id = "1db4"\n'
    )
    layout = load_layout(path)
    assert layout.hostname == "gpu1"
    assert [d.vendor_product for d in layout.devices()] == ["10de:1db4"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[[nics]\n", "host layout is not valid TOML"),
        (b"\xff\xfe", "host layout is not UTF-8 text"),
        (b"#" * (2 << 20), "host layout is larger than"),
        (b"hostname = 3\n", "hostname must be a non-empty string"),
        (b'[[nics]]\naddress = "zz"\n', "nics[0]: invalid PCI address 'zz'"),
        (b'[[devices]]\naddress = "0000:00:01.0"\nvendor_id = "x"\n', "devices[0]: vendor_id"),
        (b"[[devices]]\nbogus = 1\n", "devices[0]: unknown key(s) bogus"),
        (b'nics = "eth0"\n', "nics and devices must be lists"),
    ],
)
def test_bad_layout_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "host.toml"
    path.write_bytes(content)
    with pytest.raises(HostConfigError) as err:
        load_layout(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_missing_layout_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match=r"missing.toml: cannot read host layout: No such"):
        load_layout(tmp_path / "missing.toml")
    with pytest.raises(HostConfigError, match="cannot read host layout"):
        load_layout(tmp_path)  # a directory
