"""The mark pcifleet puts in the ``<metadata>`` of the domains it creates.

``<pcifleet:instance xmlns:pcifleet="https://pcifleet.dev/xmlns/domain/1.0"
uuid="<server uuid>" project_id="..." flavor_name="..."/>`` (the last two when
known): libvirt keeps foreign-namespace metadata as written, so
an agent can later tell its own domains (which it may sweep when the controller
no longer knows them) from domains an operator defined by hand (never touched).
"""

from __future__ import annotations

from lxml import etree

from pcifleet.virt.xmlutil import Element

XMLNS = "https://pcifleet.dev/xmlns/domain/1.0"
PREFIX = "pcifleet"
TAG = f"{{{XMLNS}}}instance"


def marker_element(
    server_uuid: str, project_id: str | None = None, flavor_name: str | None = None
) -> Element:
    """The ``<pcifleet:instance>`` element for a server."""
    attrs = {"uuid": server_uuid}
    if project_id is not None:
        attrs["project_id"] = project_id
    if flavor_name is not None:
        attrs["flavor_name"] = flavor_name
    return etree.Element(TAG, attrs, nsmap={PREFIX: XMLNS})


def marked_uuid(root: Element) -> str | None:
    """The server uuid in a parsed domain's pcifleet mark, or None if unmarked."""
    marker = root.find(f"metadata/{TAG}")
    if marker is None:
        return None
    return (marker.get("uuid") or "").lower() or None
