"""Port binding facts: what a bound port says, and unbinding.

``bind_sriov_port`` writes what the DESIGN's step 4 asks for once a VF is
chosen; ``bind_normal_port`` names the network's bridge on the host;
``unbind_port`` clears either again (delete, or a failed build). They change
the session only; the caller commits with the rest of its transaction.

An SR-IOV binding adds its keys to the ``binding:profile`` an admin wrote and
unbinding takes only those keys away again, as Nova does: the admin's own keys
(``profileid`` of an 802.1Qbh port...) outlive any number of boots.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from pcifleet.compute.context import utcnow
from pcifleet.compute.errors import BadRequest
from pcifleet.compute.ports import MAC_RE, free_mac
from pcifleet.store.claims import ClaimedDevice
from pcifleet.store.cloud import Network, Port
from pcifleet.virt.tasks import BridgeBinding, bridge_name_for

log = logging.getLogger(__name__)
UNBOUND = "unbound"
QBH = "802.1qbh"
# What binding writes into binding:profile, and so what unbinding removes.
BINDING_PROFILE_KEYS = ("pci_vendor_info", "pci_slot", "physical_network", "device_mac_address")
# vnic_types whose VF an upstream 802.1Qbh switch manages (a whole PF is not).
QBH_VNIC_TYPES = ("direct", "macvtap")


def sriov_profile(
    pci_vendor_info: str, pci_slot: str, physical_network: str | None
) -> dict[str, Any]:
    return {
        "pci_vendor_info": pci_vendor_info,
        "pci_slot": pci_slot,
        "physical_network": physical_network,
    }


def admin_profile(profile: dict[str, Any] | None) -> dict[str, Any]:
    """The keys of a ``binding:profile`` an admin wrote (what binding did not)."""
    return {k: v for k, v in (profile or {}).items() if k not in BINDING_PROFILE_KEYS}


def vif_details_for(network: Network) -> dict[str, Any]:
    """``vlan`` from the network's segmentation id (flat: "0")."""
    return {"port_filter": False, "vlan": str(network.segmentation_id or 0)}


def qbh_details_for(profile: dict[str, Any]) -> dict[str, Any]:
    """802.1qbh: the port profile and no VLAN, which the upstream switch's
    profile sets. A profile without ``profileid`` (an admin removed it after
    the boot was accepted) gives details without one; the host's build then
    fails naming the field."""
    details: dict[str, Any] = {"port_filter": False}
    profileid = profile.get("profileid")
    if isinstance(profileid, str) and profileid:
        details["profileid"] = profileid
    return details


def is_qbh(port: Port, network: Network, qbh_physical_networks: frozenset[str]) -> bool:
    return (
        port.vnic_type in QBH_VNIC_TYPES
        and network.physical_network is not None
        and network.physical_network in qbh_physical_networks
    )


def check_qbh_profile(port: Port, network: Network, qbh_physical_networks: frozenset[str]) -> None:
    """A port that will bind as 802.1qbh must carry its port profile; 400 if not."""
    if not is_qbh(port, network, qbh_physical_networks):
        return
    if not (port.binding_profile or {}).get("profileid"):
        raise BadRequest(
            f"Port {port.id} needs binding:profile.profileid: its physical network "
            f"{network.physical_network} binds as 802.1qbh, where the upstream switch applies "
            "the port profile named there (an admin sets it: openstack port set "
            "--binding-profile profileid=NAME)"
        )


def bind_sriov_port(
    session: Session,
    port: Port,
    *,
    host: str,
    device: ClaimedDevice,
    qbh_physical_networks: frozenset[str] = frozenset(),
) -> None:
    """Bind an SR-IOV port to ``device`` (its VF, or its PF) of ``host`` (ACTIVE once built).

    ``direct-physical`` hands the guest the whole PF, whose MAC is the NIC's own:
    the port takes it and ``device_mac_address`` says so, as Nova does, so the
    address Neutron shows is the one on the wire.
    """
    network = session.get(Network, port.network_id)
    assert network is not None
    physnet = network.physical_network
    mine = admin_profile(port.binding_profile)
    profile = mine | sriov_profile(device.pci_vendor_info, device.address, physnet)
    details = vif_details_for(network)
    if port.vnic_type == "direct-physical":
        port.vif_type = "hostdev_physical"  # what Neutron reports for a whole PF
        pf_mac = _device_mac(device)
        if pf_mac is not None:
            profile["device_mac_address"] = pf_mac
            _take_mac(session, port, pf_mac)
        elif port.mac_address == (port.binding_profile or {}).get("device_mac_address"):
            # moved to a PF without a netdev: the old PF's MAC is not the port's to keep
            port.mac_address = free_mac(session)
    elif is_qbh(port, network, qbh_physical_networks):
        port.vif_type = QBH
        details = qbh_details_for(mine)
    else:
        port.vif_type = "hw_veb"
    port.binding_host_id = host
    port.binding_profile = profile
    port.vif_details = details
    port.updated_at = utcnow()


def _device_mac(device: ClaimedDevice) -> str | None:
    mac = str(device.extra.get("mac") or "").lower()
    return mac if MAC_RE.match(mac) else None


def _take_mac(session: Session, port: Port, mac: str) -> None:
    if port.mac_address == mac:
        return
    other = session.scalar(select(Port.id).where(Port.mac_address == mac, Port.id != port.id))
    if other is not None:
        # The guest sees the PF's MAC whatever the port says; failing the boot
        # over another port's address would help no one.
        log.warning("port %s keeps its MAC: the PF's %s is port %s's", port.id, mac, other)
        return
    port.mac_address = mac


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
    """Back to how the user made it: no host, the admin's profile keys only, not
    attached to a server. A port that wore its PF's MAC gets an address of its
    own again (the PF's stays with the hardware, for whichever port takes it next)."""
    profile = port.binding_profile or {}
    session = object_session(port)
    if (
        session is not None
        and profile.get("device_mac_address")
        and port.mac_address == profile.get("device_mac_address")
    ):
        port.mac_address = free_mac(session)
    port.binding_host_id = ""
    port.binding_profile = admin_profile(profile)
    port.vif_type = UNBOUND
    port.vif_details = {}
    port.status = "DOWN"
    port.device_id = ""
    port.device_owner = ""
    port.pci_request_id = None
    port.updated_at = utcnow()
