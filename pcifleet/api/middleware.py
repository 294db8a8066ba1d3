"""ASGI middleware every request passes: path normalisation, request ids,
body size limit and compute microversion negotiation.

Pure ASGI (not BaseHTTPMiddleware) so image uploads stream through untouched.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pcifleet.api.errors import error_body, service_of
from pcifleet.api.input_check import InvalidInput, check_path, check_query, id_number
from pcifleet.logcontext import request_context

log = logging.getLogger(__name__)

MIN_MICROVERSION = (2, 1)
# The highest compute microversion whose request and response shapes we follow
# for the resources we serve (see docs/api.md).
MAX_MICROVERSION = (2, 88)
# ASCII digits only, and few of them: int() of "²" or of 5,000 digits raises.
_VERSION_RE = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})")


def format_version(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def requested_microversion(headers: dict[str, str]) -> tuple[int, int] | str:
    """The compute microversion a request asks for, or an error message."""
    value = None
    for item in headers.get("openstack-api-version", "").split(","):
        parts = item.strip().split()
        if len(parts) == 2 and parts[0].lower() == "compute":
            value = parts[1]
    if value is None:
        value = headers.get("x-openstack-nova-api-version")
    if value is None:
        return MIN_MICROVERSION
    value = value.strip()
    if value.lower() == "latest":
        return MAX_MICROVERSION
    m = _VERSION_RE.fullmatch(value)
    if m is None:
        return f"Invalid API version request string {value[:40]!r}: expected 2.N or latest"
    v = (int(m.group(1)), int(m.group(2)))
    if not MIN_MICROVERSION <= v <= MAX_MICROVERSION:
        return (
            f"Version {value} is not supported by the API. Minimum is "
            f"{format_version(MIN_MICROVERSION)} and maximum is {format_version(MAX_MICROVERSION)}."
        )
    return v


def _empty_image_id(path: str) -> bool:
    return path.startswith("/image/") and path.rstrip("/").endswith("/images")


class OpenStackMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        # Clients add and drop trailing slashes freely ("/v2.0/networks/"); but
        # glance reads "/v2/images/" as the image with an empty id (404), not the list.
        if len(path) > 1 and path.endswith("/") and not _empty_image_id(path):
            path = path.rstrip("/") or "/"
            # In place, not a copy: the metrics middleware outside reads the
            # matched route from this same scope once the request is answered.
            scope["path"], scope["raw_path"] = path, path.encode()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        service = service_of(path)
        request_id = f"req-{uuid.uuid4()}"
        extra: list[tuple[bytes, bytes]] = [(b"x-openstack-request-id", request_id.encode())]
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        try:
            check_path(path)
            check_query(scope.get("query_string", b""))
        except InvalidInput as exc:
            await _send_error(send, service, 400, str(exc), extra)
            return
        if service == "compute":
            # Nova names the request id in both headers; clients read either
            extra.append((b"x-compute-request-id", request_id.encode()))
            version = requested_microversion(headers)
            if isinstance(version, str):
                await _send_error(send, service, 406, version, extra)
                return
            state["microversion"] = version
            text = format_version(version).encode()
            extra += [
                (b"openstack-api-version", b"compute " + text),
                (b"x-openstack-nova-api-version", text),
                (b"vary", b"OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
            ]
        if not _is_upload(scope["method"], path):
            length = headers.get("content-length", "")
            if id_number(length) is not None and int(length) > self.max_body_bytes:
                await _send_error(
                    send,
                    service,
                    413,
                    f"Request body larger than {self.max_body_bytes} bytes",
                    extra,
                )
                return
            receive = _limited(receive, self.max_body_bytes)

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        try:
            # every log line of this request, uvicorn's access line too, names it
            with request_context(request_id):
                await self.app(scope, receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await _send_error(
                    send,
                    service,
                    413,
                    f"Request body larger than {self.max_body_bytes} bytes",
                    extra,
                )
        except Exception:
            # Starlette's last-resort handler answers, then re-raises; whatever
            # escaped before any answer still gets its service's body and request id.
            with request_context(request_id):
                log.exception("unhandled error")
            if not started:
                await _send_error(
                    send, service, 500, "An unexpected error occurred; see the service log.", extra
                )


class _BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body parsing lets it through as a 413 (any
    other exception there becomes its 400 "error parsing the body")."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body larger than {limit} bytes")


def _is_upload(method: str, path: str) -> bool:
    # Image files and cold moves' disks stream to a file under a limit of their own.
    if method != "PUT":
        return False
    return (path.startswith("/image/") and path.endswith("/file")) or (
        path.startswith("/pcifleet/v1/hosts/") and path.endswith("/disk")
    )


def _limited(receive: Receive, limit: int) -> Receive:
    """Stop a chunked body that grows past ``limit`` (no Content-Length to check)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge(limit)
        return message

    return wrapped


async def _send_error(
    send: Send, service: str, status: int, message: str, extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(error_body(service, status, message)).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
