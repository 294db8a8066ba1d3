"""Discovery on generated sysfs trees: the odd cases real hosts produce, and robustness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pcifleet.host.errors import HostDiscoveryError
from pcifleet.host.fakesys import (
    FakeDevice,
    FakeNetdev,
    Fault,
    write_fake_sysfs,
    write_sysfs,
)
from pcifleet.host.layout_file import load_layout
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import DevType, HostLayout, PciAddress
from tests.host.hosts import PF, pf_with_vfs


def _read(tmp_path: Path, devices: list[FakeDevice]):  # type: ignore[no-untyped-def]
    return read_sysfs(write_fake_sysfs(devices, tmp_path / "sys"))


def test_pf_with_vfs(tmp_path: Path) -> None:
    inv = _read(tmp_path, pf_with_vfs(3))
    assert inv.warnings == []
    pf, *vfs = inv.devices
    assert pf.dev_type is DevType.PF
    assert (pf.extra["totalvfs"], pf.extra["numvfs"]) == ("8", "3")
    assert [v.dev_type for v in vfs] == [DevType.VF] * 3
    assert {v.parent_addr for v in vfs} == {pf.address}
    assert [v.ifname for v in vfs] == ["ens1f0v0", "ens1f0v1", "ens1f0v2"]
    assert vfs[2].extra["mac"] == "02:00:00:00:00:02"
    assert all(d.numa_node == 0 for d in inv.devices)


def test_pf_with_sriov_capability_and_zero_vfs_is_a_pf(tmp_path: Path) -> None:
    inv = _read(tmp_path, pf_with_vfs(0))
    (pf,) = inv.devices
    assert pf.dev_type is DevType.PF
    assert (pf.extra["totalvfs"], pf.extra["numvfs"]) == ("8", "0")


def test_plain_device_and_unknown_numa(tmp_path: Path) -> None:
    inv = _read(
        tmp_path, [FakeDevice("0000:03:00.0", "8086", "10d3", numa_node=-1, driver="e1000e")]
    )
    (dev,) = inv.devices
    assert (dev.dev_type, dev.numa_node, dev.driver, dev.ifname) == (
        DevType.PCI,
        None,
        "e1000e",
        None,
    )


def test_a_gpu(tmp_path: Path) -> None:
    gpu = FakeDevice(
        "0000:5e:00.0", "10de", "1db4", class_code="0x030200", numa_node=1, driver="vfio-pci"
    )
    audio = FakeDevice("0000:5e:00.1", "10de", "10f0", class_code="0x040300", numa_node=1)
    inv = _read(tmp_path, [gpu, audio])
    dev, snd = inv.devices
    assert (dev.vendor_product, dev.extra["class"], dev.numa_node) == ("10de:1db4", "0x030200", 1)
    assert dev.dev_type is DevType.PCI and dev.driver == "vfio-pci"
    assert snd.driver is None and snd.extra["class"] == "0x040300"


def test_switchdev_representors_stay_off_the_pf(tmp_path: Path) -> None:
    switch_id = "3cfdfe0000000001"
    pf = FakeDevice(
        "0000:3b:00.0",
        "15b3",
        "101d",
        driver="mlx5_core",
        totalvfs=8,
        netdevs=[
            FakeNetdev("eth0", phys_port_name="pf0vf0", phys_switch_id=switch_id),
            FakeNetdev("eth1", phys_port_name="pf0vf1", phys_switch_id=switch_id),
            FakeNetdev(
                "ens1f0np0", mac="b8:ce:f6:00:00:01", phys_port_name="p0", phys_switch_id=switch_id
            ),
        ],
    )
    vf = FakeDevice(
        "0000:3b:00.2",
        "15b3",
        "101e",
        driver="mlx5_core",
        physfn=pf.address,
        netdevs=[FakeNetdev("ens1f0v0")],
    )
    inv = _read(tmp_path, [pf, vf])
    assert inv.warnings == []
    got_pf, got_vf = inv.devices
    assert got_pf.ifname == "ens1f0np0"  # the uplink, not a representor
    assert got_pf.extra["phys_port_name"] == "p0"
    assert got_pf.extra["phys_switch_id"] == switch_id
    assert got_pf.extra["representors"] == "eth0,eth1"
    assert got_vf.ifname == "ens1f0v0"


def test_virtio_netdev_hangs_off_virtio0(tmp_path: Path) -> None:
    dev = FakeDevice(
        "0000:00:04.0",
        "1af4",
        "1000",
        driver="virtio-pci",
        netdevs=[FakeNetdev("enp0s4", virtio=True)],
    )
    root = write_fake_sysfs([dev], tmp_path / "sys")
    assert (root / "class/net/enp0s4/device").resolve().name == "virtio0"
    assert read_sysfs(root).devices[0].ifname == "enp0s4"


def test_links_have_the_kernel_shapes(tmp_path: Path) -> None:
    root = write_fake_sysfs(pf_with_vfs(2), tmp_path / "sys")
    vf_dir = root / "bus/pci/devices/0000:3b:02.1"
    assert (
        os.readlink(root / "bus/pci/devices" / PF)
        == f"../../../devices/pci0000:00/0000:00:1b.1/{PF}"
    )
    assert os.readlink(vf_dir / "physfn") == f"../{PF}"
    assert os.readlink(root / "bus/pci/devices" / PF / "virtfn1") == "../0000:3b:02.1"
    assert os.readlink(vf_dir / "driver") == "../../../../bus/pci/drivers/iavf"
    assert os.readlink(vf_dir / "iommu_group") == "../../../../kernel/iommu_groups/2"
    assert os.readlink(vf_dir / "net/ens1f0v1/device") == "../../../0000:3b:02.1"
    assert os.readlink(root / "class/net/ens1f0v1") == (
        "../../devices/pci0000:00/0000:00:1b.1/0000:3b:02.1/net/ens1f0v1"
    )
    assert (root / "bus/pci/drivers/iavf/0000:3b:02.1").resolve() == vf_dir.resolve()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault.VANISHED, "device directory vanished"),
        (Fault.PARTIAL, "no device file"),
        (Fault.UNREADABLE, "numa_node is unreadable"),
        (Fault.DANGLING_DRIVER, "driver link dangles"),
        (Fault.GARBAGE, "vendor_id"),
    ],
)
def test_a_broken_vf_is_skipped_with_a_warning(tmp_path: Path, fault: Fault, reason: str) -> None:
    devices = pf_with_vfs(3)
    devices[2].fault = fault  # VF 1 of 3
    inv = _read(tmp_path, devices)
    assert [str(d.address) for d in inv.devices] == [PF, "0000:3b:02.0", "0000:3b:02.2"]
    (warning,) = inv.warnings
    assert warning.startswith("0000:3b:02.1: skipped: ") and reason in warning


def test_a_vf_whose_pf_vanished_is_skipped(tmp_path: Path) -> None:
    orphan = FakeDevice("0000:71:00.1", "8086", "10ca", physfn="0000:71:00.0")
    inv = _read(tmp_path, [orphan])
    assert inv.devices == []
    assert inv.warnings == ["0000:71:00.1: skipped: physfn link dangles (-> ../0000:71:00.0)"]


def test_files_that_vanish_after_listing(tmp_path: Path) -> None:
    """A file removed between the directory listing and its read: the device goes, nothing else."""
    root = write_fake_sysfs(pf_with_vfs(2), tmp_path / "sys")
    vf_dir = root / "bus/pci/devices/0000:3b:02.0"
    # sysfs attributes cannot be made to disappear on cue; a file replaced by a
    # dangling link reads as ENOENT while still being listed, which is the same thing.
    (vf_dir / "class").unlink()
    os.symlink("gone", vf_dir / "class")
    inv = read_sysfs(root)
    assert [str(d.address) for d in inv.devices] == [PF, "0000:3b:02.1"]
    assert inv.warnings == ["0000:3b:02.0: skipped: class vanished while the device was read"]


def test_odd_entries_in_the_device_list(tmp_path: Path) -> None:
    root = write_fake_sysfs(pf_with_vfs(0), tmp_path / "sys")
    (root / "bus/pci/devices/not-an-address").mkdir()
    (root / "bus/pci/devices/0000:99:00.0").write_text("a file, not a directory")
    inv = read_sysfs(root)
    assert [str(d.address) for d in inv.devices] == [PF]
    assert any("not-an-address: not a PCI address" in w for w in inv.warnings)
    assert "0000:99:00.0: skipped: not a directory" in inv.warnings


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("numa_node", "zero", "numa_node ('zero') is not an integer"),
        ("sriov_totalvfs", "", "sriov_totalvfs ('') is not an integer"),
        ("device", "0x12345", "product_id"),
        ("vendor", "\xff\xfe", "vendor is not ASCII text"),
    ],
)
def test_hostile_file_contents(tmp_path: Path, name: str, content: str, reason: str) -> None:
    root = write_fake_sysfs(pf_with_vfs(0), tmp_path / "sys")
    (root / "bus/pci/devices" / PF / name).write_bytes(content.encode("latin-1"))
    inv = read_sysfs(root)
    assert inv.devices == []
    assert reason in inv.warnings[0]


def test_physfn_pointing_at_a_non_device(tmp_path: Path) -> None:
    root = write_fake_sysfs(pf_with_vfs(1), tmp_path / "sys")
    vf_dir = root / "bus/pci/devices/0000:3b:02.0"
    (vf_dir / "physfn").unlink()
    os.symlink("../../../../kernel", vf_dir / "physfn")
    (root / "kernel").mkdir(exist_ok=True)
    inv = read_sysfs(root)
    assert [str(d.address) for d in inv.devices] == [PF]
    assert "physfn points to 'kernel', not a PCI device" in inv.warnings[0]


def test_a_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HostDiscoveryError, match=r"cannot list PCI devices in .*bus/pci/devices"):
        read_sysfs(tmp_path / "nowhere")


def test_sample_host_layout_round_trips(tmp_path: Path) -> None:
    layout = load_layout()
    inv = read_sysfs(write_sysfs(layout, tmp_path / "sys"))
    assert inv.warnings == []
    # sysfs always knows a few facts more (class, iommu_group); the rest is identical.
    assert [_core(d) for d in inv.devices] == [_core(d) for d in layout.devices()]
    for got, want in zip(inv.devices, layout.devices(), strict=True):
        assert {k: got.extra[k] for k in want.extra} == dict(want.extra)
    pfs = [d for d in inv.devices if d.dev_type is DevType.PF]
    assert [d.ifname for d in pfs] == ["ens1f0", "ens2f0"]
    assert len(inv.devices) == 2 + 128 + 2


def test_layout_pf_without_vfs_and_vf_past_a_bus(tmp_path: Path) -> None:
    layout = HostLayout.from_dict(
        {
            "hostname": "edge",
            "nics": [
                {
                    "address": "0000:01:00.0",
                    "vendor_id": "8086",
                    "product_id": "10c9",
                    "vf_product_id": "10ca",
                    "numvfs": 0,
                    "totalvfs": 7,
                    "ifname": "enp1s0",
                },
                {
                    "address": "0000:02:00.0",
                    "vendor_id": "8086",
                    "product_id": "1572",
                    "vf_product_id": "154c",
                    "numvfs": 4,
                    "vf_offset": 254,
                    "driver": "i40e",
                },
            ],
        }
    )
    inv = read_sysfs(write_sysfs(layout, tmp_path / "sys"))
    devs = inv.by_address()
    assert devs[PciAddress.parse("0000:01:00.0")].dev_type is DevType.PF
    vfs = inv.children_of(devs[PciAddress.parse("0000:02:00.0")])
    assert [str(v.address) for v in vfs] == [
        "0000:02:1f.6",
        "0000:02:1f.7",
        "0000:03:00.0",
        "0000:03:00.1",
    ]


def _core(d):  # type: ignore[no-untyped-def]
    return (d.address, d.vendor_product, d.dev_type, d.parent_addr, d.numa_node, d.ifname, d.driver)


def test_trees_are_never_merged(tmp_path: Path) -> None:
    root = write_fake_sysfs(pf_with_vfs(1), tmp_path / "sys")
    with pytest.raises(FileExistsError, match="already holds a sysfs tree"):
        write_fake_sysfs(pf_with_vfs(1), root)
