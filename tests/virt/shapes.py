"""The XML shapes pcifleet produces, as specs: one source for the golden files,
the libvirt checks and the documentation example."""

from __future__ import annotations

from collections.abc import Callable

from pcifleet.pci.address import PciAddress
from pcifleet.virt import (
    BridgeInterfaceSpec,
    DomainSpec,
    GuestNumaCell,
    HostdevSpec,
    NetworkSpec,
    SriovInterfaceSpec,
    device_xml,
    domain_xml,
    network_xml,
    server_domain_spec,
)
from pcifleet.virt.model import DomainType

A = PciAddress.parse

SERVER_UUID = "6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10"
IMAGE = "/var/lib/pcifleet/images/6f1c2b8e.qcow2"

GPU = HostdevSpec(A("0000:af:00.0"))
DIRECT_VLAN = SriovInterfaceSpec("direct", "fa:16:3e:4b:1c:2d", A("0000:3b:02.1"), vlan=100)
DIRECT_FLAT = SriovInterfaceSpec("direct", "fa:16:3e:4b:1c:2e", A("0000:3b:02.2"))
QBH = SriovInterfaceSpec(
    "direct", "fa:16:3e:4b:1c:2f", A("0000:3b:02.3"), vif_type="802.1qbh", profileid="pp-tenant.42"
)
MACVTAP_VLAN = SriovInterfaceSpec(
    "macvtap", "fa:16:3e:4b:1c:30", A("0000:3b:02.4"), vf_ifname="ens1f0v3", vlan=200
)
DIRECT_PHYSICAL = SriovInterfaceSpec(
    "direct-physical", "fa:16:3e:4b:1c:31", A("0000:5e:00.0"), vif_type="hostdev_physical"
)
# A normal port on its network's Linux bridge, tap named after the port id.
BRIDGE = BridgeInterfaceSpec("fa:16:3e:4b:1c:32", "brq5d1a8c2e-93", target_dev="tap7e3f1a2b-0c")
BRIDGE_NO_TAP = BridgeInterfaceSpec("fa:16:3e:4b:1c:33", "brq0a1b2c3d-4e")
# A trusted VF (binding:profile trusted=true): the guest may set its MAC and filters.
DIRECT_TRUSTED = SriovInterfaceSpec(
    "direct", "fa:16:3e:4b:1c:34", A("0000:3b:02.5"), vlan=100, trusted=True
)
MACVTAP_TRUSTED = SriovInterfaceSpec(
    "macvtap", "fa:16:3e:4b:1c:35", A("0000:3b:02.6"), vf_ifname="ens1f0v6", trusted=True
)

# Device shapes, each also put alone into a domain for the libvirt checks.
DEVICES: dict[str, HostdevSpec | SriovInterfaceSpec | BridgeInterfaceSpec] = {
    "interface-bridge": BRIDGE,
    "hostdev-pci": GPU,
    "interface-direct-vlan": DIRECT_VLAN,
    "interface-direct-flat": DIRECT_FLAT,
    "interface-direct-802.1qbh": QBH,
    "interface-macvtap-vlan": MACVTAP_VLAN,
    "interface-direct-physical": DIRECT_PHYSICAL,
    "interface-direct-trusted": DIRECT_TRUSTED,
    "interface-macvtap-trusted": MACVTAP_TRUSTED,
}

NETWORKS: dict[str, NetworkSpec] = {
    "network-hostdev-pf": NetworkSpec("sriov-ens1f0", "ens1f0"),
    "network-hostdev-pf-vlan": NetworkSpec("sriov-ens2f1-vlan300", "ens2f1", vlan=300),
}


def docs_example() -> DomainSpec:
    """The README example: one direct port on VLAN 100 and one GPU."""
    return server_domain_spec(
        SERVER_UUID,
        "web-1",
        vcpus=4,
        memory_mb=8192,
        image_path=IMAGE,
        hostdevs=[GPU],
        interfaces=[DIRECT_VLAN],
    )


def all_shapes() -> DomainSpec:
    """Every device shape in one domain, with a name that needs escaping."""
    return DomainSpec(
        name="pcifleet-all <shapes> & 'quotes'",
        uuid="0b5f3b0e-58a4-4f44-a8c5-4b1c2d3e4f50",
        memory_mb=2048,
        vcpus=2,
        image_path="/var/lib/pcifleet/images/all shapes & more.raw",
        image_format="raw",
        hostdevs=(GPU,),
        interfaces=(DIRECT_VLAN, DIRECT_FLAT, QBH, MACVTAP_VLAN, DIRECT_PHYSICAL),
        title='server "all" <shapes>',
        machine="q35",
    )


