"""Small lxml helpers shared by the XML builders and the drivers.

All XML is built as element trees, so every value is escaped by lxml; text that
comes back (files, libvirt) is read with a parser that resolves no entities and
fetches nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from lxml import etree

from pcifleet.pci.address import PciAddress

Element = etree._Element

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, remove_blank_text=True, huge_tree=False
)


def sub(
    parent: Element, tag: str, attrib: Mapping[str, str] | None = None, text: str | None = None
) -> Element:
    """Append a child element ``tag`` with attributes and text."""
    child = etree.SubElement(parent, tag, dict(attrib or {}))
    if text is not None:
        child.text = text
    return child


def to_string(element: Element) -> str:
    """Pretty-printed XML text (no declaration), ending in a newline."""
    etree.indent(element, space="  ")
    return etree.tostring(element, encoding="unicode", pretty_print=True)


def parse(text: str | bytes) -> Element:
    """Read XML produced by us or by libvirt; raises ``etree.XMLSyntaxError``."""
    data = text.encode() if isinstance(text, str) else text
    return etree.fromstring(data, _PARSER)


def pci_address_attrs(address: PciAddress, *, with_type: bool) -> dict[str, str]:
    """The ``<address>`` attributes libvirt uses for a host PCI function."""
    attrs = {"type": "pci"} if with_type else {}
    attrs.update(
        domain=f"0x{address.domain:04x}",
        bus=f"0x{address.bus:02x}",
        slot=f"0x{address.slot:02x}",
        function=f"0x{address.function:x}",
    )
    return attrs


def read_pci_address(element: Element | None) -> PciAddress | None:
    """The host PCI address in an ``<address>`` element, or None if it has none."""
    if element is None:
        return None
    try:
        return PciAddress(
            int(element.get("domain", "0"), 0),
            int(element.get("bus", ""), 0),
            int(element.get("slot", ""), 0),
            int(element.get("function", ""), 0),
        )
    except ValueError:
        return None
