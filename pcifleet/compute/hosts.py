"""Host liveness as the API and the compute logic see it (os-hypervisors, capacity,
local deletes on a host that is down)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute.context import utcnow
from pcifleet.store.models import Host


def host_state(last_report_at: datetime | None, down_after_seconds: float) -> str:
    """``up`` while the agent keeps reporting, ``down`` once it stops."""
    if last_report_at is None:
        return "down"
    return "up" if utcnow() - last_report_at <= timedelta(seconds=down_after_seconds) else "down"


def host_is_up(session: Session, host: str | None, down_after_seconds: float) -> bool:
    """Whether ``host``'s agent reports (an unknown host is not up)."""
    if not host:
        return False
    last = session.scalar(select(Host.last_report_at).where(Host.name == host))
    return host_state(last, down_after_seconds) == "up"
