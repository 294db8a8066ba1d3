"""Read and edit existing domain XML: identity, and adding or removing a device.

The xml driver edits its stored files this way, and the libvirt driver uses it
where the connection cannot attach/detach itself (an inactive domain on the
``test:///`` driver). Devices are identified as libvirt does: an interface by its
MAC, a PCI hostdev by its host source address.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from pcifleet.pci.address import PciAddress
from pcifleet.virt import marker
from pcifleet.virt.errors import DeviceExists, DeviceNotFound, VirtDriverError
from pcifleet.virt.interface_xml import DeviceSpec, device_element
from pcifleet.virt.model import BridgeInterfaceSpec, HostdevSpec, SriovInterfaceSpec
from pcifleet.virt.xmlutil import Element, parse, read_pci_address, to_string


@dataclass(frozen=True, slots=True)
class DomainIdentity:
    name: str
    uuid: str
    title: str | None


def read_domain(text: str | bytes) -> Element:
    """Parse domain XML; raises ``VirtDriverError`` when it is not a domain."""
    try:
        root = parse(text)
    except etree.XMLSyntaxError as exc:
        raise VirtDriverError(f"domain XML does not parse: {exc}") from None
    if root.tag != "domain" or root.find("devices") is None:
        raise VirtDriverError(f"not a domain with devices: <{root.tag}>")
    return root


def identity(root: Element) -> DomainIdentity:
    """Name, UUID and title of a parsed domain."""
    return DomainIdentity(
        name=root.findtext("name") or "",
        uuid=(root.findtext("uuid") or "").lower(),
        title=root.findtext("title"),
    )


def _source_address(element: Element) -> PciAddress | None:
    if element.tag == "hostdev" and element.get("type") != "pci":
        return None
    if element.tag == "interface" and element.get("type") != "hostdev":
        return None
    return read_pci_address(element.find("source/address"))


def _mac(element: Element) -> str | None:
    if element.tag != "interface":
        return None
    mac = element.find("mac")
    return None if mac is None else (mac.get("address") or "").lower()


def _devices(root: Element) -> list[Element]:
    devices = root.find("devices")
    return [] if devices is None else list(devices)


def spec_key(spec: DeviceSpec) -> tuple[str, str]:
    """What identifies the device ``spec`` becomes: ("mac", m) or ("address", a)."""
    if isinstance(spec, HostdevSpec) or (
        isinstance(spec, SriovInterfaceSpec) and spec.vnic_type == "direct-physical"
    ):
        assert spec.address is not None  # the spec guarantees it
        return ("address", str(spec.address))
    return ("mac", spec.mac)


def find_device(root: Element, spec: DeviceSpec) -> Element | None:
    """The element in ``root``'s devices that is ``spec``'s device, if any."""
    kind, value = spec_key(spec)
    for element in _devices(root):
        if kind == "mac" and _mac(element) == value:
            return element
        if kind == "address" and element.tag == "hostdev":
            address = _source_address(element)
            if address is not None and str(address) == value:
                return element
    return None


def conflicts(root: Element, spec: DeviceSpec) -> str | None:
    """Why ``spec`` cannot be added to ``root`` (same MAC or same PCI function)."""
    kind, value = spec_key(spec)
    mac = value if kind == "mac" else None
    # a bridge port has no PCI function of its own, only its MAC
    address = None if isinstance(spec, BridgeInterfaceSpec) else spec.address
    for element in _devices(root):
        if mac is not None and _mac(element) == mac:
            return f"an interface with MAC {mac} is already attached"
        if address is not None and _source_address(element) == address:
            return f"PCI device {address} is already attached"
    return None


def add_device(text: str | bytes, spec: DeviceSpec) -> str:
    """Domain XML with ``spec``'s device added; raises ``DeviceExists``."""
    root = read_domain(text)
    problem = conflicts(root, spec)
    if problem is not None:
        raise DeviceExists(problem)
    devices = root.find("devices")
    assert devices is not None
    element = device_element(spec)
    # Keep libvirt's order (interfaces after disks, hostdevs last) so files read
    # the same as libvirt's own dumpxml.
    same = devices.findall(element.tag)
    if same:
        same[-1].addnext(element)
    elif element.tag == "interface" and devices.findall("disk"):
        devices.findall("disk")[-1].addnext(element)
    else:
        devices.append(element)
    return to_string(root)


def remove_device(text: str | bytes, spec: DeviceSpec) -> str:
    """Domain XML without ``spec``'s device; raises ``DeviceNotFound``."""
    root = read_domain(text)
    element = find_device(root, spec)
    if element is None:
        kind, value = spec_key(spec)
        raise DeviceNotFound(f"no device with {kind} {value} in domain {identity(root).name!r}")
    parent = element.getparent()
    assert parent is not None
    parent.remove(element)
    return to_string(root)


def retarget(
    text: str | bytes,
    netdevs: Mapping[str, str],
    hostdevs: Mapping[PciAddress, PciAddress],
    *,
    disk: str | None = None,
    console_log: str | None = None,
    owner: str | None = None,
) -> str:
    """The domain XML a live migration hands the destination: each macvtap
    interface (by MAC, in ``netdevs``) on the destination's VF netdev, each PCI
    hostdev (by source address, in ``hostdevs``) on the destination's device.
    Given, the destination's own files: ``disk`` (the root disk's overlay
    there, which the migration copies into), ``console_log``, and ``owner``
    (the agent there, named in pcifleet's mark). Everything else is as it runs
    here. A named device the domain lacks is an error: the migration would
    leave it on a device the destination does not have."""
    root = read_domain(text)
    if disk is not None:
        _set_attr(root, "devices/disk[@device='disk']/source", "file", disk, "a root disk")
    log = root.find("devices/serial/log")
    if console_log is not None and log is not None:  # a guest logging nowhere logs nowhere there
        log.set("file", console_log)
    if owner is not None:
        mark = root.find(f"metadata/{marker.TAG}")
        if mark is None:
            raise VirtDriverError("the domain has no pcifleet mark to give the destination")
        mark.set("host", owner)
    left_macs = {m.lower(): dev for m, dev in netdevs.items()}
    left_addresses = dict(hostdevs)
    for element in _devices(root):
        mac = _mac(element)
        if element.tag == "interface" and element.get("type") == "direct" and mac in left_macs:
            source = element.find("source")
            if source is None:
                raise VirtDriverError(f"interface {mac} has no <source>")
            source.set("dev", left_macs.pop(mac))
            continue
        address = _source_address(element)
        if address is not None and address in left_addresses:
            target = left_addresses.pop(address)
            found = element.find("source/address")
            assert found is not None  # _source_address read it
            found.set("domain", f"0x{target.domain:04x}")
            found.set("bus", f"0x{target.bus:02x}")
            found.set("slot", f"0x{target.slot:02x}")
            found.set("function", f"0x{target.function:x}")
    if left_macs or left_addresses:
        missing = sorted(left_macs) + sorted(str(a) for a in left_addresses)
        raise VirtDriverError(f"the domain has no device {', '.join(missing)} to migrate")
    return to_string(root)


def _set_attr(root: Element, path: str, name: str, value: str, what: str) -> None:
    found = root.find(path)
    if found is None:
        raise VirtDriverError(f"the domain has no {what} ({path}) to move")
    found.set(name, value)
