"""A counter that moves whenever an identity row may have changed, so a cache
of what tokens stand for can tell an entry read before the change from one
read after it.

The counter moves when a statement writes an identity table (before it can be
seen by others) and again when that connection goes back to the pool (after
its commit or rollback), so a reader that started anywhere inside the writer's
transaction holds an older number than the one current after the commit.
A new token does not change what any other token stands for, so inserting a
token does not move it. Writes made by other processes are not seen here;
a cache of tokens must bound its entries' age for those.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import Engine, event

IDENTITY_TABLES = frozenset(
    {
        "projects",
        "users",
        "groups",
        "group_members",
        "roles",
        "implied_roles",
        "role_assignments",
        "system_role_assignments",
        "system_group_role_assignments",
        "tokens",
    }
)
_FLAG = "pcifleet_identity_write"


def written_table(statement: str) -> tuple[str, str] | None:
    """(verb, table) of an INSERT, UPDATE or DELETE statement; None for others."""
    words = statement.split(None, 4)
    if len(words) < 2:
        return None
    verb = words[0].upper()
    if verb == "UPDATE":
        name = words[1]
    elif verb in ("INSERT", "DELETE") and len(words) >= 3 and words[1].upper() in ("INTO", "FROM"):
        name = words[2]
    else:
        return None
    name = name.split("(", 1)[0].rpartition(".")[2].strip('"`')
    return verb, name.lower()


class IdentityWatch:
    """The change counter of one engine's identity tables."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def bump(self) -> None:
        with self._lock:
            self._generation += 1

    def _on_statement(self, conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        found = written_table(statement)
        if found is None:
            return
        verb, table = found
        if table in IDENTITY_TABLES and not (verb == "INSERT" and table == "tokens"):
            self.bump()
            conn.info[_FLAG] = True

    def _on_checkin(self, _dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_FLAG, False):
            self.bump()


_watches: weakref.WeakKeyDictionary[Engine, IdentityWatch] = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


def identity_watch(engine: Engine) -> IdentityWatch:
    """The engine's watch, installed on first use (once per engine)."""
    with _watches_lock:
        watch = _watches.get(engine)
        if watch is None:
            watch = IdentityWatch()
            event.listen(engine, "before_cursor_execute", watch._on_statement)
            event.listen(engine, "checkin", watch._on_checkin)
            _watches[engine] = watch
        return watch
