"""A server's ``fault``: why it is in ERROR, as Nova shows it."""

from __future__ import annotations

from typing import Any

from pcifleet.compute.context import timestamp, utcnow


def server_fault(message: str, code: int = 500) -> dict[str, Any]:
    return {"code": code, "message": message[:1000], "created": timestamp(utcnow())}
