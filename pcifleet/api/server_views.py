"""Nova's server view, for one server (show, update) and for a page of a
thousand (the detail list), built from one query of plain columns.

The query reads a server's row, its details and its host's state together,
the JSON columns as their text; a page's addresses come in one more query.
The views of one answer share what repeats between servers (the flavor and
image views, hostId and host_status, the decoded metadata and flavor
snapshot), so a thousand views cost about a thousand rows. A shared part is
built once per answer and never changed afterwards: the answer is encoded
as it stands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Text, bindparam, cast, select
from sqlalchemy.orm import Session

from pcifleet.api.db_paging import AnySelect
from pcifleet.api.paths import COMPUTE, flavor_links
from pcifleet.compute.context import Context, timestamp
from pcifleet.compute.hosts import host_state
from pcifleet.store.cloud import IpAllocation, Network, Port, ServerDetails
from pcifleet.store.models import Host, Instance

# Nova shows a server's progress only in the statuses that make progress
PROGRESS_STATUSES = frozenset(
    {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}
)


class ServerRow(NamedTuple):
    """What a view reads: the server, its details (None when it has none:
    then defaults) and its host's state (None for no host or an unknown one)."""

    uuid: str
    name: str
    status: str
    project_id: str | None
    user_id: str | None
    flavor_id: str | None
    image_id: str | None
    host: str | None
    created_at: datetime | None
    updated_at: datetime | None
    deleted_at: datetime | None
    task_state: str | None
    vm_state: str
    power_state: int
    reservation_id: str | None
    launch_index: int
    fault: str | None  # JSON columns as their text: decoded once per answer
    description: str | None
    metadata: str | None
    availability_zone: str | None
    flavor: str | None
    launched_at: datetime | None
    access_ip_v4: str | None
    access_ip_v6: str | None
    key_name: str | None
    user_data: str | None
    locked: bool | None
    locked_reason: str | None
    host_admin_state: str | None
    host_reported_at: datetime | None


# The columns of ServerRow, in its order (labelled with its names below)
_COLUMNS = (
    Instance.uuid,
    Instance.name,
    Instance.status,
    Instance.project_id,
    Instance.user_id,
    Instance.flavor_id,
    Instance.image_id,
    Instance.host,
    Instance.created_at,
    Instance.updated_at,
    Instance.deleted_at,
    Instance.task_state,
    Instance.vm_state,
    Instance.power_state,
    Instance.reservation_id,
    Instance.launch_index,
    cast(Instance.fault, Text),
    ServerDetails.description,
    cast(ServerDetails.metadata_, Text),
    ServerDetails.availability_zone,
    cast(ServerDetails.flavor, Text),
    ServerDetails.launched_at,
    ServerDetails.access_ip_v4,
    ServerDetails.access_ip_v6,
    ServerDetails.key_name,
    ServerDetails.user_data,
    Instance.locked,
    Instance.locked_reason,
    Host.state,
    Host.last_report_at,
)

Addresses = dict[str, list[dict[str, Any]]]


# Statements built once: building one (and its cache key) costs several
# times what running a page's query does.
_SERVERS: AnySelect = (
    select(*[c.label(n) for n, c in zip(ServerRow._fields, _COLUMNS, strict=True)])
    .select_from(Instance)
    .outerjoin(ServerDetails, ServerDetails.instance_uuid == Instance.uuid)
    .outerjoin(Host, Host.name == Instance.host)
)
_ONE_SERVER = _SERVERS.where(Instance.uuid == bindparam("server_id"))
_ADDRESSES = (
    select(Port.device_id, Port.network_id, Port.mac_address, Network.name, IpAllocation.ip_address)
    .join(IpAllocation, IpAllocation.port_id == Port.id)
    .outerjoin(Network, Network.id == Port.network_id)
    .where(Port.device_id.in_(bindparam("uuids", expanding=True)))
    .order_by(Port.created_at, Port.id, IpAllocation.ip_address)
)


def server_query() -> AnySelect:
    """The rows views are built from (``ServerRow``); narrow it with ``where``."""
    return _SERVERS


def server_row(session: Session, server_id: str) -> ServerRow | None:
    found = session.execute(_ONE_SERVER, {"server_id": server_id}).first()
    return None if found is None else ServerRow._make(found)


def server_links(base: str, server_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}{COMPUTE}/servers/{server_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/servers/{server_id}"},
    ]


def addresses_of(session: Session, uuids: Sequence[str]) -> dict[str, Addresses]:
    """Nova's ``addresses`` (fixed IPs by network name) of each server, read in
    one query: a list of a thousand servers needs only their ports' addresses."""
    found: dict[str, Addresses] = {u: {} for u in uuids}
    if not uuids:
        return found
    rows = session.execute(_ADDRESSES, {"uuids": list(uuids)})
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


def _when(t: datetime | None) -> str | None:
    return timestamp(t) if t else None


