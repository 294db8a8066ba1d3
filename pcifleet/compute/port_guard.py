"""Who may tie a port to a server, and when a server's hold on a port stops
changes to it.

Neutron alone lets any project write any ``device_id``; Nova is what keeps a
port on one server. pcifleet is both, so it keeps the rules in one place: a
port's ``device_id`` may name a server only for the server's owner or an admin
(otherwise another project could slip a port into someone's server), and a
port a live server holds cannot be re-pointed or deleted from under it (two
domains would share one MAC and one VF). pcifleet's own flows (delete,
detach, moves) change ports through ``compute``, never through these checks.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute.context import Context
from pcifleet.compute.errors import Conflict, Forbidden
from pcifleet.compute.states import VmState
from pcifleet.store.cloud import Port
from pcifleet.store.models import Instance


def live_server(session: Session, server_id: str) -> Instance | None:
    """The server ``server_id`` names, unless there is none or it is deleted."""
    if not server_id:
        return None
    return session.scalar(
        select(Instance).where(
            Instance.uuid == server_id[:64], Instance.vm_state != VmState.DELETED.value
        )
    )


def holding_server(session: Session, port: Port) -> Instance | None:
    """The live server the port is attached to, if any."""
    return live_server(session, port.device_id)


def check_device_target(session: Session, ctx: Context, device_id: str) -> None:
    """A port may name a server as its device only for the server's owner or an admin."""
    server = live_server(session, device_id)
    if server is None or ctx.is_admin or server.project_id == ctx.project_id:
        return
    raise Forbidden(
        f"device_id: {device_id[:64]} is a server of another project; a port may name a "
        "server only for the server's owner or an admin"
    )


def check_not_held(session: Session, port: Port, change: str) -> None:
    """409 naming the server while a live server holds the port."""
    server = holding_server(session, port)
    if server is not None:
        raise Conflict(
            f"Port {port.id} is in use by server {server.uuid} ({server.name}); {change} is "
            "refused while the server holds it: detach it (openstack server remove port) "
            "or delete the server first.",
            kind="PortInUse",
        )
