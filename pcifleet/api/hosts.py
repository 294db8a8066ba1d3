"""Host liveness as the API shows it (os-hypervisors, capacity)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pcifleet.api.deps import utcnow


def host_state(
    last_report_at: datetime | None, down_after_seconds: float, forced_down: bool = False
) -> str:
    """``up`` while the agent keeps reporting, ``down`` once it stops or an operator
    forced the host down."""
    if last_report_at is None or forced_down:
        return "down"
    return "up" if utcnow() - last_report_at <= timedelta(seconds=down_after_seconds) else "down"
