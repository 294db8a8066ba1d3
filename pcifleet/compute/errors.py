"""Errors of the controller's domain logic, each with the HTTP status it means.

``compute`` and the lower parts of the API raise these; the API's one formatter
(``pcifleet.api.errors.error_body``) wraps them in the body of the OpenStack
service the request went to. ``kind`` is Neutron's exception type or
pcifleet's stable error code.
"""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than success; ``kind`` is Neutron's type or pcifleet's code."""

    status = 500

    def __init__(self, message: str, *, kind: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class TooLarge(ApiError):
    status = 413


class TooManyRequests(ApiError):
    """Too many attempts of one kind; ``retry_after`` seconds until the next is heard."""

    status = 429

    def __init__(self, message: str, *, retry_after: int, kind: str | None = None):
        super().__init__(message, kind=kind)
        self.retry_after = retry_after


class Unavailable(ApiError):
    """The service cannot take the request now; ``retry_after`` seconds is a fair wait."""

    status = 503

    def __init__(self, message: str, *, retry_after: int = 1, kind: str | None = None):
        super().__init__(message, kind=kind)
        self.retry_after = retry_after
