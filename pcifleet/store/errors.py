"""Errors of the store, each with a code that never changes.

Like Placement's ``placement.concurrent_update``: the API puts ``code`` in its
error bodies so clients can act on it without parsing the message.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of the store's errors."""

    code = "pcifleet.store_error"


class HostNotFound(StoreError, LookupError):
    code = "pcifleet.host_not_found"

    def __init__(self, host: str) -> None:
        super().__init__(f"host {host!r} is not known")
        self.host = host


class StaleGeneration(StoreError):
    """The writer saw an older generation of the host than the database holds."""

    code = "pcifleet.concurrent_update"

    def __init__(self, host: str, seen: int | None, current: int | None) -> None:
        if seen is None:
            message = (
                f"host {host!r} is already known (generation {current}); "
                "read it and resend with the generation you saw"
            )
        elif current is None:
            message = f"host {host!r} changed since generation {seen}; read it again and resend"
        else:
            message = (
                f"host {host!r} changed since generation {seen} (now {current}); "
                "read the host again and resend"
            )
        super().__init__(message)
        self.host = host
        self.seen = seen
        self.current = current


class ClaimConflict(StoreError):
    """A claim lost a race (or kept losing it after its retries)."""

    code = "pcifleet.concurrent_update"


class InvalidInventory(StoreError, ValueError):
    """An inventory report that cannot be stored (names the offending field)."""

    code = "pcifleet.invalid_inventory"
