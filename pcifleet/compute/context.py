"""Who is calling and the small helpers every layer above the store shares:
the caller's context (user, project, roles), UTC timestamps as OpenStack writes
them, new ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from pcifleet.compute.errors import Forbidden

ADMIN = "admin"
MEMBER = "member"
READER = "reader"


def utcnow() -> datetime:
    """Aware UTC, the form every timestamp is stored in."""
    return datetime.now(UTC)


def timestamp(t: datetime) -> str:
    """``t`` as the OpenStack APIs write times: ISO 8601 to the second, ``Z``."""
    # A list of a thousand servers or ports writes a few thousand of these:
    # the fields by hand cost a third of isoformat on an aware time (which
    # looks up its offset) and a quarter of strftime.
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031 (the cheapest form)
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
    )


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Context:
    """Who is calling: a token's user, its project and roles in that project."""

    user_id: str
    user_name: str
    project_id: str
    project_name: str
    roles: frozenset[str]
    token_hash: str = ""
    # "project"; "system", "domain" or "unscoped" tokens only reach the Identity API
    scope: str = "project"

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles

    def require_admin(self, what: str = "this action") -> None:
        if not self.is_admin:
            raise Forbidden(f"Policy doesn't allow {what} to be performed.")

    def may_see(self, project_id: str) -> bool:
        return self.is_admin or project_id == self.project_id
