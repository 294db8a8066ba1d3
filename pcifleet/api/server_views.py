"""Nova's server view, shared by the routes that answer with a server: show,
list, update and the rebuild action.

``server_view`` is the whole view of one server at a microversion; a list
reads what all its servers need at once (``preload``) and passes it in.
``update_view`` cuts the whole view down to what an update or a rebuild
answered before microversion 2.75.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.api.deps import Context, timestamp
from pcifleet.api.paths import COMPUTE as PREFIX
from pcifleet.api.paths import flavor_links
from pcifleet.compute.hosts import host_state
from pcifleet.store.cloud import IpAllocation, Network, Port, ServerDetails
from pcifleet.store.models import Host, Instance

# Nova shows a server's progress only in the statuses that make progress
PROGRESS_STATUSES = frozenset(
    {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}
)


def server_links(base: str, server_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}{PREFIX}/servers/{server_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/servers/{server_id}"},
    ]


def _when(t: datetime | None) -> str | None:
    return timestamp(t) if t else None


def addresses_of(session: Session, uuids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Nova's ``addresses`` (fixed IPs by network name) of each server, read in
    one query: a list of a thousand servers needs only their ports' addresses."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {u: {} for u in uuids}
    if not uuids:
        return found
    rows = session.execute(
        select(
            Port.device_id, Port.network_id, Port.mac_address, Network.name, IpAllocation.ip_address
        )
        .join(IpAllocation, IpAllocation.port_id == Port.id)
        .outerjoin(Network, Network.id == Port.network_id)
        .where(Port.device_id.in_(uuids))
        .order_by(Port.created_at, Port.id, IpAllocation.ip_address)
    )
    for device_id, network_id, mac, network_name, ip in rows:
        found[device_id].setdefault(network_name or network_id, []).append(
            {
                "version": 6 if ":" in ip else 4,
                "addr": ip,
                "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": mac,
            }
        )
    return found


def server_view(
    session: Session,
    inst: Instance,
    ctx: Context,
    mv: tuple[int, int],
    base: str,
    down_after: float = 60.0,
    loaded: Preloaded | None = None,
) -> dict[str, Any]:
    """Nova's server view; ``loaded`` holds what a list read for all its servers at once."""
    found = loaded.details.get(inst.uuid) if loaded else session.get(ServerDetails, inst.uuid)
    details = found or ServerDetails(metadata_={}, flavor={})
    snapshot = details.flavor or {}
    if mv >= (2, 47):
        flavor: dict[str, Any] = {k: v for k, v in snapshot.items() if k != "id"}
    else:
        flavor = {"id": inst.flavor_id, "links": flavor_links(base, inst.flavor_id or "")}
    host = inst.host or ""
    view: dict[str, Any] = {
        "id": inst.uuid,
        "name": inst.name,
        "status": inst.status,
        "tenant_id": inst.project_id,
        "user_id": inst.user_id,
        "metadata": details.metadata_ or {},
        "hostId": hashlib.sha224(f"{inst.project_id}{host}".encode()).hexdigest() if host else "",
        "image": {
            "id": inst.image_id,
            "links": [{"rel": "bookmark", "href": f"{base}/compute/images/{inst.image_id}"}],
        },
        "flavor": flavor,
        "created": _when(inst.created_at),
        "updated": _when(inst.updated_at),
        "addresses": (
            loaded.addresses[inst.uuid] if loaded else addresses_of(session, [inst.uuid])[inst.uuid]
        ),
        "accessIPv4": details.access_ip_v4 or "",
        "accessIPv6": details.access_ip_v6 or "",
        "links": server_links(base, inst.uuid),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": details.availability_zone or "nova",
        "config_drive": "",
        "key_name": details.key_name,
        "OS-SRV-USG:launched_at": _when(details.launched_at),
        "OS-SRV-USG:terminated_at": _when(inst.deleted_at),
        "OS-EXT-STS:task_state": inst.task_state,
        "OS-EXT-STS:vm_state": inst.vm_state,
        "OS-EXT-STS:power_state": inst.power_state,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
    }
    if inst.status in PROGRESS_STATUSES:
        view["progress"] = 0
    if mv >= (2, 9):
        view["locked"] = bool(inst.locked)
    if mv >= (2, 19):
        view["description"] = details.description
    if mv >= (2, 26):
        view["tags"] = []
    if mv >= (2, 63):
        view["trusted_image_certificates"] = None
    if mv >= (2, 71):
        view["server_groups"] = []
    if mv >= (2, 73):
        view["locked_reason"] = inst.locked_reason
    if inst.status == "ERROR" and inst.fault:
        fault = {k: inst.fault.get(k) for k in ("code", "message", "created")}
        if ctx.is_admin:
            fault["details"] = inst.fault.get("details", "")
        view["fault"] = fault
    if ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = inst.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst.host
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{inst.uuid}"
        if mv >= (2, 3):
            view["OS-EXT-SRV-ATTR:hostname"] = inst.name
            view["OS-EXT-SRV-ATTR:reservation_id"] = inst.reservation_id or ""
            view["OS-EXT-SRV-ATTR:launch_index"] = inst.launch_index
            view["OS-EXT-SRV-ATTR:kernel_id"] = ""
            view["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
            view["OS-EXT-SRV-ATTR:root_device_name"] = None
            view["OS-EXT-SRV-ATTR:user_data"] = details.user_data
        if mv >= (2, 16):
            view["host_status"] = _host_status(session, inst.host, down_after, loaded)
    return view


def _host_status(
    session: Session, host: str | None, down_after: float, loaded: Preloaded | None = None
) -> str:
    """Nova's host_status: UP while the host's agent reports, DOWN once it stops."""
    if not host:
        return ""
    if loaded is not None:
        row = loaded.hosts.get(host)
    else:
        row = session.scalar(select(Host).where(Host.name == host))
    if row is None:
        return "UNKNOWN"
    if row.state != "enabled":
        return "MAINTENANCE"
    return host_state(row.last_report_at, down_after).upper()


@dataclass
class Preloaded:
    """What the views of a page of servers need, read in one query per table
    instead of a few per server."""

    details: dict[str, ServerDetails] = field(default_factory=dict)
    addresses: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    hosts: dict[str, Host] = field(default_factory=dict)


def preload(session: Session, servers: list[Instance]) -> Preloaded:
    uuids = [s.uuid for s in servers]
    if not uuids:
        return Preloaded()
    loaded = Preloaded(addresses=addresses_of(session, uuids))
    loaded.details = {
        d.instance_uuid: d
        for d in session.scalars(
            select(ServerDetails).where(ServerDetails.instance_uuid.in_(uuids))
        )
    }
    names = {s.host for s in servers if s.host}
    if names:
        loaded.hosts = {
            h.name: h for h in session.scalars(select(Host).where(Host.name.in_(names)))
        }
    return loaded


# What Nova's update answer leaves out before 2.75 (strict clients refuse them
# there); from 2.75 it is the whole server, as show answers.
UPDATE_OMITS = ("OS-EXT-", "OS-SRV-USG:", "os-extended-volumes:")


UPDATE_OMITS_KEYS = {"config_drive", "key_name", "security_groups", "host_status"}


def update_view(view: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    if mv >= (2, 75):
        return view
    return {
        k: v
        for k, v in view.items()
        if k not in UPDATE_OMITS_KEYS and not k.startswith(UPDATE_OMITS)
    }


def rebuild_view(view: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    """What Nova's rebuild answers of the whole view: before 2.75 an update's
    cut, with the keypair from 2.54 and addresses without their OS-EXT keys.
    Never ``OS-EXT-SRV-ATTR:user_data``: a rebuild says ``user_data`` instead."""
    if mv >= (2, 75):
        return {k: v for k, v in view.items() if k != "OS-EXT-SRV-ATTR:user_data"}
    cut = update_view(view, mv)
    if mv >= (2, 54):
        cut["key_name"] = view["key_name"]
    cut["addresses"] = {
        label: [{"version": a["version"], "addr": a["addr"]} for a in found]
        for label, found in view["addresses"].items()
    }
    return cut
