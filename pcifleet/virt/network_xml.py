"""A libvirt network that pools the VFs of one PF.

``<forward mode='hostdev' managed='yes'><pf dev='ens1f0'/></forward>``: libvirt
enumerates the PF's VFs itself and hands one to each ``<interface type='network'>``.
"""

from __future__ import annotations

from lxml import etree

from pcifleet.virt.model import NetworkSpec
from pcifleet.virt.xmlutil import Element, sub, to_string


def network_element(spec: NetworkSpec) -> Element:
    """The ``<network>`` element for ``spec``."""
    network = etree.Element("network")
    sub(network, "name", text=spec.name)
    forward = sub(network, "forward", {"mode": "hostdev", "managed": "yes"})
    sub(forward, "pf", {"dev": spec.pf_dev})
    if spec.vlan is not None:
        vlan = sub(network, "vlan")
        sub(vlan, "tag", {"id": str(spec.vlan)})
    return network


def network_xml(spec: NetworkSpec) -> str:
    """The network XML text for ``spec``."""
    return to_string(network_element(spec))
