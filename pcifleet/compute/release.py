"""Giving back what a server holds, as one step of the caller's transaction:
its claimed devices and vCPU/RAM on its host, its port bindings, the host
work still queued for it.

Used by every way out (a failed build, a local delete, an agent's delete
report, the reconciler), so each frees the same things the same way. The
scheduler's in-memory index is told after commit (``host_changed``).
"""

from __future__ import annotations

import contextlib

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, lazyload

from pcifleet import scheduler
from pcifleet.compute import metrics
from pcifleet.compute.binding import unbind_port
from pcifleet.compute.transitions import Seen
from pcifleet.store import claims
from pcifleet.store.cloud import Port
from pcifleet.store.errors import HostNotFound
from pcifleet.store.models import Task, utcnow


def server_ports(session: Session, instance_uuid: str) -> list[Port]:
    """The server's ports. Their fixed IPs load only when touched: the lifecycle's
    steps (bind, unbind, mark ACTIVE) never read them, and loading them with
    every port was one more query per step of every boot and delete."""
    return list(
        session.scalars(
            select(Port)
            .where(Port.device_id == instance_uuid)
            .order_by(Port.created_at)
            .options(lazyload(Port.fixed_ips))
        )
    )


def free_devices(session: Session, seen: Seen) -> None:
    """Free the server's devices and resources on its host (none: nothing to do)."""
    if not seen.host:
        return
    metrics.RELEASES.inc()
    with contextlib.suppress(HostNotFound):
        claims.free(
            session.connection(),
            seen.host,
            seen.uuid,
            vcpus=seen.vcpus,
            memory_mb=seen.memory_mb,
        )


def unbind_ports(session: Session, instance_uuid: str, *, detach: bool) -> None:
    """Clear the bindings of the server's ports; ``detach`` also frees them from the
    server (deleting the ones it made), as a delete does. A failed build keeps
    them attached, as Nova does, so a retry or a delete finds them."""
    for port in server_ports(session, instance_uuid):
        if detach and port.created_by_server:
            session.delete(port)
            continue
        device_id, owner = port.device_id, port.device_owner
        unbind_port(port)
        if not detach:
            port.device_id, port.device_owner = device_id, owner
    session.flush()


def cancel_tasks(session: Session, instance_uuid: str, kinds: tuple[str, ...] | None = None) -> int:
    """Cancel the server's host tasks that no agent has taken yet."""
    query = update(Task).where(Task.instance_uuid == instance_uuid, Task.state == "pending")
    if kinds is not None:
        query = query.where(Task.kind.in_(kinds))
    done = session.execute(
        query.values(state="cancelled", updated_at=utcnow()).execution_options(
            synchronize_session=False
        )
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def tell_scheduler(engine: Engine, host: str | None) -> None:
    """After a commit that freed devices on ``host``: the index sees them at once."""
    if host:
        scheduler.host_changed(engine, host)
