"""Layer 1: the pure PCI model (addresses, devices, specs, aliases, requests, pools, states).

No I/O here; every other layer builds on these names.
"""

from pcifleet.pci.address import PciAddress
from pcifleet.pci.address_spec import GlobAddressSpec, RegexAddressSpec, parse_address_spec
from pcifleet.pci.alias import Alias, NumaPolicy, parse_aliases
from pcifleet.pci.device import DevType, PciDevice, check_ifname, normalize_id
from pcifleet.pci.devspec import (
    Classified,
    DeviceSpec,
    classify,
    explain,
    parse_device_specs,
    unmatched_specs,
)
from pcifleet.pci.errors import (
    InvalidAlias,
    InvalidDeviceSpec,
    InvalidDeviceTransition,
    InvalidNumaRequest,
    InvalidNumaTopology,
    InvalidPciAddress,
    InvalidPciDevice,
    InvalidPciRequest,
    PciRequestsUnsatisfiable,
)
from pcifleet.pci.layout import HostLayout, Nic
from pcifleet.pci.numa import (
    InstanceNuma,
    NumaCell,
    NumaTopology,
    apply_numa_policy,
    instance_numa,
    parse_numa_policy,
)
from pcifleet.pci.pools import PciPools, Pool, PoolTake, build_pools, pool_id_for, pool_id_of
from pcifleet.pci.ranges import format_index_list, parse_index_list
from pcifleet.pci.request import (
    ALIAS_EXTRA_SPEC,
    SRIOV_VNIC_TYPES,
    VNIC_TYPES,
    PciRequest,
    profile_trusted,
    request_for_port,
    requests_from_flavor,
)
from pcifleet.pci.state import Change, DeviceRecord, DeviceTracker, check_transition
from pcifleet.pci.status import IN_USE, DeviceStatus

__all__ = [
    "ALIAS_EXTRA_SPEC",
    "IN_USE",
    "SRIOV_VNIC_TYPES",
    "VNIC_TYPES",
    "Alias",
    "Change",
    "Classified",
    "DevType",
    "DeviceRecord",
    "DeviceSpec",
    "DeviceStatus",
    "DeviceTracker",
    "GlobAddressSpec",
    "HostLayout",
    "InstanceNuma",
    "InvalidAlias",
    "InvalidDeviceSpec",
    "InvalidDeviceTransition",
    "InvalidNumaRequest",
    "InvalidNumaTopology",
    "InvalidPciAddress",
    "InvalidPciDevice",
    "InvalidPciRequest",
    "Nic",
    "NumaCell",
    "NumaPolicy",
    "NumaTopology",
    "PciAddress",
    "PciDevice",
    "PciPools",
    "PciRequest",
    "PciRequestsUnsatisfiable",
    "Pool",
    "PoolTake",
    "RegexAddressSpec",
    "apply_numa_policy",
    "build_pools",
    "check_ifname",
    "check_transition",
    "classify",
    "explain",
    "format_index_list",
    "instance_numa",
    "normalize_id",
    "parse_address_spec",
    "parse_aliases",
    "parse_device_specs",
    "parse_index_list",
    "parse_numa_policy",
    "pool_id_for",
    "pool_id_of",
    "profile_trusted",
    "request_for_port",
    "requests_from_flavor",
    "unmatched_specs",
]
