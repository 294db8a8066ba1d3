"""``POST /pcifleet/v1/hosts/{host}/power-states``: an agent's view of its domains.

The agent asks ``GET .../instances`` which servers it should run (the answer
carries ``registration`` and the controller's time ``as_of``), lists its
domains, and reports each one's power state here; the controller brings its
servers in step (``pcifleet.compute.power_sync``). A report for another
registration of the host (the controller now runs on another database) is
refused with 409, so it changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field, StringConstraints
from sqlalchemy import select

from pcifleet.api.agents import CallerDep
from pcifleet.api.deps import SessionDep, SettingsDep, utcnow
from pcifleet.api.errors import BadRequest, Conflict, NotFound
from pcifleet.compute.hosts import registration_of
from pcifleet.compute.power_sync import sync_power_states
from pcifleet.compute.schemas import Strict
from pcifleet.store.models import Host
from pcifleet.virt.power import PowerState

router = APIRouter(prefix="/pcifleet/v1", tags=["pcifleet"])
ServerUuid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
]
# More domains than any host runs; bounds the work one report can ask for.
MAX_DOMAINS = 4096


class PowerReport(Strict):
    registration: Annotated[str, Field(min_length=1, max_length=128)]
    as_of: datetime
    domains: Annotated[dict[ServerUuid, PowerState], Field(max_length=MAX_DOMAINS)]


@router.post("/hosts/{host}/power-states")
def report_power_states(
    host: str,
    body: PowerReport,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    caller: CallerDep,
) -> dict[str, Any]:
    """Bring the host's servers in step with the power states its agent saw."""
    caller.require_host(host)
    row = session.scalar(select(Host).where(Host.name == host))
    if row is None:
        raise NotFound(f"host {host[:64]!r} is not known", kind="pcifleet.host_not_found")
    if body.registration != registration_of(row):
        raise Conflict(
            f"the report is for registration {body.registration[:128]!r} of host "
            f"{host[:64]}, the controller knows {registration_of(row)!r}",
            kind="pcifleet.registration_mismatch",
        )
    as_of = body.as_of
    if as_of.tzinfo is None:
        raise BadRequest("as_of: needs a time zone (the controller's own as_of)")
    # Never trust a report for a time the controller has not reached yet.
    as_of = min(as_of, utcnow())
    outcome = sync_power_states(
        session,
        host,
        body.domains,
        as_of,
        host_down_after=settings.host_down_after_seconds,
    )
    session.commit()
    return {"host": host, **outcome.as_dict()}
