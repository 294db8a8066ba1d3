"""Read a host's PCI and SR-IOV devices from libvirt node-device XML.

The same facts as the sysfs reader, from what ``virsh nodedev-dumpxml`` prints:
``<capability type='pci'>`` (address, ids, class, ``<numa node>``, ``<iommuGroup>``,
nested ``virt_functions`` / ``phys_function``), ``<driver><name>``, and the
``net_*`` devices whose ``<parent>`` is a PCI device (netdev name and MAC).

Sources: a directory of XML files (one ``<device>`` each, or several under one root
element), or a live libvirt connection (``libvirt-python`` is imported only then).

The XML comes from outside the process, so it is parsed without DTDs, entity
expansion or network access, and a document with a DOCTYPE is refused. As with
sysfs, a device that cannot be read whole is skipped with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lxml import etree

from pcifleet.host.errors import HostDiscoveryError
from pcifleet.host.inventory import Inventory, make_inventory
from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import DevType, PciDevice
from pcifleet.pci.errors import InvalidPciAddress, InvalidPciDevice

MAX_XML_BYTES = 1 << 20  # one node device is a few KiB; refuse anything absurd


class _Skip(Exception):
    """This node device cannot be read whole; the message says why."""


@dataclass
class _PciNode:
    name: str
    device: PciDevice
    # A PF's VFs by address -> index: libvirt lists them in virtfnN order.
    vf_indexes: dict[str, str] = field(default_factory=dict)


@dataclass
class _NetNode:
    name: str
    parent: str | None
    ifname: str | None
    mac: str | None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_xml(data: bytes, label: str) -> etree._Element:
    """Parse untrusted XML; HostDiscoveryError naming ``label`` when it is not acceptable."""
    if len(data) > MAX_XML_BYTES:
        raise HostDiscoveryError(f"{label}: larger than {MAX_XML_BYTES} bytes")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise HostDiscoveryError(f"{label}: not well-formed XML: {exc}") from None
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise HostDiscoveryError(f"{label}: a DOCTYPE is not allowed in node-device XML")
    return root


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _int(text: str | None, label: str) -> int:
    if text is None:
        raise _Skip(f"no {label}")
    try:
        return int(text, 0)  # libvirt writes decimal here, hex ("0x01") in <address>
    except ValueError:
        raise _Skip(f"{label} ({text!r}) is not an integer") from None


def _address_el(el: etree._Element, label: str) -> PciAddress:
    try:
        return PciAddress(
            *(_int(el.get(f), f"{label} {f}") for f in ("domain", "bus", "slot", "function"))
        )
    except InvalidPciAddress as exc:
        raise _Skip(f"{label}: {exc}") from None


def _pci_node(dev: etree._Element, cap: etree._Element) -> _PciNode:
    name = _text(dev, "name") or "?"
    try:
        address = PciAddress(
            *(_int(_text(cap, f), f) for f in ("domain", "bus", "slot", "function"))
        )
    except InvalidPciAddress as exc:
        raise _Skip(str(exc)) from None
    vendor_el, product_el = cap.find("vendor"), cap.find("product")
    if vendor_el is None or product_el is None:
        raise _Skip("no vendor or product element")
    extra: dict[str, str] = {}
    klass = _text(cap, "class")
    if klass:
        extra["class"] = klass
    group = cap.find("iommuGroup")
    if group is not None and group.get("number") is not None:
        extra["iommu_group"] = str(_int(group.get("number"), "iommuGroup number"))
    numa_el = cap.find("numa")
    numa = _int(numa_el.get("node"), "numa node") if numa_el is not None else None

    dev_type, parent = DevType.PCI, None
    vf_indexes: dict[str, str] = {}
    pf_cap = cap.find("capability[@type='phys_function']")
    vfs_cap = cap.find("capability[@type='virt_functions']")
    if pf_cap is not None and pf_cap.find("address") is not None:
        dev_type = DevType.VF
        parent = _address_el(pf_cap.find("address"), "phys_function address")  # type: ignore[arg-type]
    elif vfs_cap is not None:
        vfs = vfs_cap.findall("address")
        max_count = vfs_cap.get("maxCount")
        total = _int(max_count, "virt_functions maxCount") if max_count else len(vfs)
        # A PF with SR-IOV capability and no VFs enabled is still a PF.
        if vfs or total > 0:
            dev_type = DevType.PF
            extra["totalvfs"] = str(total)
            extra["numvfs"] = str(len(vfs))
            for i, vf in enumerate(vfs):
                try:
                    vf_indexes[str(_address_el(vf, "virt_functions address"))] = str(i)
                except _Skip:
                    continue  # the VF's own document says what is wrong with it
    try:
        device = PciDevice(
            address=address,
            vendor_id=vendor_el.get("id") or "",
            product_id=product_el.get("id") or "",
            dev_type=dev_type,
            parent_addr=parent,
            numa_node=numa,
            driver=_text(dev, "driver/name"),
            extra=extra,
        )
    except InvalidPciDevice as exc:
        raise _Skip(str(exc)) from None
    return _PciNode(name, device, vf_indexes)


def _device_elements(root: etree._Element) -> list[etree._Element]:
    """``<device>`` roots, or the ``<device>`` children of a wrapper (``<node>``, ``<devices>``)."""
    if root.tag == "device":
        return [root]
    return list(root.iterfind("device"))


def inventory_from_xml(
    documents: Iterable[tuple[str, bytes]], source: str, warnings: list[str] | None = None
) -> Inventory:
    """Build an inventory from ``(label, xml_bytes)`` documents of node devices."""
    pci: dict[str, PciDevice] = {}
    vf_indexes: dict[str, str] = {}
    nets: list[_NetNode] = []
    warnings = list(warnings or [])
    for label, data in documents:
        try:
            root = parse_xml(data, label)
        except HostDiscoveryError as exc:
            warnings.append(f"{exc}; skipped")
            continue
        for dev in _device_elements(root):
            name = _text(dev, "name") or label
            for cap in dev.iterfind("capability"):
                kind = cap.get("type")
                try:
                    if kind == "pci":
                        node = _pci_node(dev, cap)
                        pci[node.name] = node.device
                        vf_indexes.update(node.vf_indexes)
                    elif kind == "net":
                        nets.append(
                            _NetNode(
                                name,
                                _text(dev, "parent"),
                                _text(cap, "interface"),
                                _text(cap, "address"),
                            )
                        )
                except _Skip as skip:
                    warnings.append(f"{name}: skipped: {skip}")
    for name, device in pci.items():
        index = vf_indexes.get(str(device.address))
        if device.dev_type is DevType.VF and index is not None:
            pci[name] = replace(device, extra={**device.extra, "vf_index": index})
    devices = _attach_netdevs(pci, nets, warnings)
    return make_inventory(devices, warnings, source)


def _attach_netdevs(
    pci: dict[str, PciDevice], nets: list[_NetNode], warnings: list[str]
) -> list[PciDevice]:
    """Give each PCI device the netdev whose parent it is (first by name if several)."""
    by_parent: dict[str, list[_NetNode]] = {}
    for net in nets:
        if net.parent in pci and net.ifname:
            by_parent.setdefault(net.parent, []).append(net)
    out = []
    for name, device in pci.items():
        children = sorted(by_parent.get(name, []), key=lambda n: n.ifname or "")
        if not children:
            out.append(device)
            continue
        own = children[0]
        extra = dict(device.extra)
        if own.mac:
            extra["mac"] = own.mac
        if len(children) > 1:
            extra["netdevs"] = ",".join(n.ifname or "" for n in children)
        try:
            out.append(
                PciDevice.from_dict({**device.to_dict(), "ifname": own.ifname, "extra": extra})
            )
        except InvalidPciDevice as exc:
            warnings.append(f"{name}: skipped: netdev {own.name}: {exc}")
    return out


def read_nodedev_dir(directory: Path) -> Inventory:
    """Node devices from the ``*.xml`` files of ``directory`` (``virsh nodedev-dumpxml`` output)."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".xml"))
    except OSError as exc:
        raise HostDiscoveryError(
            f"cannot list node-device XML in {directory}: {exc.strerror}"
        ) from None
    documents: list[tuple[str, bytes]] = []
    warnings: list[str] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                documents.append((path, f.read(MAX_XML_BYTES + 1)))
        except OSError as exc:
            warnings.append(f"{path}: unreadable ({exc.strerror}); skipped")
    return inventory_from_xml(documents, f"nodedev-xml:{directory}", warnings)


def read_nodedev_libvirt(uri: str) -> Inventory:
    """Node devices of a live libvirt connection (read-only), e.g. ``qemu:///system``."""
    try:
        import libvirt
    except ImportError:
        raise HostDiscoveryError(
            "libvirt-python is not installed (install pcifleet with the 'libvirt' extra)"
        ) from None
    libvirt.registerErrorHandler(_quiet, None)  # errors come back as exceptions
    try:
        conn = libvirt.openReadOnly(uri)
    except libvirt.libvirtError as exc:
        raise HostDiscoveryError(f"cannot connect to libvirt at {uri}: {exc}") from None
    try:
        flags = (
            libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
            | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_NET
        )
        docs = []
        for dev in conn.listAllDevices(flags):
            try:
                docs.append((dev.name(), dev.XMLDesc(0).encode()))
            except libvirt.libvirtError:
                continue  # removed between listing and reading: like a vanished VF
    except libvirt.libvirtError as exc:
        raise HostDiscoveryError(f"cannot list node devices at {uri}: {exc}") from None
    finally:
        conn.close()
    return inventory_from_xml(docs, f"libvirt:{uri}")


def _quiet(_ctx: Any, _err: Any) -> None:
    """libvirt prints every error to stderr unless a handler takes it."""
