"""The request a log line belongs to, and one log format for every process.

Cross-cutting on purpose (standard library only, no layer): the API's
middleware sets the request id, the compute jobs a request queued set it again
in their worker thread, and ``RequestIdFilter`` puts it on every record so an
operator can follow one ``x-openstack-request-id`` through the log, whichever
layer wrote the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# "%(request)s" is " [req-...]" inside a request and "" outside one.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"

request_id_var: ContextVar[str | None] = ContextVar("pcifleet_request_id", default=None)


def current_request_id() -> str | None:
    """The ``x-openstack-request-id`` of the request being served, if any."""
    return request_id_var.get()


@contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log lines written inside belong to ``request_id`` (None: to no request)."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (or None) and ``request`` (the text LOG_FORMAT shows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        record.request_id = request_id
        record.request = f" [{request_id}]" if request_id else ""
        return True


def configure_logging(verbose: bool) -> None:
    """One handler on the root logger with timestamps and request ids, which
    uvicorn's loggers share (start it with ``log_config=None``)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # httpx logs every request at INFO: the agents' own lines say what matters
    # (an expected 409 from a stale inventory generation is not an error).
    logging.getLogger("httpx").setLevel(logging.WARNING)
