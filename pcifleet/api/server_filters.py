"""Which servers ``GET /servers`` and ``/servers/detail`` answer: Nova's query
filters, applied as Nova applies them.

- Deleted servers are left out unless asked for: an admin's ``deleted=true``
  (only those), or ``changes-since``/``changes-before`` (which exist to tell a
  client what changed, deletions included).
- ``all_tenants`` widens an admin's list to every project; only then do
  ``tenant_id``/``project_id`` narrow it (without it they are ignored, so an
  admin never sees another project's servers by naming it alone).
- ``ip``/``ip6`` and ``name`` are regular expressions searched in the fixed
  addresses and the name.

A member chooses both the pattern and the names it runs over, so a pattern
such as ``(a|aa)+$`` against a long name could backtrack for minutes. The
patterns run on the ``regex`` engine, which gives up after a time limit and
releases the GIL while it matches (``concurrent=True``): one request gets a 400
naming the filter after one search past ``SEARCH_TIMEOUT`` or ``MATCH_BUDGET``
of matching in all, and every other request, agents' reports included, runs
meanwhile. The engine's limit is wall time, so a search that ran out while
its thread used little CPU (it waited for a core) is tried again, a few times. Nova's own
answer (database-side REGEXP for admins, substring for others) was not taken:
clients rely on anchors (``^web-``) working for everyone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import regex
from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from starlette.datastructures import QueryParams

from pcifleet.api.db_paging import AnySelect
from pcifleet.api.errors import BadRequest
from pcifleet.compute.context import Context
from pcifleet.store.cloud import IpAllocation, Port
from pcifleet.store.models import Instance

TRUE = ("1", "true", "t", "yes", "y", "on")
# A regular expression longer than this is refused, not compiled.
MAX_PATTERN = 255
# Wall seconds one search may take: a name is at most 255 characters, so an
# honest pattern takes microseconds and only a backtracking one gets near this.
SEARCH_TIMEOUT = 0.02
# CPU seconds all of one request's searches may take together (CPU, not wall
# time: a busy machine that preempts the thread must not turn a good pattern
# into a 400).
MATCH_BUDGET = 0.02
# Searches tried again when the wall-clock limit ran out while the thread used
# under half of it in CPU (it was waiting for a core on a loaded machine).
PREEMPTED_RETRIES = 3


class TimedPattern:
    """A query's regular expression with a time limit per search and a budget
    shared by all of a request's searches."""

    def __init__(self, key: str, compiled: Any) -> None:
        self.key = key
        self.compiled = compiled
        self.spent = 0.0

    def search(self, text: str) -> bool:
        for attempt in range(PREEMPTED_RETRIES + 1):
            started = time.thread_time()
            try:
                if self.spent > MATCH_BUDGET:
                    raise TimeoutError
                found = self.compiled.search(text, timeout=SEARCH_TIMEOUT, concurrent=True)
                return found is not None
            except TimeoutError:
                used = time.thread_time() - started
                # The engine's limit is wall time: a thread that waited for a
                # core used little CPU, and a pattern that backtracks uses it all.
                preempted = used < SEARCH_TIMEOUT / 2 and self.spent + used <= MATCH_BUDGET
                if not preempted or attempt == PREEMPTED_RETRIES:
                    raise BadRequest(
                        f"Invalid input for query parameter '{self.key}': the regular "
                        "expression takes too long to match; use a simpler one"
                    ) from None
            finally:
                self.spent += time.thread_time() - started
        raise AssertionError("unreachable")


