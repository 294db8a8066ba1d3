"""Discovery on sysfs written by real Linux kernels (QEMU igb SR-IOV NICs; see the README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.host.snapshot import is_snapshot
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import DevType, PciAddress
from tests.host.conftest import FIXTURES, K61, K61_NOIOMMU, K612_7VFS, real_sysfs

PF0, PF1 = PciAddress.parse("0000:01:00.0"), PciAddress.parse("0000:02:00.0")


def test_k61_pf0_and_its_vfs(k61: Path) -> None:
    devs = read_sysfs(k61).by_address()
    pf = devs[PF0]
    assert (pf.vendor_product, pf.dev_type, pf.driver, pf.ifname) == (
        "8086:10c9",
        DevType.PF,
        "igb",
        "enp1s0",
    )
    assert pf.extra["totalvfs"] == "7"  # the driver caps the capability's 8
    assert pf.extra["numvfs"] == "4"
    vfs = sorted(a for a, d in devs.items() if d.parent_addr == PF0)
    assert [str(a) for a in vfs] == ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4", "0000:01:10.6"]
    for addr in vfs:
        vf = devs[addr]
        assert vf.dev_type is DevType.VF
        assert vf.vendor_product == "8086:10ca"
    assert devs[vfs[0]].ifname == "enp1s0v0"
    assert devs[vfs[0]].extra["mac"] == "02:00:00:00:00:10"  # the admin MAC


def test_k61_vfio_vf_has_no_netdev(k61: Path) -> None:
    vf = read_sysfs(k61).by_address()[PciAddress.parse("0000:01:10.6")]
    assert vf.driver == "vfio-pci"
    assert vf.ifname is None
    assert "mac" not in vf.extra


def test_k61_driverless_vfs_of_pf1(k61: Path) -> None:
    inv = read_sysfs(k61)
    pf1 = inv.by_address()[PF1]
    assert pf1.dev_type is DevType.PF
    vfs = inv.children_of(pf1)
    assert [str(v.address) for v in vfs] == ["0000:02:10.0", "0000:02:10.2"]
    assert all(v.driver is None and v.ifname is None for v in vfs)


def test_k61_plain_nic_virtio_and_numa(k61: Path) -> None:
    devs = read_sysfs(k61).by_address()
    e1000e = devs[PciAddress.parse("0000:03:00.0")]
    assert (e1000e.dev_type, e1000e.driver, e1000e.ifname) == (DevType.PCI, "e1000e", "enp3s0")
    virtio = devs[PciAddress.parse("0000:00:04.0")]
    assert virtio.ifname == "enp0s4"  # found under virtio0/net, not net/
    assert virtio.extra["mac"] == "52:54:00:00:04:00"
    assert all(d.numa_node is None for d in devs.values())  # numa_node -1 everywhere
    assert devs[PciAddress.parse("0000:01:10.2")].extra["iommu_group"] == "10"


def test_k61_counts_and_order(k61: Path) -> None:
    inv = read_sysfs(k61)
    assert inv.warnings == []
    assert len(inv.devices) == 17
    assert [d.address for d in inv.devices] == sorted(d.address for d in inv.devices)
    types = [d.dev_type for d in inv.devices]
    assert (types.count(DevType.PF), types.count(DevType.VF)) == (2, 6)
    # switchdev facts are EOPNOTSUPP on igb: absent, not an error
    assert not any("phys_port_name" in d.extra for d in inv.devices)


def test_k612_seven_vfs_cross_a_device_number(tmp_path: Path) -> None:
    inv = read_sysfs(real_sysfs(K612_7VFS, tmp_path))
    assert inv.warnings == []
    pf = inv.by_address()[PF0]
    assert [str(v.address) for v in inv.children_of(pf)] == [
        "0000:01:10.0",
        "0000:01:10.2",
        "0000:01:10.4",
        "0000:01:10.6",
        "0000:01:11.0",
        "0000:01:11.2",
        "0000:01:11.4",
    ]
    assert pf.extra["numvfs"] == "7"
    assert inv.by_address()[PciAddress.parse("0000:01:11.4")].driver == "vfio-pci"


def test_noiommu_noudev_variant(tmp_path: Path) -> None:
    inv = read_sysfs(real_sysfs(K61_NOIOMMU, tmp_path))
    assert inv.warnings == []
    assert not any("iommu_group" in d.extra for d in inv.devices)
    devs = inv.by_address()
    assert devs[PciAddress.parse("0000:01:10.6")].driver == "igbvf"
    assert devs[PciAddress.parse("0000:01:10.6")].ifname == "eth7"  # kernel names, no udev
    assert devs[PF0].ifname == "eth2"


@pytest.mark.parametrize("variant", [K61, K61_NOIOMMU, K612_7VFS])
def test_every_vf_agrees_with_its_pf(variant: str, tmp_path: Path) -> None:
    inv = read_sysfs(real_sysfs(variant, tmp_path))
    for dev in inv.devices:
        if dev.dev_type is DevType.PF:
            assert int(dev.extra["numvfs"]) == len(inv.children_of(dev))
        if dev.dev_type is DevType.VF:
            parent = inv.parent_of(dev)
            assert parent is not None and parent.dev_type is DevType.PF


def test_the_copied_capture_is_a_snapshot_and_holds_no_err_files() -> None:
    for variant in (K61, K61_NOIOMMU, K612_7VFS):
        assert is_snapshot(FIXTURES / variant / "sys")
    assert not list(FIXTURES.rglob("*.err"))
