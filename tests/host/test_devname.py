"""devname resolution: a PF's name brings its VFs; unsafe names never reach the filesystem."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.host.devname import check_devname, netdev_pci_address, resolve_devname
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import InvalidDeviceSpec


def test_a_pf_name_brings_its_vfs(k61: Path) -> None:
    devices = read_sysfs(k61).devices
    assert [str(d.address) for d in resolve_devname("enp1s0", devices)] == [
        "0000:01:00.0",
        "0000:01:10.0",
        "0000:01:10.2",
        "0000:01:10.4",
        "0000:01:10.6",
    ]
    assert [str(d.address) for d in resolve_devname("enp1s0v1", devices)] == ["0000:01:10.2"]
    assert resolve_devname("enp9s0", devices) == []


def test_netdev_to_pci_address_on_a_real_tree(k61: Path) -> None:
    assert str(netdev_pci_address("enp1s0v0", k61)) == "0000:01:10.0"
    assert str(netdev_pci_address("enp0s4", k61)) == "0000:00:04.0"  # via virtio0
    assert netdev_pci_address("enp9s0", k61) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../../../etc", "must not contain"),
        ("eth0/../..", "must not contain"),
        ("..", "must not contain"),
        ("eth\0", "must not contain"),
        ("a" * 16, "longer than the kernel's limit of 15 bytes"),
        ("é" * 8, "longer than the kernel's limit of 15 bytes"),  # 16 bytes in UTF-8
        ("", "non-empty"),
    ],
)
def test_unsafe_names_are_refused_before_any_path_is_built(
    name: str, why: str, tmp_path: Path
) -> None:
    # The root does not exist: a name that got through would return None, not raise.
    for call in (
        lambda: check_devname(name),
        lambda: resolve_devname(name, []),
        lambda: netdev_pci_address(name, tmp_path / "nowhere"),
    ):
        with pytest.raises(InvalidDeviceSpec, match="devname") as err:
            call()
        assert why in str(err.value)


def test_fifteen_bytes_is_fine() -> None:
    assert check_devname("a" * 15) == "a" * 15