def parse_time(params: QueryParams, key: str) -> datetime | None:
    """``key`` as an ISO 8601 time (naive ones are UTC); 400 naming it when it is not."""
    text = params.get(key)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text[:64])
    except ValueError:
        raise BadRequest(
            f"Invalid input for query parameters {key}. Value: {text[:64]}. "
            f"{text[:64]} is not a valid date-time."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def pattern(params: QueryParams, key: str) -> TimedPattern | None:
    text = params.get(key)
    if text is None:
        return None
    if len(text) > MAX_PATTERN:
        raise BadRequest(f"Invalid input for query parameter '{key}': longer than {MAX_PATTERN}")
    try:
        return TimedPattern(key, regex.compile(text))
    except regex.error:
        raise BadRequest(
            f"Invalid input for query parameter '{key}': not a regular expression"
        ) from None


def _addresses(session: Session, uuids: list[str]) -> dict[str, list[str]]:
    rows = session.execute(
        select(Port.device_id, IpAllocation.ip_address)
        .join(IpAllocation, IpAllocation.port_id == Port.id)
        .where(Port.device_id.in_(uuids))
    )
    out: dict[str, list[str]] = {}
    for device_id, address in rows:
        out.setdefault(device_id, []).append(address)
    return out


def _by_ip(
    session: Session, servers: list[Row[Any]], wanted: TimedPattern, version: int
) -> list[Row[Any]]:
    addresses = _addresses(session, [s.uuid for s in servers])

    def matches(s: Row[Any]) -> bool:
        for a in addresses.get(s.uuid, []):
            try:
                if ip_address(a).version == version and wanted.search(a):
                    return True
            except ValueError:
                continue
        return False

    return [s for s in servers if matches(s)]


FALSE = ("0", "false", "f", "no", "n", "off")


def _boolean(params: QueryParams, key: str) -> bool:
    """``key`` as oslo's strict boolean words; 400 naming it for anything else."""
    text = params[key]
    word = text.strip().lower()
    if word in TRUE or word in FALSE:
        return word in TRUE
    raise BadRequest(
        f"Invalid input for query parameters {key}. Value: {text[:32]!r}. "
        f"Expected one of {', '.join(TRUE + FALSE)}."
    )


def _limit(params: QueryParams) -> int | None:
    text = params.get("limit")
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BadRequest(f"limit must be a non-negative integer, got {text[:32]!r}")
    return int(text)


# The list's conditions, with their values as bound parameters (the
# statement of each combination is built once, see ServerList).
_CHANGED = func.coalesce(Instance.updated_at, Instance.created_at)
_MARKER_CREATED: BindParameter[datetime] = bindparam("marker_created")
CONDITIONS: dict[str, ColumnElement[bool]] = {
    "project_id": Instance.project_id == bindparam("project_id"),
    "deleted": Instance.status == "DELETED",
    "not_deleted": Instance.status != "DELETED",
    "status": Instance.status == bindparam("status"),
    "host": Instance.host == bindparam("host"),
    "flavor": Instance.flavor_id == bindparam("flavor"),
    "image": Instance.image_id == bindparam("image"),
    "locked": Instance.locked == bindparam("locked"),
    "since": bindparam("since") <= _CHANGED,
    "before": bindparam("before") >= _CHANGED,
    # after the marker in the list's order (newest first, then by uuid)
    "marker": (Instance.created_at < _MARKER_CREATED)
    | ((Instance.created_at == _MARKER_CREATED) & (Instance.uuid > bindparam("marker_uuid"))),
}
_MARKER_ROW = select(Instance.created_at, Instance.uuid).where(Instance.uuid == bindparam("marker"))
# combinations kept per list; more (a client trying them all) are built each time
MAX_KEPT = 256


class ServerList:
    """The statements of a server list over ``base`` (columns of
    ``instances``, ``uuid`` and ``name`` among them), one per combination of
    conditions (and a limit) a request uses, built once: building a statement
    and its cache key costs several times what running a page's query does."""

    def __init__(self, base: AnySelect) -> None:
        self.base = base
        self._kept: dict[frozenset[str], AnySelect] = {}

    def statement(self, used: frozenset[str]) -> AnySelect:
        found = self._kept.get(used)
        if found is None:
            found = self._build(used)
            if len(self._kept) < MAX_KEPT:
                self._kept[used] = found
        return found

    def _build(self, used: frozenset[str]) -> AnySelect:
        conditions = [CONDITIONS[c] for c in sorted(used) if c != "limit"]
        order = (Instance.created_at.desc(), Instance.uuid)
        if "limit" not in used:
            return self.base.where(*conditions).order_by(*order)
        # The page's ids first, from instances alone: the base's joins (a
        # server's details and host) then run for the page's rows only, not
        # for every server of the project before the sort.
        page = select(Instance.uuid).where(*conditions).order_by(*order)
        return self.base.where(Instance.uuid.in_(page.limit(bindparam("limit")))).order_by(*order)


def _conditions(params: QueryParams, ctx: Context, mv: tuple[int, int]) -> dict[str, Any]:
    """The conditions a request names (see the module docstring), by name
    with their values (None for those without one). ``locked`` counts from
    microversion ``mv`` 2.73 (for admins always), as in Nova."""
    used: dict[str, Any] = {}
    all_tenants = params.get("all_tenants", params.get("all_projects"))
    if ctx.is_admin and all_tenants is not None and all_tenants.lower() in ("", *TRUE):
        wanted = params.get("tenant_id", params.get("project_id"))
        if wanted is not None:
            used["project_id"] = wanted
    else:
        used["project_id"] = ctx.project_id
    if ctx.is_admin and "deleted" in params:
        # Nova: an unparsable value means "not deleted"
        used["deleted" if params["deleted"].lower() in TRUE else "not_deleted"] = None
    elif "changes-since" not in params and "changes-before" not in params:
        used["not_deleted"] = None
    if "status" in params:
        used["status"] = params["status"].upper()[:16]
    if ctx.is_admin and "host" in params:
        used["host"] = params["host"]
    if "flavor" in params:
        used["flavor"] = params["flavor"]
    if "image" in params:
        used["image"] = params["image"]
    if "locked" in params and (mv >= (2, 73) or ctx.is_admin):
        used["locked"] = _boolean(params, "locked")
    since = parse_time(params, "changes-since")
    before = parse_time(params, "changes-before")
    if since and before and since > before:
        raise BadRequest("The value of changes-since must be less than or equal to changes-before.")
    if since is not None:
        used["since"] = since
    if before is not None:
        used["before"] = before
    return used


def _marker_values(session: Session, marker: str) -> dict[str, Any]:
    found = session.execute(_MARKER_ROW, {"marker": marker[:64]}).first()
    if found is None:
        raise BadRequest(f"marker {marker[:64]!r} not found")
    return {"marker_created": found[0], "marker_uuid": found[1]}


def list_servers(
    session: Session,
    ctx: Context,
    params: QueryParams,
    servers: ServerList,
    mv: tuple[int, int] = (2, 1),
) -> list[Row[Any]]:
    """The rows of ``servers`` for the servers a list request names, newest
    first (see the module docstring), ``marker`` and ``limit`` applied. Paged
    in the database, so a page costs what its rows cost whatever the fleet's
    size; only the regular-expression filters (``name``, ``ip``, ``ip6``) are
    matched here, on every candidate, and then paged."""
    limit, marker = _limit(params), params.get("marker")
    used = _conditions(params, ctx, mv)
    name = pattern(params, "name")
    by_ip = [(w, v) for k, v in (("ip", 4), ("ip6", 6)) if (w := pattern(params, k)) is not None]
    if name is None and not by_ip:
        if marker:
            used["marker"] = None
            used.update(_marker_values(session, marker))
        if limit is not None:
            used["limit"] = limit
        query = servers.statement(frozenset(k for k in used if k in CONDITIONS or k == "limit"))
        return list(session.execute(query, used).all())
    query = servers.statement(frozenset(used))
    found = list(session.execute(query, used).all())
    if name is not None:
        found = [s for s in found if name.search(s.name)]
    for wanted, version in by_ip:
        found = _by_ip(session, found, wanted, version)
    if marker:
        ids = [s.uuid for s in found]
        if marker not in ids:
            raise BadRequest(f"marker {marker[:64]!r} not found")
        found = found[ids.index(marker) + 1 :]
    return found if limit is None else found[:limit]
