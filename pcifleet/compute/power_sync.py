"""Keeping each server's power state in step with the domain its host runs.

An agent reports, now and then and whenever it starts, the power state of every
domain it owns (``POST /pcifleet/v1/hosts/{host}/power-states``). As Nova's
periodic power-state sync does, the controller then:

- records the power state the host saw (``OS-EXT-STS:power_state``);
- moves an ``ACTIVE`` (or ``PAUSED``) server whose domain is shut off or
  crashed to ``SHUTOFF``: the guest powered itself off, or the host rebooted;
- asks the host to stop a ``SHUTOFF`` server whose domain runs (someone
  started it behind the controller's back), through the ordinary stop action;
- notes a server whose domain is missing as ``NOSTATE`` and leaves the rest to
  the operator (the agent never recreates a domain on its own).

Servers with an action in flight are skipped: their task will report. A report
is only trusted for servers that have not changed since ``as_of``, the
controller's own time when the agent asked which servers it should have (the
agent lists its domains after that), so a stop or start that finished while the
report travelled is never undone by it.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.compute import events
from pcifleet.compute.actions import request_action
from pcifleet.compute.errors import ApiError
from pcifleet.compute.states import ACTIONS, PowerState, VmState
from pcifleet.compute.transitions import load, swap
from pcifleet.store.models import Instance
from pcifleet.virt.power import PowerState as DomainPower

log = logging.getLogger(__name__)
_SYNCED = (VmState.ACTIVE, VmState.PAUSED, VmState.STOPPED, VmState.SUSPENDED)
_OFF = (PowerState.SHUTDOWN, PowerState.CRASHED)


@dataclass
class SyncOutcome:
    """What one report changed, by server uuid."""

    recorded: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    stop_requested: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "recorded": self.recorded,
            "stopped": self.stopped,
            "stop_requested": self.stop_requested,
            "missing": self.missing,
        }


def nova_power(state: DomainPower) -> PowerState:
    """A driver's power state as Nova's number."""
    return PowerState.from_name(state.value)


def sync_power_states(
    session: Session,
    host: str,
    reported: Mapping[str, DomainPower],
    as_of: datetime,
    *,
    host_down_after: float,
) -> SyncOutcome:
    """Apply one agent's report (see the module docstring), in the caller's transaction."""
    outcome = SyncOutcome()
    seen_domains = {u.lower(): nova_power(p) for u, p in reported.items()}
    uuids = session.scalars(
        select(Instance.uuid).where(
            Instance.host == host,
            Instance.vm_state.in_([s.value for s in _SYNCED]),
            Instance.task_state.is_(None),
            Instance.updated_at <= as_of,
        )
    ).all()
    for uuid in uuids:
        seen = load(session, uuid)
        if seen is None or seen.task_state is not None or seen.vm_state not in _SYNCED:
            continue
        actual = seen_domains.get(uuid.lower(), PowerState.NOSTATE)
        if actual is PowerState.NOSTATE and uuid.lower() not in seen_domains:
            outcome.missing.append(uuid)
        if seen.vm_state in (VmState.ACTIVE, VmState.PAUSED) and actual in _OFF:
            if swap(session, seen, vm_state=VmState.STOPPED, power_state=actual):
                _record_stop(session, uuid, host, actual)
                outcome.stopped.append(uuid)
            continue
        if seen.vm_state is VmState.STOPPED and actual in (PowerState.RUNNING, PowerState.PAUSED):
            if _ask_stop(session, uuid, host_down_after):
                outcome.stop_requested.append(uuid)
            continue
        if actual != seen.power_state and swap(session, seen, power_state=actual):
            outcome.recorded.append(uuid)
    for uuid in outcome.missing:
        log.warning("server %s: its domain is missing on host %s", uuid, host)
    return outcome


def _record_stop(session: Session, uuid: str, host: str, actual: PowerState) -> None:
    log.warning(
        "server %s: its domain on %s is %s; the server is now SHUTOFF",
        uuid,
        host,
        actual.name.lower(),
    )
    events.start_action(
        session,
        uuid,
        "stop",
        request_id=_sync_request_id(),
        user_id=None,
        project_id=None,
        event="compute_power_state_sync",
        host=host,
    )
    events.finish_event(
        session,
        uuid,
        "stop",
        "compute_power_state_sync",
        ok=True,
        details=f"the host found the domain {actual.name.lower()}",
        host=host,
    )


def _ask_stop(session: Session, uuid: str, host_down_after: float) -> bool:
    try:
        with session.begin_nested():
            request_action(
                session,
                uuid,
                ACTIONS["os-stop"],
                request_id=_sync_request_id(),
                user_id=None,
                project_id=None,
                host_down_after=host_down_after,
                force=True,
            )
    except ApiError as exc:
        log.info("server %s runs although SHUTOFF; not stopped now: %s", uuid, exc)
        return False
    log.warning("server %s: its domain runs although the server is SHUTOFF; stopping it", uuid)
    return True


def _sync_request_id() -> str:
    return f"req-{uuidlib.uuid4()}"
