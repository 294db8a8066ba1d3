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


# Database driver messages (SQLite's and PostgreSQL's), lower-case, and what
# an operator should be told about each; the first match wins.
_TROUBLES = (
    ("readonly database", "The database is read-only; no change can be stored."),
    ("read-only transaction", "The database is read-only; no change can be stored."),
    ("database or disk is full", "The database's disk is full; no change can be stored."),
    ("no space left", "The database's disk is full; no change can be stored."),
    ("disk i/o error", "The database cannot read or write its files (I/O error)."),
    ("unable to open database", "The database file cannot be opened."),
    ("database is locked", "The database is busy; retry."),
    ("deadlock detected", "The request collided with a concurrent change; retry."),
    ("could not serialize", "The request collided with a concurrent change; retry."),
    ("too many connections", "The database has no free connection; retry."),
    ("connection refused", "The database cannot be reached."),
    ("server closed the connection", "The database connection was lost; retry."),
    ("terminating connection", "The database connection was lost; retry."),
    ("could not connect", "The database cannot be reached."),
)


def database_trouble(message: str) -> str | None:
    """What to tell a client about a database driver error, or None when it is
    not one the service can name (a bug: answer 500)."""
    text = message.lower()
    for needle, meaning in _TROUBLES:
        if needle in text:
            return meaning
    return None