@dataclass
class ViewParts:
    """Who asks and how (caller, microversion, base URL), and the parts the
    views of one answer share, made on first use."""

    ctx: Context
    mv: tuple[int, int]
    base: str
    down_after: float = 60.0
    _decoded: dict[str, Any] = field(default_factory=dict)
    _flavors: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    _images: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    _host_ids: dict[tuple[str | None, str], str] = field(default_factory=dict)
    _host_status: dict[str, str] = field(default_factory=dict)

    def decoded(self, text: str | None) -> Any:
        """A JSON column's value (None for SQL NULL)."""
        if text is None:
            return None
        try:
            return self._decoded[text]
        except KeyError:
            value = self._decoded[text] = orjson.loads(text)
            return value

    def flavor(self, row: ServerRow) -> dict[str, Any]:
        if self.mv < (2, 47):
            key = row.flavor_id
            found = self._flavors.get(key)
            if found is None:
                found = {"id": key, "links": flavor_links(self.base, key or "")}
                self._flavors[key] = found
            return found
        # from 2.47 the flavor as it was at boot, without its id
        key = row.flavor
        found = self._flavors.get(key)
        if found is None:
            snapshot = self.decoded(key) or {}
            found = self._flavors[key] = {k: v for k, v in snapshot.items() if k != "id"}
        return found

    def image(self, image_id: str | None) -> dict[str, Any]:
        found = self._images.get(image_id)
        if found is None:
            href = f"{self.base}/compute/images/{image_id}"
            found = {"id": image_id, "links": [{"rel": "bookmark", "href": href}]}
            self._images[image_id] = found
        return found

    def host_id(self, project_id: str | None, host: str | None) -> str:
        """Nova's hostId: the host as the project sees it, hashed."""
        if not host:
            return ""
        key = (project_id, host)
        found = self._host_ids.get(key)
        if found is None:
            found = hashlib.sha224(f"{project_id}{host}".encode()).hexdigest()
            self._host_ids[key] = found
        return found

    def host_status(self, row: ServerRow) -> str:
        """Nova's host_status: UP while the host's agent reports, DOWN once it stops."""
        host = row.host
        if not host:
            return ""
        found = self._host_status.get(host)
        if found is None:
            if row.host_admin_state is None:
                found = "UNKNOWN"
            elif row.host_admin_state != "enabled":
                found = "MAINTENANCE"
            else:
                found = host_state(row.host_reported_at, self.down_after).upper()
            self._host_status[host] = found
        return found


def server_view(row: ServerRow, addresses: Addresses, parts: ViewParts) -> dict[str, Any]:
    """Nova's server view of one server."""
    mv, ctx = parts.mv, parts.ctx
    uuid, status = row.uuid, row.status
    view: dict[str, Any] = {
        "id": uuid,
        "name": row.name,
        "status": status,
        "tenant_id": row.project_id,
        "user_id": row.user_id,
        "metadata": parts.decoded(row.metadata) or {},
        "hostId": parts.host_id(row.project_id, row.host),
        "image": parts.image(row.image_id),
        "flavor": parts.flavor(row),
        "created": _when(row.created_at),
        "updated": _when(row.updated_at),
        "addresses": addresses,
        "accessIPv4": row.access_ip_v4 or "",
        "accessIPv6": row.access_ip_v6 or "",
        "links": server_links(parts.base, uuid),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": row.availability_zone or "nova",
        "config_drive": "",
        "key_name": row.key_name,
        "OS-SRV-USG:launched_at": _when(row.launched_at),
        "OS-SRV-USG:terminated_at": _when(row.deleted_at),
        "OS-EXT-STS:task_state": row.task_state,
        "OS-EXT-STS:vm_state": row.vm_state,
        "OS-EXT-STS:power_state": row.power_state,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
    }
    if status in PROGRESS_STATUSES:
        view["progress"] = 0
    if mv >= (2, 9):
        view["locked"] = bool(row.locked)
    if mv >= (2, 19):
        view["description"] = row.description
    if mv >= (2, 26):
        view["tags"] = []
    if mv >= (2, 63):
        view["trusted_image_certificates"] = None
    if mv >= (2, 71):
        view["server_groups"] = []
    if mv >= (2, 73):
        view["locked_reason"] = row.locked_reason
    if status == "ERROR":
        fault = parts.decoded(row.fault)
        if fault:
            shown = {k: fault.get(k) for k in ("code", "message", "created")}
            if ctx.is_admin:
                shown["details"] = fault.get("details", "")
            view["fault"] = shown
    if ctx.is_admin:
        view["OS-EXT-SRV-ATTR:host"] = row.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = row.host
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{uuid}"
        if mv >= (2, 3):
            view["OS-EXT-SRV-ATTR:hostname"] = row.name
            view["OS-EXT-SRV-ATTR:reservation_id"] = row.reservation_id or ""
            view["OS-EXT-SRV-ATTR:launch_index"] = row.launch_index
            view["OS-EXT-SRV-ATTR:kernel_id"] = ""
            view["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
            view["OS-EXT-SRV-ATTR:root_device_name"] = None
            view["OS-EXT-SRV-ATTR:user_data"] = row.user_data
        if mv >= (2, 16):
            view["host_status"] = parts.host_status(row)
    return view


def server_views(
    session: Session, rows: Sequence[Sequence[Any]], parts: ViewParts
) -> list[dict[str, Any]]:
    """The views of rows of ``server_query()`` in their order, their addresses
    read at once."""
    # plain tuples: a Row's attribute costs several times a tuple field's
    servers = [ServerRow._make(r) for r in rows]
    addresses = addresses_of(session, [s.uuid for s in servers])
    return [server_view(s, addresses[s.uuid], parts) for s in servers]


def one_view(session: Session, row: ServerRow, parts: ViewParts) -> dict[str, Any]:
    """The view of one server (show, update, an action's answer)."""
    return server_views(session, [row], parts)[0]


# What Nova's update answer leaves out before 2.75 (strict clients refuse them
# there); from 2.75 it is the whole server, as show answers.
UPDATE_OMITS = ("OS-EXT-", "OS-SRV-USG:", "os-extended-volumes:")
UPDATE_OMITS_KEYS = {"config_drive", "key_name", "security_groups", "host_status"}


def update_view(view: dict[str, Any], mv: tuple[int, int]) -> dict[str, Any]:
    """What Nova's update answers of the whole view."""
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
