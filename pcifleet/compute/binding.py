"""Port binding facts: what a bound port says, and unbinding.

``bind_sriov_port`` writes what the DESIGN's step 4 asks for once a VF is
chosen; ``bind_normal_port`` names the network's bridge on the host;
``unbind_port`` clears either again (delete, or a failed build). They change
the session only; the caller commits with the rest of its transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pcifleet.compute.context import utcnow
from pcifleet.store.cloud import Network, Port
from pcifleet.virt.tasks import BridgeBinding, bridge_name_for

UNBOUND = "unbound"
# The binding:profile keys binding writes; unbinding takes back only these, so
# what an admin wrote (``trusted``...) stays with the port, as Nova leaves it.
SRIOV_PROFILE_KEYS = ("pci_vendor_info", "pci_slot", "physical_network")


def sriov_profile(
    pci_vendor_info: str, pci_slot: str, physical_network: str | None
) -> dict[str, Any]:
    return {
        "pci_vendor_info": pci_vendor_info,
        "pci_slot": pci_slot,
        "physical_network": physical_network,
    }


def vif_details_for(network: Network, profileid: str | None = None) -> dict[str, Any]:
    """``vlan`` from the network's segmentation id (flat: "0"), ``profileid`` if set."""
    details: dict[str, Any] = {
        "port_filter": False,
        "vlan": str(network.segmentation_id or 0),
    }
    if profileid:
        details["profileid"] = profileid
    return details


def bind_sriov_port(
    session: Session,
    port: Port,
    *,
    host: str,
    pci_vendor_info: str,
    pci_slot: str,
    qbh_physical_networks: frozenset[str] = frozenset(),
    profileid: str | None = None,
) -> None:
    """Bind an SR-IOV port to the VF ``pci_slot`` of ``host`` (ACTIVE once built)."""
    network = session.get(Network, port.network_id)
    assert network is not None
    physnet = network.physical_network
    port.binding_host_id = host
    # Merged into what the admin wrote (Nova does the same): the device's keys win.
    port.binding_profile = {
        **(port.binding_profile or {}),
        **sriov_profile(pci_vendor_info, pci_slot, physnet),
    }
    if port.vnic_type == "direct-physical":
        port.vif_type = "hostdev_physical"  # what Neutron reports for a whole PF
    else:
        port.vif_type = "802.1qbh" if physnet in qbh_physical_networks else "hw_veb"
    port.vif_details = vif_details_for(network, profileid)
    port.updated_at = utcnow()


def bridge_details_for(network: Network) -> dict[str, Any]:
    """A normal port's ``vif_details``: its network's bridge, named as Neutron's
    linuxbridge agent names it, and what the host needs to give the bridge its
    uplink (the network's type, physical network and VLAN)."""
    vlan = network.network_type == "vlan"
    return BridgeBinding(
        bridge_name=bridge_name_for(network.id),
        network_type=network.network_type,
        physical_network=network.physical_network,
        segmentation_id=network.segmentation_id if vlan else None,
    ).to_dict() | {"port_filter": False}


def bind_normal_port(session: Session, port: Port, *, host: str) -> None:
    """A normal port is plugged into its network's Linux bridge on ``host``."""
    network = session.get(Network, port.network_id)
    assert network is not None
    port.binding_host_id = host
    port.vif_type = "bridge"
    port.vif_details = bridge_details_for(network)
    port.updated_at = utcnow()


def unbind_port(port: Port) -> None:
    """Back to how the user made it: no host, no profile, not attached to a server."""
    port.binding_host_id = ""
    port.binding_profile = {
        k: v for k, v in (port.binding_profile or {}).items() if k not in SRIOV_PROFILE_KEYS
    }
    port.vif_type = UNBOUND
    port.vif_details = {}
    port.status = "DOWN"
    port.device_id = ""
    port.device_owner = ""
    port.pci_request_id = None
    port.updated_at = utcnow()
