"""Answers encoded straight to JSON bytes by orjson, for routes whose answers
are large (a list of a thousand servers is a couple of megabytes).

A route that returns a dict has FastAPI validate it against the route's
response model and encode it through pydantic; for an answer that is already
plain dicts, lists, strings and numbers, both only cost time. Such a route
returns ``json_response(body)`` instead: FastAPI passes a ``Response``
through untouched, and the route keeps its ``response_model=...`` for the
OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    """JSON like Starlette's (compact, UTF-8), encoded by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status_code: int = 200) -> FastJSONResponse:
    """``content`` (plain JSON types, string keys) as an encoded answer."""
    return FastJSONResponse(content, status_code=status_code)
