"""Host liveness as the API and the compute logic see it (os-hypervisors, capacity,
local deletes on a host that is down)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute.context import utcnow
from pcifleet.store.models import Host


def host_state(
    last_report_at: datetime | None, down_after_seconds: float, forced_down: bool = False
) -> str:
    """``up`` while the agent keeps reporting, ``down`` once it stops or an operator
    forced the host down."""
    if last_report_at is None or forced_down:
        return "down"
    return "up" if utcnow() - last_report_at <= timedelta(seconds=down_after_seconds) else "down"


def host_is_up(session: Session, host: str | None, down_after_seconds: float) -> bool:
    """Whether ``host``'s agent reports (an unknown host is not up)."""
    if not host:
        return False
    row = session.execute(
        select(Host.last_report_at, Host.forced_down).where(Host.name == host)
    ).first()
    if row is None:
        return False
    return host_state(row.last_report_at, down_after_seconds, row.forced_down) == "up"


def registration_of(host: Host) -> str:
    """Which registration of a host (its row, made anew if the store was) an
    agent's instance list or power report belongs to."""
    return f"{host.id}@{host.created_at.isoformat()}"
