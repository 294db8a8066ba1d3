"""Admission control: the service takes on only as much as it can serve promptly.

Each request runs its handler on a worker thread and holds at most a couple of
database connections while it does. If more requests were let in than there are
threads, the extra ones would wait for a thread — and, before this module, hold
a connection while they waited — until the pool timed out into plain-text 500s
and the agents' reports timed out with them, marking healthy hosts down.

So a request first takes a *slot* (``max_concurrent_requests`` in all), waiting
for one in async code where it holds no thread and no connection. A request
that cannot get a slot within ``admission_wait_seconds``, or finds the queue
full, is answered ``503`` with ``Retry-After`` and its service's OpenStack error
body. The worker-thread limit is set here too, from the same setting, so an
admitted request never waits for a thread.

Agents' routes (inventory, heartbeat, task results) may use every slot; other
requests leave ``agent_reserved_requests`` of them free, so a burst of users
cannot starve the reports that keep hosts up. The agents' task long-poll takes
no slot: it sleeps in async code and uses a thread only for each short check.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pcifleet.api.errors import error_body, service_of
from pcifleet.api.settings import ApiSettings

log = logging.getLogger(__name__)
# The routes agents call to stay up and do their work (pcifleet_v1).
AGENT_ROUTE = re.compile(
    r"^/pcifleet/v1/(hosts/[^/]+/(inventory|heartbeat|tasks|results)|tasks/[^/]+/result)$"
)
LONG_POLL = re.compile(r"^/pcifleet/v1/hosts/[^/]+/tasks$")
# Retry-After bounds, seconds.
RETRY_MIN, RETRY_MAX = 1, 60


def is_agent_route(path: str) -> bool:
    return AGENT_ROUTE.match(path) is not None


def is_long_poll(method: str, path: str) -> bool:
    return method == "GET" and LONG_POLL.match(path) is not None


def overloaded(service: str, message: str, retry_after: int) -> JSONResponse:
    """503 with Retry-After and ``service``'s error body."""
    return JSONResponse(
        error_body(service, 503, message),
        status_code=503,
        headers={"Retry-After": str(retry_after)},
    )


def overloaded_for(request: Request, message: str) -> JSONResponse:
    """The same for an exception handler (database busy, pool exhausted)."""
    return overloaded(service_of(request.url.path), message, RETRY_MIN)


class _Slots:
    """The slot limiters of one event loop, and the worker-thread limit set on it."""

    def __init__(self, settings: ApiSettings) -> None:
        total = settings.max_concurrent_requests
        # Users take a slot from both; agents only from ``shared``. Users hold at
        # most total - reserve of ``shared``, so the reserve stays free for agents.
        self.users = anyio.CapacityLimiter(total - settings.agent_reserved_requests)
        self.shared = anyio.CapacityLimiter(total)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads


class AdmissionMiddleware:
    """Pure ASGI: takes a slot for each request, or answers 503 (module docstring)."""

    def __init__(self, app: ASGIApp, settings: ApiSettings) -> None:
        self.app = app
        self.settings = settings
        self._slots: _Slots | None = None
        self._loop: object = None
        # Mean seconds a request holds its slot (moving average): what Retry-After
        # is estimated from.
        self.service_time = 0.1

    def _slots_here(self) -> _Slots:
        # Limiters belong to one event loop; tests run an app on several.
        current = asyncio.get_running_loop()
        if self._slots is None or self._loop is not current:
            self._slots = _Slots(self.settings)
            self._loop = current
        return self._slots

    def retry_after(self, waiting: int) -> int:
        """Seconds until the queue ahead has likely drained."""
        rounds = (waiting + 1) / max(1, self.settings.max_concurrent_requests)
        return min(RETRY_MAX, max(RETRY_MIN, math.ceil(rounds * self.service_time)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_long_poll(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        slots = self._slots_here()
        agent = is_agent_route(scope["path"])
        limiters = [slots.shared] if agent else [slots.users, slots.shared]
        token = object()
        taken: list[anyio.CapacityLimiter] = []
        try:
            for limiter in limiters:
                if not await self._take(limiter, token):
                    waiting = limiter.statistics().tasks_waiting
                    await self._refuse(scope, send, waiting)
                    return
                taken.append(limiter)
            started = time.monotonic()
            try:
                await self.app(scope, receive, send)
            finally:
                held = time.monotonic() - started
                self.service_time += 0.05 * (held - self.service_time)
        finally:
            for limiter in reversed(taken):
                limiter.release_on_behalf_of(token)

    async def _take(self, limiter: anyio.CapacityLimiter, token: object) -> bool:
        try:
            limiter.acquire_on_behalf_of_nowait(token)
            return True
        except anyio.WouldBlock:
            pass
        if limiter.statistics().tasks_waiting >= self.settings.admission_queue:
            return False
        with anyio.move_on_after(self.settings.admission_wait_seconds):
            await limiter.acquire_on_behalf_of(token)
            return True
        return False

    async def _refuse(self, scope: Scope, send: Send, waiting: int) -> None:
        service = service_of(scope["path"])
        retry = self.retry_after(waiting)
        log.warning(
            "overloaded: refusing %s %s (retry after %ss)", scope["method"], scope["path"], retry
        )
        body = json.dumps(
            error_body(service, 503, "The service is busy; retry after a short wait.")
        ).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry).encode()),
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def install_admission(app: FastAPI, settings: ApiSettings) -> None:
    """Admit requests through the slots; add before the outer middleware so
    paths are normalised and request ids added to the 503s as well."""
    app.add_middleware(AdmissionMiddleware, settings=settings)
