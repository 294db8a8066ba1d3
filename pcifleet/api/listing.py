"""List queries as OpenStack clients send them: attribute filters and ``fields``.

Neutron and glance filter on any attribute (``?name=x&network_id=y``, repeated
keys mean "any of"); rows are filtered on their output shape so the filter and
what the client sees cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from starlette.datastructures import QueryParams

from pcifleet.api.errors import BadRequest
from pcifleet.api.input_check import INT32_MAX, InvalidInput, whole_number

# query keys that are not attribute filters
PAGING = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "verbose", "sort"}
MAX_FILTER_VALUE = 1024


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return str(value).lower() in {w.lower() for w in wanted}
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    if isinstance(value, (str, int, float)):
        return str(value) in wanted
    if isinstance(value, list) and all("=" in w for w in wanted):
        return _matches_items(value, wanted)
    return True  # other lists and mappings are not filterable this way; ignore


def _matches_items(items: list[Any], wanted: list[str]) -> bool:
    """Neutron's ``fixed_ips=ip_address=X&fixed_ips=subnet_id=Y``: for every key
    named, some item has one of the values asked for that key."""
    by_key: dict[str, set[str]] = {}
    for w in wanted:
        key, _, val = w.partition("=")
        by_key.setdefault(key, set()).add(val)
    return all(
        any(isinstance(i, dict) and str(i.get(key)) in vals for i in items)
        for key, vals in by_key.items()
    )


def parse_filters(
    params: QueryParams, *, aliases: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """The attribute filters in ``params`` (key -> any of these values)."""
    aliases = aliases or {}
    filters: dict[str, list[str]] = {}
    for key in params:
        if key in PAGING:
            continue
        values = params.getlist(key)
        if any(len(v) > MAX_FILTER_VALUE for v in values):
            raise BadRequest(f"filter {key[:64]!r} is longer than {MAX_FILTER_VALUE} characters")
        # glance's "in:a,b" operator
        values = [
            part for v in values for part in (v[3:].split(",") if v.startswith("in:") else [v])
        ]
        filters[aliases.get(key, key)] = values
    return filters


def matches_filters(view: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    """True when the view meets every filter; keys the view lacks are ignored."""
    return all(key not in view or _matches(view[key], wanted) for key, wanted in filters.items())


def apply_filters(
    views: Iterable[dict[str, Any]], params: QueryParams, *, aliases: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Views whose attributes match every filter in ``params``; unknown keys are ignored."""
    filters = parse_filters(params, aliases=aliases)
    return [view for view in views if matches_filters(view, filters)]


def select_fields(view: dict[str, Any], params: QueryParams) -> dict[str, Any]:
    """Only the ``fields`` asked for (all when none are)."""
    fields = [f for f in params.getlist("fields") if f]
    if not fields:
        return view
    return {k: v for k, v in view.items() if k in fields}


T = TypeVar("T")


def paginate(
    views: list[T],
    params: QueryParams,
    *,
    id_key: str = "id",
    key: Callable[[T], Any] | None = None,
) -> list[T]:
    """``marker`` (exclusive) and ``limit`` over items in their given order; an
    item's id is ``key(item)``, or its ``id_key`` entry."""
    marker = params.get("marker")
    if marker:
        ids = [key(v) if key else v.get(id_key) for v in views]  # type: ignore[attr-defined]
        if marker not in ids:
            raise BadRequest(f"marker {marker[:64]!r} not found")
        views = views[ids.index(marker) + 1 :]
    limit = params.get("limit")
    if limit:
        try:
            views = views[: whole_number(limit, "limit", INT32_MAX)]
        except InvalidInput as exc:
            raise BadRequest(str(exc)) from None
    return views
