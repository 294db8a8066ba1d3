"""The one gate every query string and path passes before any handler: no NUL
or other control characters, no text longer than a database column could ever
hold, and every number a query may carry written in ASCII digits within a
bound.

Python's ``str.isdigit`` also accepts ``"²"`` and ``int()`` refuses more than
4,300 digits; PostgreSQL refuses a NUL in any text. Each of those once turned a
hostile query into a 500, so the rules live here, once, and the middleware
answers their breach with the service's 400 body and the request id.
"""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

# Longer than any name, id, filter or regular expression a client has reason to send.
MAX_KEY = 255
MAX_VALUE = 4096
MAX_PATH = 8192
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# Query parameters that are whole numbers wherever they appear, with their bound.
NUMBERS: dict[str, int] = {
    "limit": INT32_MAX,
    "minRam": INT32_MAX,
    "minDisk": INT32_MAX,
    "min_ram": INT32_MAX,
    "min_disk": INT32_MAX,
    "size_min": INT64_MAX,
    "size_max": INT64_MAX,
}
_DIGITS = re.compile(r"[0-9]{1,19}")
# C0 controls and DEL; tabs and newlines have no place in a query either.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidInput(ValueError):
    """A query or path the gate refuses; the message names the field."""


def whole_number(text: str, field: str, maximum: int = INT64_MAX) -> int:
    """``text`` as an integer 0..``maximum`` written in ASCII digits, else InvalidInput."""
    if _DIGITS.fullmatch(text) is None or int(text) > maximum:
        raise InvalidInput(
            f"Invalid input for query parameter '{field}': {text[:32]!r} is not a "
            f"whole number from 0 to {maximum}"
        )
    return int(text)


def id_number(text: str) -> int | None:
    """A numeric path id (``/os-pci/<id>``, ``/tasks/<id>``) or None when it is not one:
    the caller answers 404, as for an id that names nothing."""
    if _DIGITS.fullmatch(text) is None or int(text) > INT64_MAX:
        return None
    return int(text)


def _printable(text: str, what: str, limit: int) -> None:
    if len(text) > limit:
        raise InvalidInput(f"Invalid input for {what}: longer than {limit} characters")
    if _CONTROL.search(text):
        raise InvalidInput(f"Invalid input for {what}: control characters are not allowed")


def check_query(query_string: bytes) -> None:
    """Raise InvalidInput naming the first query parameter that breaks a rule."""
    if not query_string:
        return
    params = QueryParams(query_string)
    for key, value in params.multi_items():
        _printable(key, "a query parameter name", MAX_KEY)
        _printable(value, f"query parameter '{key[:64]}'", MAX_VALUE)
        maximum = NUMBERS.get(key)
        if maximum is not None and value != "":
            whole_number(value, key, maximum)


def check_path(path: str) -> None:
    """Raise InvalidInput for a path no resource could have."""
    _printable(path, "the request path", MAX_PATH)
