"""Glance's image PATCH: a JSON-patch body in either of the two forms glance reads.

- ``application/openstack-images-v2.1-json-patch`` (openstacksdk, glanceclient):
  RFC 6902 operations, ``{"op": "replace", "path": "/name", "value": "x"}``.
- ``application/openstack-images-v2.0-json-patch`` (Tempest's client): the
  draft form, the operation's name holding the path, ``{"replace": "/name",
  "value": "x"}``; there an ``add`` of an attribute already present is a 409.

Only ``add``, ``replace`` and ``remove`` on top-level attributes exist (glance's
own subset). The shape is checked here (400 naming the operation), what the
change means to an image (read-only, reserved, missing) when it is applied; the
values themselves are validated with the rest of the image afterwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pcifleet.api.errors import ApiError, BadRequest, Conflict, Forbidden

V20 = "application/openstack-images-v2.0-json-patch"
V21 = "application/openstack-images-v2.1-json-patch"
OPERATIONS = ("add", "remove", "replace")
# More operations than attributes an image may have is never a real update.
MAX_OPERATIONS = 256
MAX_POINTER = 300
# attributes glance computes; a client may not set them
READ_ONLY = frozenset(
    {
        "id", "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
        "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations",
        "owner_specified", "stores",
    }
)  # fmt: skip
# names glance keeps for itself: "os_glance_*" and its deleted-row bookkeeping
RESERVED_PREFIX = "os_glance"
RESERVED = frozenset({"location", "deleted", "deleted_at"})


class UnsupportedMediaType(ApiError):
    status = 415


@dataclass(frozen=True)
class Change:
    op: str
    key: str  # the top-level attribute the pointer names, unescaped
    value: Any = None
    # the v2.0 form: adding an attribute that is already there is a conflict
    add_must_be_new: bool = False


def is_reserved(key: str) -> bool:
    return key in RESERVED or key.startswith(RESERVED_PREFIX)


def parse_patch(content_type: str | None, body: Any) -> list[Change]:
    """The changes a PATCH body asks for; 415 for another media type, 400 for a
    body or an operation glance would refuse."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in (V20, V21):
        raise UnsupportedMediaType(f"Unsupported Content-Type {media[:64]!r}: use {V21} or {V20}")
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    if len(body) > MAX_OPERATIONS:
        raise BadRequest(f"At most {MAX_OPERATIONS} operations are allowed in one update.")
    return [_change(raw, i, draft=media == V20) for i, raw in enumerate(body)]


def _change(raw: Any, index: int, *, draft: bool) -> Change:
    if not isinstance(raw, dict):
        raise BadRequest(f"patch[{index}]: operations must be JSON objects.")
    op = _operation_draft(raw, index) if draft else _operation(raw, index)
    path = raw[op] if draft else raw.get("path")
    if path is None:
        raise BadRequest(f"patch[{index}]: unable to find 'path' in the operation")
    key = decode_pointer(path, index)
    if op == "remove":
        return Change(op, key)
    if "value" not in raw:
        raise BadRequest(f"patch[{index}]: unable to find 'value' in the {op} operation")
    return Change(op, key, raw["value"], add_must_be_new=draft)


def _operation(raw: dict[str, Any], index: int) -> str:
    op = raw.get("op")
    if op is None:
        raise BadRequest(
            f"patch[{index}]: unable to find 'op'; it must be one of {', '.join(OPERATIONS)}"
        )
    if op not in OPERATIONS:
        shown = str(op)[:32]
        raise BadRequest(
            f"patch[{index}]: invalid operation {shown!r}; it must be one of "
            f"{', '.join(OPERATIONS)}"
        )
    return str(op)


def _operation_draft(raw: dict[str, Any], index: int) -> str:
    named = [op for op in OPERATIONS if op in raw]
    if len(named) != 1:
        raise BadRequest(
            f"patch[{index}]: an operation must contain exactly one member named "
            '"add", "remove" or "replace"'
        )
    return named[0]


def decode_pointer(path: Any, index: int) -> str:
    """The attribute a JSON pointer names; only ``/<attribute>`` is an image's."""
    if not isinstance(path, str):
        raise BadRequest(f"patch[{index}]: path must be a string")
    shown = path[:64]
    if len(path) > MAX_POINTER:
        raise BadRequest(f"patch[{index}]: path longer than {MAX_POINTER} characters")
    if not path.startswith("/"):
        raise BadRequest(f"patch[{index}]: pointer {shown!r} does not start with '/'")
    if re.search(r"~[^01]", path) or path.endswith("~"):
        raise BadRequest(
            f"patch[{index}]: pointer {shown!r} contains '~' not part of an escape (~0, ~1)"
        )
    tokens = path[1:].split("/")
    if len(tokens) != 1 or not tokens[0].strip():
        raise BadRequest(f"patch[{index}]: invalid JSON pointer for an image: {shown!r}")
    return tokens[0].replace("~1", "/").replace("~0", "~")


def apply_changes(view: dict[str, Any], changes: list[Change], core: frozenset[str]) -> None:
    """Apply ``changes`` to an image's writable attributes (``view``); ``core``
    are the attributes every image has (they can be replaced, never removed)."""
    for change in changes:
        key = change.key
        if key in READ_ONLY:
            raise Forbidden(f"Attribute '{key[:64]}' is read-only.")
        if is_reserved(key):
            raise Forbidden(f"Attribute '{key[:64]}' is reserved.")
        present = key in core or key in view
        if change.op == "remove":
            if key in core:
                raise Forbidden(f"Property {key[:64]} may not be removed.")
            if not present:
                raise Conflict(f"Property {key[:64]} does not exist.")
            del view[key]
        elif change.op == "replace":
            if not present:
                raise Conflict(f"Property {key[:64]} does not exist.")
            view[key] = change.value
        else:
            if present and change.add_must_be_new:
                raise Conflict(f"Property {key[:64]} already present.")
            view[key] = change.value
