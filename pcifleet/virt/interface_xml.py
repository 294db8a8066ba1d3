"""Device XML for one passthrough device or port (SR-IOV or bridge), alone or
inside a domain.

The same elements go into a whole domain and into hot plug/unplug calls
(``virDomainAttachDeviceFlags``), so there is one builder per shape.
"""

from __future__ import annotations

from lxml import etree

from pcifleet.virt.model import (
    BridgeInterfaceSpec,
    HostdevSpec,
    InterfaceSpec,
    SriovInterfaceSpec,
)
from pcifleet.virt.xmlutil import Element, pci_address_attrs, sub, to_string

DeviceSpec = HostdevSpec | SriovInterfaceSpec | BridgeInterfaceSpec


def hostdev_element(spec: HostdevSpec) -> Element:
    """``<hostdev mode='subsystem' type='pci' managed='yes'>`` for a whole device.

    managed='yes' lets libvirt detach the device from its host driver and bind it
    to vfio-pci at start (and give it back at stop).
    """
    hostdev = etree.Element("hostdev", mode="subsystem", type="pci", managed="yes")
    sub(hostdev, "driver", {"name": "vfio"})
    source = sub(hostdev, "source")
    sub(source, "address", pci_address_attrs(spec.address, with_type=False))
    return hostdev


def bridge_interface_element(spec: BridgeInterfaceSpec) -> Element:
    """``<interface type='bridge'>``: a virtio NIC whose tap libvirt adds to the bridge."""
    iface = etree.Element("interface", type="bridge")
    sub(iface, "mac", {"address": spec.mac})
    sub(iface, "source", {"bridge": spec.bridge})
    if spec.target_dev is not None:
        sub(iface, "target", {"dev": spec.target_dev})
    sub(iface, "model", {"type": spec.model})
    return iface


def interface_element(spec: InterfaceSpec) -> Element:
    """The element a port becomes; a ``<hostdev>`` for an SR-IOV direct-physical one."""
    if isinstance(spec, BridgeInterfaceSpec):
        return bridge_interface_element(spec)
    if spec.vnic_type == "direct-physical":
        assert spec.address is not None  # the spec guarantees it
        return hostdev_element(HostdevSpec(spec.address))
    if spec.vnic_type == "direct":
        # The VF itself; libvirt sets the MAC and VLAN on it through the PF.
        assert spec.address is not None
        iface = etree.Element("interface", type="hostdev", managed="yes")
        sub(iface, "mac", {"address": spec.mac})
        source = sub(iface, "source")
        sub(source, "address", pci_address_attrs(spec.address, with_type=True))
    else:
        # macvtap in passthrough mode on the VF's netdev: the guest sees virtio,
        # which keeps the server live-migratable.
        assert spec.vf_ifname is not None
        iface = etree.Element("interface", type="direct")
        sub(iface, "mac", {"address": spec.mac})
        sub(iface, "source", {"dev": spec.vf_ifname, "mode": "passthrough"})
    if spec.vlan is not None:
        vlan = sub(iface, "vlan")
        sub(vlan, "tag", {"id": str(spec.vlan)})
    if spec.vif_type == "802.1qbh":
        assert spec.profileid is not None
        port = sub(iface, "virtualport", {"type": "802.1Qbh"})
        sub(port, "parameters", {"profileid": spec.profileid})
    if spec.vnic_type == "macvtap":
        sub(iface, "model", {"type": "virtio"})
    if spec.trusted:
        iface.set("trustGuestRxFilters", "yes")
    return iface


def device_element(spec: DeviceSpec) -> Element:
    """The element for either kind of device spec."""
    if isinstance(spec, HostdevSpec):
        return hostdev_element(spec)
    return interface_element(spec)


def device_xml(spec: DeviceSpec) -> str:
    """Device XML text alone, as hot plug and unplug take it."""
    return to_string(device_element(spec))


def interface_xml(spec: InterfaceSpec) -> str:
    """Interface XML text alone (a ``<hostdev>`` for direct-physical)."""
    return to_string(interface_element(spec))
