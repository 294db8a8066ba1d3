"""API errors and the body each OpenStack service wraps them in.

Handlers raise ``ApiError`` subclasses (defined in ``pcifleet.compute.errors``, so
the domain logic below the API raises the same ones); one formatter picks the body by the
service the path belongs to, so compute answers ``{"badRequest": {...}}``,
networking ``{"NeutronError": {...}}``, identity ``{"error": {...}}``, and
pcifleet's own API a placement-style ``{"errors": [...]}`` with a stable code.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pcifleet.compute.errors import (  # re-exported: routes raise them from here
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

# Nova's fault names by status.
COMPUTE_FAULTS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    500: "computeFault",
    503: "serviceUnavailable",
}
# Neutron's exception class names, for errors that do not name their own.
NEUTRON_TYPES = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "PolicyNotAuthorized",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    409: "Conflict",
    413: "HTTPRequestEntityTooLarge",
    500: "HTTPInternalServerError",
    503: "HTTPServiceUnavailable",
}


def service_of(path: str) -> str:
    """Which service a request path belongs to (decides the error body)."""
    for prefix in ("compute", "networking", "image", "pcifleet"):
        if path == f"/{prefix}" or path.startswith(f"/{prefix}/"):
            return prefix
    return "identity"


def error_body(service: str, status: int, message: str, kind: str | None = None) -> Any:
    """The JSON body ``service`` answers an error with."""
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    if service == "compute":
        return {COMPUTE_FAULTS.get(status, "computeFault"): {"message": message, "code": status}}
    if service == "networking":
        return {
            "NeutronError": {
                "type": kind or NEUTRON_TYPES.get(status, "HTTPError"),
                "message": message,
                "detail": "",
            }
        }
    if service == "pcifleet":
        code = kind or f"pcifleet.{title.lower().replace(' ', '_')}"
        return {"errors": [{"status": status, "code": code, "title": title, "detail": message}]}
    if service == "image":
        return {"code": status, "title": title, "message": message}
    return {"error": {"code": status, "title": title, "message": message}}


__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "TooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "error_body",
    "service_of",
]
