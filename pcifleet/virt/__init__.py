"""pcifleet.virt (layer 3): libvirt XML for passthrough devices and SR-IOV ports,
and the drivers that use it.

Typical use by a host agent::

    spec = server_domain_spec(server_uuid, server_name, vcpus, memory_mb, image_path,
                              hostdevs=[HostdevSpec(gpu_address)],
                              interfaces=[SriovInterfaceSpec("direct", mac, vf_address, vlan=100)])
    driver = get_driver("xml", state_dir=...)   # or get_driver("libvirt", uri=...)
    driver.define(spec); driver.start(spec.uuid)
    driver.stop(spec.uuid, timeout=60); driver.power_state(spec.uuid)  # PowerState.SHUTDOWN

The tasks the controller sends an agent are typed models in ``pcifleet.virt.tasks``
(``BuildTask``, ``DeleteTask``, ``PowerTask``, ``ConsoleTask``).
"""

from pcifleet.virt.domain_xml import domain_element, domain_xml, server_domain_spec
from pcifleet.virt.drivers import (
    DomainInfo,
    DriverInfo,
    LibvirtDriver,
    VirtDriver,
    XmlDriver,
    get_driver,
)
from pcifleet.virt.errors import (
    DeviceExists,
    DeviceNotFound,
    DomainExists,
    DomainNotFound,
    DomainStateError,
    DriverUnavailable,
    InvalidTask,
    InvalidVirtSpec,
    UnsupportedOperation,
    VirtDriverError,
)
from pcifleet.virt.interface_xml import (
    DeviceSpec,
    bridge_interface_element,
    device_element,
    device_xml,
    hostdev_element,
    interface_element,
    interface_xml,
)
from pcifleet.virt.model import (
    VIF_TYPES,
    VNIC_TYPES,
    BridgeInterfaceSpec,
    DomainSpec,
    GuestNumaCell,
    HostdevSpec,
    InterfaceSpec,
    NetworkSpec,
    SriovInterfaceSpec,
    domain_name_for,
)
from pcifleet.virt.network_xml import network_element, network_xml
from pcifleet.virt.port import interface_from_port
from pcifleet.virt.power import PowerState

__all__ = [
    "VIF_TYPES",
    "VNIC_TYPES",
    "BridgeInterfaceSpec",
    "DeviceExists",
    "DeviceNotFound",
    "DeviceSpec",
    "DomainExists",
    "DomainInfo",
    "DomainNotFound",
    "DomainSpec",
    "DomainStateError",
    "DriverInfo",
    "DriverUnavailable",
    "GuestNumaCell",
    "HostdevSpec",
    "InterfaceSpec",
    "InvalidTask",
    "InvalidVirtSpec",
    "LibvirtDriver",
    "NetworkSpec",
    "PowerState",
    "SriovInterfaceSpec",
    "UnsupportedOperation",
    "VirtDriver",
    "VirtDriverError",
    "XmlDriver",
    "bridge_interface_element",
    "device_element",
    "device_xml",
    "domain_element",
    "domain_name_for",
    "domain_xml",
    "get_driver",
    "hostdev_element",
    "interface_element",
    "interface_from_port",
    "interface_xml",
    "network_element",
    "network_xml",
    "server_domain_spec",
]