def every_nic() -> DomainSpec:
    """A server with a normal, a direct and a macvtap port: three NICs in port
    order, bridge and SR-IOV mixed (and a second bridge port with no tap name)."""
    return server_domain_spec(
        SERVER_UUID,
        "every-nic",
        vcpus=2,
        memory_mb=2048,
        image_path=IMAGE,
        interfaces=[BRIDGE, DIRECT_VLAN, MACVTAP_VLAN, BRIDGE_NO_TAP],
        console_log=CONSOLE_LOG,
        managed=True,
    )


def numa_one_cell() -> DomainSpec:
    """hw:numa_nodes=1 with dedicated CPUs: the guest on host node 1, its
    memory bound there and its vCPUs pinned to the node's CPUs."""
    return server_domain_spec(
        SERVER_UUID,
        "numa-1",
        vcpus=4,
        memory_mb=4096,
        image_path=IMAGE,
        interfaces=[DIRECT_VLAN],
        numa_cells=[GuestNumaCell(1, (0, 1, 2, 3), 4096, frozenset(range(8, 16)))],
    )


def numa_two_cells() -> DomainSpec:
    """hw:numa_nodes=2, shared CPUs: two guest cells on host nodes 0 and 1, no pinning."""
    return server_domain_spec(
        SERVER_UUID,
        "numa-2",
        vcpus=4,
        memory_mb=4096,
        image_path=IMAGE,
        interfaces=[DIRECT_VLAN, DIRECT_TRUSTED],
        numa_cells=[GuestNumaCell(0, (0, 1), 2048), GuestNumaCell(1, (2, 3), 2048)],
    )


def device_domain(name: str) -> DomainSpec:
    """A small domain holding only device shape ``name``."""
    device = DEVICES[name]
    hostdevs = (device,) if isinstance(device, HostdevSpec) else ()
    interfaces = () if isinstance(device, HostdevSpec) else (device,)
    return DomainSpec(
        name=f"shape-{name}",
        uuid="7d2c9a10-0000-4000-8000-%012x" % (sorted(DEVICES).index(name) + 1),
        memory_mb=512,
        vcpus=1,
        image_path=IMAGE,
        hostdevs=hostdevs,
        interfaces=interfaces,
    )


CONSOLE_LOG = "/var/lib/pcifleet/console/6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10.log"


# The server's own qcow2 overlay on the cached image (pcifleet.agent.disks).
OVERLAY = "/var/lib/pcifleet/disks/6f1c2b8e-4a8f-4f6e-9a52-3b8c1d2e7f10.qcow2"


def agent_built(domain_type: DomainType = "kvm") -> DomainSpec:
    """What the agent's build task defines: the docs example on its own overlay,
    with pcifleet's mark (project, flavor) in <metadata> and the serial console
    logged to a file; ``qemu`` where the host has no usable KVM."""
    return server_domain_spec(
        SERVER_UUID,
        "web-1",
        vcpus=4,
        memory_mb=8192,
        image_path=OVERLAY,
        hostdevs=[GPU],
        interfaces=[DIRECT_VLAN],
        console_log=CONSOLE_LOG,
        managed=True,
        domain_type=domain_type,
        project_id="9a8b7c6d5e4f40312233445566778899",
        flavor_name="m1.sriov <large> & 'fast'",
    )


DOMAINS: dict[str, Callable[[], DomainSpec]] = {
    "domain-docs-example": docs_example,
    "domain-all-shapes": all_shapes,
    "domain-agent-built": agent_built,
    "domain-agent-built-qemu": lambda: agent_built("qemu"),
    "domain-every-nic": every_nic,
    "domain-numa-one-cell": numa_one_cell,
    "domain-numa-two-cells": numa_two_cells,
}


def golden_texts() -> dict[str, str]:
    """Every golden file's expected text, by file stem."""
    texts = {name: device_xml(device) for name, device in DEVICES.items()}
    texts.update({name: network_xml(net) for name, net in NETWORKS.items()})
    texts.update({name: domain_xml(make()) for name, make in DOMAINS.items()})
    return texts
