"""The mark pcifleet puts in the ``<metadata>`` of the domains it creates.

``<pcifleet:instance xmlns:pcifleet="https://pcifleet.dev/xmlns/domain/1.0"
uuid="<server uuid>" project_id="..." flavor_name="..." host="..."/>`` (the
last three when known): libvirt keeps foreign-namespace metadata as written, so
an agent can later tell its own domains (which it may sweep when the controller
no longer knows them) from domains an operator defined by hand (never touched).

``host`` names the agent that made the domain. On a real host that is the host
itself; where several simulated hosts share one libvirtd (``pcifleet up --virt
libvirt``) it keeps each agent's sweep to its own domains. A mark without it
(made before it existed) counts as the agent's own.
"""

from __future__ import annotations

from lxml import etree

from pcifleet.virt.xmlutil import Element

XMLNS = "https://pcifleet.dev/xmlns/domain/1.0"
PREFIX = "pcifleet"
TAG = f"{{{XMLNS}}}instance"


def marker_element(
    server_uuid: str,
    project_id: str | None = None,
    flavor_name: str | None = None,
    owner: str | None = None,
) -> Element:
    """The ``<pcifleet:instance>`` element for a server."""
    attrs = {"uuid": server_uuid}
    if project_id is not None:
        attrs["project_id"] = project_id
    if flavor_name is not None:
        attrs["flavor_name"] = flavor_name
    if owner is not None:
        attrs["host"] = owner
    return etree.Element(TAG, attrs, nsmap={PREFIX: XMLNS})


def _marker(root: Element) -> Element | None:
    # The mark itself, as libvirt's metadata API hands it out (just this
    # element, its namespace dropped), or a whole domain holding it.
    if root.tag in (TAG, "instance"):
        return root
    return root.find(f"metadata/{TAG}")


def marked_uuid(root: Element) -> str | None:
    """The server uuid in a parsed domain's pcifleet mark, or None if unmarked."""
    marker = _marker(root)
    if marker is None:
        return None
    return (marker.get("uuid") or "").lower() or None


def marked_owner(root: Element) -> str | None:
    """The agent named in the pcifleet mark (``host``), or None when it names none."""
    marker = _marker(root)
    if marker is None:
        return None
    return marker.get("host") or None
