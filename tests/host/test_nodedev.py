"""libvirt node-device discovery: agrees with sysfs, and refuses hostile XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.host.errors import HostDiscoveryError
from pcifleet.host.fakenodedev import (
    nodedev_documents,
    write_libvirt_test_driver,
    write_nodedev_dir,
)
from pcifleet.host.fakesys import FakeDevice, FakeNetdev, Fault, write_fake_sysfs
from pcifleet.host.nodedev import inventory_from_xml, read_nodedev_dir, read_nodedev_libvirt
from pcifleet.host.sysfs import read_sysfs
from pcifleet.pci import DevType, PciAddress
from tests.host.hosts import PF, pf_with_vfs
from tests.system import unavailable


def _host() -> list[FakeDevice]:
    """PF with VFs (one driverless), PF with 0 VFs, GPU, plain NIC, virtio-net."""
    devices = [
        *pf_with_vfs(3, totalvfs=64),
        FakeDevice("0000:3b:02.3", "8086", "154c", numa_node=0, physfn=PF),
        FakeDevice("0000:86:00.0", "8086", "1572", numa_node=1, driver="i40e", totalvfs=64),
        FakeDevice(
            "0000:5e:00.0", "10de", "1db4", class_code="0x030200", numa_node=1, driver="vfio-pci"
        ),
        FakeDevice(
            "0000:03:00.0",
            "8086",
            "10d3",
            driver="e1000e",
            netdevs=[FakeNetdev("enp3s0", mac="52:54:00:00:03:00")],
        ),
        FakeDevice(
            "0000:00:04.0",
            "1af4",
            "1000",
            driver="virtio-pci",
            netdevs=[FakeNetdev("enp0s4", virtio=True)],
        ),
    ]
    return devices


def test_sysfs_and_nodedev_xml_give_the_same_inventory(tmp_path: Path) -> None:
    host = _host()
    from_sysfs = read_sysfs(write_fake_sysfs(host, tmp_path / "sys"))
    from_xml = read_nodedev_dir(write_nodedev_dir(host, tmp_path / "xml"))
    assert from_sysfs.warnings == from_xml.warnings == []
    assert from_xml.devices == from_sysfs.devices
    assert len(from_xml.devices) == 9
    pf0 = from_xml.by_address()[PciAddress.parse("0000:86:00.0")]
    assert pf0.dev_type is DevType.PF and pf0.extra["numvfs"] == "0"


def test_live_libvirt_connection_test_driver(tmp_path: Path) -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        unavailable("libvirt-python is not installed (extra 'libvirt'; needs libvirt-dev)")
    host = _host()
    uri = write_libvirt_test_driver(host, tmp_path / "host.xml")
    live = read_nodedev_libvirt(uri)
    from_sysfs = read_sysfs(write_fake_sysfs(host, tmp_path / "sys"))
    assert live.warnings == []
    assert live.source == f"libvirt:{uri}"
    # libvirt's test driver does not keep <driver> of defined devices; all else agrees.
    assert [d.to_dict() | {"driver": None} for d in live.devices] == [
        d.to_dict() | {"driver": None} for d in from_sysfs.devices
    ]


def test_live_libvirt_unreachable(tmp_path: Path) -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        unavailable("libvirt-python is not installed")
    with pytest.raises(HostDiscoveryError, match="cannot connect to libvirt"):
        read_nodedev_libvirt(f"test://{tmp_path}/missing.xml")


def test_default_test_driver_has_no_pci_devices() -> None:
    try:
        import libvirt  # noqa: F401
    except ImportError:
        unavailable("libvirt-python is not installed")
    inv = read_nodedev_libvirt("test:///default")
    assert inv.devices == [] and inv.warnings == []


def test_vf_faults_are_not_listed_by_libvirt(tmp_path: Path) -> None:
    host = _host()
    host[2].fault = Fault.VANISHED
    docs = nodedev_documents(host)
    assert "pci_0000_3b_02_1" not in docs
    assert "pci_0000_3b_02_0" in docs and "net_ens1f0v0_02_00_00_00_00_00" in docs


PCI_DEV = b"""<device><name>pci_0000_01_00_0</name><parent>computer</parent>
<driver><name>igb</name></driver>
<capability type='pci'><class>0x020000</class><domain>0</domain><bus>1</bus><slot>0</slot>
<function>0</function><product id='0x10c9'>82576</product><vendor id='0x8086'>Intel</vendor>
<capability type='virt_functions' maxCount='7'/>
<iommuGroup number='6'><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></iommuGroup>
</capability></device>"""


def _inv(*docs: bytes):  # type: ignore[no-untyped-def]
    return inventory_from_xml([(f"doc{i}", d) for i, d in enumerate(docs)], "test")


def test_pf_with_zero_vfs_and_no_numa_element() -> None:
    inv = _inv(PCI_DEV)
    (pf,) = inv.devices
    assert (pf.dev_type, pf.numa_node, pf.driver) == (DevType.PF, None, "igb")
    assert pf.extra == {"class": "0x020000", "iommu_group": "6", "totalvfs": "7", "numvfs": "0"}


def test_a_wrapper_element_with_several_devices() -> None:
    net = b"""<device><name>net_enp1s0_52_54_00_00_01_00</name><parent>pci_0000_01_00_0</parent>
    <capability type='net'><interface>enp1s0</interface><address>52:54:00:00:01:00</address>
    </capability></device>"""
    inv = _inv(b"<devices>" + PCI_DEV + net + b"</devices>")
    assert inv.devices[0].ifname == "enp1s0"
    assert inv.devices[0].extra["mac"] == "52:54:00:00:01:00"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<device><name>&lol3;</name></device>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<device><name>pci_0000_01_00_0</name>
<capability type='pci'><class>&x;</class></capability></device>"""


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (BILLION_LAUGHS, "DOCTYPE is not allowed"),
        (EXTERNAL_ENTITY, "DOCTYPE is not allowed"),
        (b"<device><name>x</name>", "not well-formed"),
        (b"", "not well-formed"),
        (b"<device>" + b"x" * (1 << 20) + b"</device>", "larger than"),
    ],
)
def test_hostile_documents_are_skipped_with_a_warning(doc: bytes, reason: str) -> None:
    inv = _inv(doc, PCI_DEV)
    assert [str(d.address) for d in inv.devices] == ["0000:01:00.0"]
    (warning,) = inv.warnings
    assert warning.startswith("doc0: ") and reason in warning


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (b"<bus>1</bus>", b"<bus>999</bus>", "bus"),
        (b"<bus>1</bus>", b"", "no bus"),
        (b"<slot>0</slot>", b"<slot>zero</slot>", "slot ('zero') is not an integer"),
        (b"<vendor id='0x8086'>Intel</vendor>", b"", "no vendor or product"),
        (b"id='0x10c9'", b"id='0x10c9z'", "product_id"),
        (b"maxCount='7'", b"maxCount='many'", "maxCount"),
        (b"number='6'", b"number='-'", "iommuGroup number"),
    ],
)
def test_bad_fields_skip_the_device(old: bytes, new: bytes, reason: str) -> None:
    inv = _inv(PCI_DEV.replace(old, new))
    assert inv.devices == []
    (warning,) = inv.warnings
    assert warning.startswith("pci_0000_01_00_0: skipped: ") and reason in warning


