"""pcifleet.host (layer 2): what PCI and SR-IOV devices a host has, and the operator's config.

Sources: Linux sysfs (``read_sysfs``) and libvirt node devices (``read_nodedev_dir``,
``read_nodedev_libvirt``); both return an ``Inventory``. ``write_sysfs`` turns a
``pcifleet.pci.HostLayout`` into a sysfs tree (simulated hosts) and ``load_layout`` reads
one from a file (or the shipped sample host); ``load_host_config`` reads ``pcifleet.toml``
or ``nova.conf``, ``classify_inventory`` applies the device specs.
"""

from pcifleet.host.config import (
    HostConfig,
    config_from_document,
    load_host_config,
    parse_nova_conf,
    parse_toml_config,
)
from pcifleet.host.devname import check_devname
from pcifleet.host.errors import HostConfigError, HostDiscoveryError
from pcifleet.host.fakesys import (
    FakeDevice,
    FakeNetdev,
    Fault,
    fake_devices_from,
    write_fake_sysfs,
    write_sysfs,
)
from pcifleet.host.inventory import Inventory
from pcifleet.host.layout_file import load_layout, sample_layout_path
from pcifleet.host.nodedev import inventory_from_xml, read_nodedev_dir, read_nodedev_libvirt
from pcifleet.host.report import InventoryReport, SpecVerdict, classify_inventory
from pcifleet.host.snapshot import is_snapshot, materialize_snapshot
from pcifleet.host.sysfs import SysfsInventory, read_sysfs

__all__ = [
    "FakeDevice",
    "FakeNetdev",
    "Fault",
    "HostConfig",
    "HostConfigError",
    "HostDiscoveryError",
    "Inventory",
    "InventoryReport",
    "SpecVerdict",
    "SysfsInventory",
    "check_devname",
    "classify_inventory",
    "config_from_document",
    "fake_devices_from",
    "inventory_from_xml",
    "is_snapshot",
    "load_host_config",
    "load_layout",
    "materialize_snapshot",
    "parse_nova_conf",
    "parse_toml_config",
    "read_nodedev_dir",
    "read_nodedev_libvirt",
    "read_sysfs",
    "sample_layout_path",
    "write_fake_sysfs",
    "write_sysfs",
]
