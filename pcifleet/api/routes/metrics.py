"""``GET /metrics``: Prometheus' text format.

Who may read it: any client on the loopback interface without a token (the
node-exporter habit: a Prometheus or an agent on the controller scrapes it,
and ``pcifleet up`` listens on 127.0.0.1 only), and from anywhere else only
an admin's token (``X-Auth-Token``). Pool sizes, host names and their health
describe the whole fleet, which members may not see elsewhere in the API
(``os-hypervisors`` and ``os-pci`` are admin-only too).
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from pcifleet.api.deps import get_context
from pcifleet.api.metrics import metrics_registry, render

router = APIRouter(tags=["pcifleet"])


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not _loopback(request):
        ctx = await run_in_threadpool(get_context, request)
        ctx.require_admin("pcifleet:metrics")
    state = request.app.state
    registry = getattr(state, "metrics_registry", None)
    if registry is None:
        registry = state.metrics_registry = metrics_registry(state.engine)
    body = await run_in_threadpool(render, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
