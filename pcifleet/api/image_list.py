"""``GET /v2/images`` queries as glance reads them: the filters that are not plain
attribute matches, and sorting.

- ``os_hidden``: hidden images are left out unless ``os_hidden=true`` (then only
  they are listed); they stay usable by id.
- ``size_min``/``size_max``: bounds in bytes, inclusive; an image without data
  (no size yet) matches neither.
- ``tag``: repeated, each must be among the image's tags.
- ``sort=key[:dir],...`` or the older ``sort_key``/``sort_dir`` (repeatable,
  not combinable with ``sort``); glance's default is ``created_at`` descending.

Everything else is an attribute filter (``pcifleet.api.listing``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.datastructures import QueryParams

from pcifleet.api.errors import BadRequest
from pcifleet.api.input_check import InvalidInput, whole_number

SORT_KEYS = (
    "name", "status", "container_format", "disk_format", "size", "id", "created_at",
    "updated_at", "visibility", "owner", "min_disk", "min_ram",
)  # fmt: skip
SORT_DIRS = ("asc", "desc")
MAX_SORT_KEYS = len(SORT_KEYS)
# query keys handled here, not as attribute filters
HANDLED = frozenset({"os_hidden", "size_min", "size_max", "tag", "visibility"})
BOOLEANS = {"true": True, "false": False}


def _size(params: QueryParams, key: str) -> int | None:
    text = params.get(key)
    if text is None:
        return None
    try:
        return whole_number(text, key)
    except InvalidInput as exc:
        raise BadRequest(str(exc)) from None


def filter_images(views: list[dict[str, Any]], params: QueryParams) -> list[dict[str, Any]]:
    """``views`` without the ones the glance-specific filters exclude."""
    hidden_text = params.get("os_hidden", "false").lower()
    if hidden_text not in BOOLEANS:
        raise BadRequest(f"Invalid value {hidden_text[:32]!r} for 'os_hidden': true or false")
    hidden = BOOLEANS[hidden_text]
    low, high = _size(params, "size_min"), _size(params, "size_max")
    tags = params.getlist("tag")
    out = []
    for view in views:
        if view["os_hidden"] is not hidden:
            continue
        size = view["size"]
        if low is not None and (size is None or size < low):
            continue
        if high is not None and (size is None or size > high):
            continue
        if any(t not in view["tags"] for t in tags):
            continue
        out.append(view)
    return out


def attribute_params(params: QueryParams) -> QueryParams:
    """The query without the keys ``filter_images`` handles."""
    return QueryParams([(k, v) for k, v in params.multi_items() if k not in HANDLED])


def sort_order(params: QueryParams) -> list[tuple[str, str]]:
    """(key, direction) pairs, first decides; glance's default when none asked."""
    if "sort" in params and ("sort_key" in params or "sort_dir" in params):
        raise BadRequest("Old (sort_key/sort_dir) and new (sort) sorting syntax cannot be combined")
    if "sort" in params:
        pairs = []
        for part in params["sort"][:1024].split(","):
            key, _, direction = part.strip().partition(":")
            pairs.append((key.strip(), direction.strip() or "desc"))
    else:
        keys = params.getlist("sort_key") or ["created_at"]
        dirs = params.getlist("sort_dir")
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("Give one sort_dir, or one per sort_key")
        dirs = dirs * len(keys) if len(dirs) == 1 else dirs or ["desc"] * len(keys)
        pairs = list(zip(keys, dirs, strict=True))
    if len(pairs) > MAX_SORT_KEYS:
        raise BadRequest(f"At most {MAX_SORT_KEYS} sort keys are allowed")
    for key, direction in pairs:
        if key not in SORT_KEYS:
            raise BadRequest(
                f"Invalid sort key: {key[:32]!r}. It must be one of: {', '.join(SORT_KEYS)}"
            )
        if direction not in SORT_DIRS:
            raise BadRequest(f"Invalid sort direction: {direction[:32]!r} (asc or desc)")
    if "id" not in (k for k, _ in pairs):
        pairs.append(("id", pairs[-1][1]))  # a stable order for markers, as glance adds
    return pairs


def sort_images(views: list[dict[str, Any]], order: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """``views`` sorted by ``order``; a missing value (no size yet) sorts lowest."""
    out = list(views)
    for key, direction in reversed(order):  # stable sorts, last key first
        out.sort(key=_sort_key(key), reverse=direction == "desc")
    return out


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple[bool, Any]]:
    def value(view: dict[str, Any]) -> tuple[bool, Any]:
        found = view.get(key)
        return (found is not None, found if found is not None else 0)

    return value
