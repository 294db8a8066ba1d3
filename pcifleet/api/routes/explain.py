"""``GET /pcifleet/v1/explain/servers``: a dry run of scheduling one server.

For every host the scheduler knows, which of its filters turn the host down
and for which request (a flavor's alias, a port by name and id). Nothing is
claimed; admins only. The answer is the scheduler's own verdicts
(``pcifleet.scheduler.explain``), so it cannot drift from what a boot does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from pcifleet import scheduler
from pcifleet.api.agents import CallerDep
from pcifleet.api.deps import SessionDep, SettingsDep
from pcifleet.api.errors import BadRequest
from pcifleet.api.server_shape import server_shape
from pcifleet.scheduler.index import describe

router = APIRouter(prefix="/pcifleet/v1", tags=["pcifleet"])


@router.get("/explain/servers")
def explain_servers(
    request: Request,
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
    flavor: Annotated[str | None, Query(max_length=255)] = None,
    ports: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006 - FastAPI's idiom
    sriov_ports: Annotated[list[str], Query(max_length=16)] = [],  # noqa: B006
) -> dict[str, Any]:
    """Which host would take a server of this flavor with these ports, and why
    every other host would not (``?flavor=gpu.small&ports=vf-port``)."""
    caller.require_admin()
    shape = server_shape(
        session,
        flavor=flavor,
        ports=ports,
        sriov_ports=sriov_ports,
        aliases=settings.aliases,
        alias_source=settings.alias_source,
    )
    if shape.empty:
        raise BadRequest("give a flavor, ports or sriov_ports to explain a boot of that shape")
    verdicts = scheduler.explain(
        scheduler.scheduler_for(request.app.state.engine),
        shape.requests,
        vcpus=shape.vcpus,
        memory_mb=shape.memory_mb,
    )
    return {
        "requests": [describe(r) for r in shape.requests],
        "vcpus": shape.vcpus,
        "memory_mb": shape.memory_mb,
        "hosts": [
            {
                "host": v.host,
                "fits": v.fits,
                "failures": [
                    {"filter": f.filter, "request": f.request, "reason": f.reason}
                    for f in v.failures
                ],
            }
            for v in verdicts
        ],
        "fits": sum(v.fits for v in verdicts),
    }
