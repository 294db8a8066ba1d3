"""Write libvirt node-device XML for a described host (the ``fakesys`` descriptions).

Used to show that both discovery sources agree: the same ``FakeDevice`` list becomes
a sysfs tree (``write_fake_sysfs``) and the XML libvirt would print for that host.
``write_libvirt_test_driver`` wraps the devices in a ``<node>`` document that
libvirt's test driver loads (``test:///<absolute path>``), so the live-connection
reader runs against a real libvirt without a host.

Devices with a ``fault`` are left out: libvirt lists only devices it could read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from pcifleet.host.fakesys import FakeDevice
from pcifleet.pci.address import PciAddress


def nodedev_name(address: PciAddress) -> str:
    """libvirt's name of a PCI node device: ``pci_0000_01_10_2``."""
    return f"pci_{address.domain:04x}_{address.bus:02x}_{address.slot:02x}_{address.function:x}"


def _address(parent: etree._Element, addr: PciAddress) -> None:
    etree.SubElement(
        parent,
        "address",
        domain=f"0x{addr.domain:04x}",
        bus=f"0x{addr.bus:02x}",
        slot=f"0x{addr.slot:02x}",
        function=f"0x{addr.function:x}",
    )


def _sub(parent: etree._Element, tag: str, text: str) -> etree._Element:
    el = etree.SubElement(parent, tag)
    el.text = text
    return el


def _pci_element(dev: FakeDevice, vfs: list[PciAddress], group: int) -> etree._Element:
    addr = PciAddress.parse(dev.address)
    root = etree.Element("device")
    _sub(root, "name", nodedev_name(addr))
    _sub(root, "parent", "computer")
    if dev.driver is not None:
        _sub(etree.SubElement(root, "driver"), "name", dev.driver)
    cap = etree.SubElement(root, "capability", type="pci")
    _sub(cap, "class", dev.class_code)
    for field in ("domain", "bus", "slot", "function"):
        _sub(cap, field, str(getattr(addr, field)))
    etree.SubElement(cap, "product", id=f"0x{dev.product_id}")
    etree.SubElement(cap, "vendor", id=f"0x{dev.vendor_id}")
    if dev.physfn is not None:
        _address(
            etree.SubElement(cap, "capability", type="phys_function"), PciAddress.parse(dev.physfn)
        )
    if dev.totalvfs is not None or vfs:
        total = dev.totalvfs if dev.totalvfs is not None else len(vfs)
        vf_cap = etree.SubElement(cap, "capability", type="virt_functions", maxCount=str(total))
        for vf in vfs:
            _address(vf_cap, vf)
    _address(etree.SubElement(cap, "iommuGroup", number=str(group)), addr)
    if dev.numa_node >= 0:  # libvirt leaves <numa> out when the kernel says -1
        etree.SubElement(cap, "numa", node=str(dev.numa_node))
    return root


def _net_element(ifname: str, mac: str | None, parent: str) -> etree._Element:
    root = etree.Element("device")
    suffix = f"_{mac.replace(':', '_')}" if mac else ""
    _sub(root, "name", f"net_{ifname}{suffix}")
    _sub(root, "parent", parent)
    cap = etree.SubElement(root, "capability", type="net")
    _sub(cap, "interface", ifname)
    if mac:
        _sub(cap, "address", mac)
    return root


def nodedev_elements(devices: Iterable[FakeDevice]) -> list[etree._Element]:
    """One ``<device>`` per PCI function and per netdev, as ``nodedev-dumpxml`` prints."""
    devices = [d for d in devices if d.fault is None]
    vfs_of: dict[PciAddress, list[PciAddress]] = {}
    for dev in devices:
        if dev.physfn is not None:
            vfs_of.setdefault(PciAddress.parse(dev.physfn), []).append(
                PciAddress.parse(dev.address)
            )
    # The same automatic IOMMU group numbering as write_fake_sysfs.
    next_group = 1 + max((d.iommu_group for d in devices if d.iommu_group is not None), default=-1)
    out = []
    for dev in devices:
        addr = PciAddress.parse(dev.address)
        group = dev.iommu_group
        if group is None:
            group, next_group = next_group, next_group + 1
        out.append(_pci_element(dev, sorted(vfs_of.get(addr, [])), group))
        for netdev in dev.netdevs:
            out.append(_net_element(netdev.name, netdev.mac, nodedev_name(addr)))
    return out


def nodedev_documents(devices: Iterable[FakeDevice]) -> dict[str, bytes]:
    """``{node-device name: XML}`` for ``devices``."""
    return {
        el.findtext("name") or "": etree.tostring(el, pretty_print=True)
        for el in nodedev_elements(devices)
    }


def write_nodedev_dir(devices: Iterable[FakeDevice], directory: Path) -> Path:
    """One ``<name>.xml`` per node device in ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, xml in nodedev_documents(devices).items():
        (directory / f"{name}.xml").write_bytes(xml)
    return directory


def write_libvirt_test_driver(devices: Iterable[FakeDevice], path: Path) -> str:
    """A libvirt test-driver host holding ``devices``; returns its URI (``test:///...``)."""
    node = etree.Element("node")
    cpu = etree.SubElement(node, "cpu")
    for tag, text in (("nodes", "1"), ("sockets", "1"), ("cores", "2"), ("threads", "1")):
        _sub(cpu, tag, text)
    _sub(node, "memory", "2097152")
    for el in nodedev_elements(devices):
        node.append(el)
    path.write_bytes(etree.tostring(node, pretty_print=True))
    return f"test://{path.resolve()}"