def test_vf_with_bad_phys_function_address() -> None:
    vf = PCI_DEV.replace(
        b"<capability type='virt_functions' maxCount='7'/>",
        b"<capability type='phys_function'>"
        b"<address domain='0' bus='0x1ff' slot='0' function='0'/></capability>",
    )
    inv = _inv(vf)
    assert inv.devices == [] and "phys_function address" in inv.warnings[0]


def test_a_bad_netdev_name_leaves_the_device_out() -> None:
    net = b"""<device><name>net_x</name><parent>pci_0000_01_00_0</parent>
    <capability type='net'><interface>../../etc</interface></capability></device>"""
    inv = _inv(PCI_DEV, net)
    assert inv.devices == []
    assert "must not contain" in inv.warnings[0]


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(HostDiscoveryError, match="cannot list node-device XML"):
        read_nodedev_dir(tmp_path / "none")


def test_an_unreadable_file_is_a_warning(tmp_path: Path) -> None:
    directory = write_nodedev_dir(_host()[:1], tmp_path / "xml")
    (directory / "broken.xml").mkdir()
    inv = read_nodedev_dir(directory)
    assert len(inv.devices) == 1
    assert inv.warnings == [f"{directory}/broken.xml: unreadable (Is a directory); skipped"]


def test_the_real_kernel_host_as_libvirt_describes_it(k61: Path, tmp_path: Path) -> None:
    """The real-kernel capture, written as the node-device XML libvirt makes from the
    same sysfs, reads back as the same inventory."""
    from pcifleet.host.fakesys import fake_devices_from

    real = read_sysfs(k61)
    directory = write_nodedev_dir(fake_devices_from(real.devices), tmp_path / "xml")
    assert (directory / "pci_0000_01_10_6.xml").exists()
    from_xml = read_nodedev_dir(directory)
    assert from_xml.warnings == []
    assert from_xml.devices == real.devices
    vfio_vf = from_xml.by_address()[PciAddress.parse("0000:01:10.6")]
    assert (vfio_vf.driver, vfio_vf.ifname, vfio_vf.parent_addr) == (
        "vfio-pci",
        None,
        PciAddress.parse("0000:01:00.0"),
    )
