"""Readers for task payload fields: each takes a JSON value and the field's path,
returns the typed value, or raises ``InvalidTask`` naming the path.

A payload comes over the network, so every reader checks the type before it
looks at the value (``.strip()`` on a number must not be an ``AttributeError``)
and caps sizes (a megabyte-long "name" must not reach a log line or a path).
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Mapping
from typing import Any

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import normalize_id
from pcifleet.pci.errors import InvalidPciAddress, InvalidPciDevice
from pcifleet.virt.errors import InvalidTask, InvalidVirtSpec
from pcifleet.virt.validate import check_uuid

# Ids and names in the store are at most 255 characters (store.cloud.NAME).
TEXT_MAX = 255
LIST_MAX = 1024
# Free-form JSON kept as it came (a port's binding:profile): the API caps an
# admin's profile at 4096 bytes, so these limits only stop a hostile sender.
JSON_DEPTH_MAX = 8
JSON_NODES_MAX = 1024
JSON_TEXT_MAX = 4096
_SAFE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f]")

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 60
_repr.maxlevel, _repr.maxlist, _repr.maxdict = 2, 4, 4


def show(value: Any) -> str:
    """A short repr for a message, whatever size the value is."""
    return _repr.repr(value)


def at(field: str, key: str) -> str:
    """The path of ``key`` inside ``field`` (the top level has no prefix)."""
    return f"{field}.{key}" if field else key


def mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidTask(field or "payload", f"must be a JSON object, got {show(value)}")
    return value


def required(data: Mapping[str, Any], key: str, field: str) -> Any:
    if key not in data or data[key] is None:
        raise InvalidTask(at(field, key), "is required")
    return data[key]


def items(value: Any, field: str) -> list[Any]:
    """A JSON list (null is an empty one), at most ``LIST_MAX`` long."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidTask(field, f"must be a list, got {show(value)}")
    if len(value) > LIST_MAX:
        raise InvalidTask(field, f"has {len(value)} entries, more than {LIST_MAX}")
    return list(value)


def text(value: Any, field: str, maximum: int = TEXT_MAX) -> str:
    if not isinstance(value, str):
        raise InvalidTask(field, f"must be a string, got {show(value)}")
    if len(value) > maximum:
        raise InvalidTask(field, f"is longer than {maximum} characters")
    return value


def optional_text(value: Any, field: str, maximum: int = TEXT_MAX) -> str | None:
    return None if value is None else text(value, field, maximum)


def identifier(value: Any, field: str) -> str:
    """An id that may end up in a URL or a file name: no '/', no '..', no spaces."""
    found = text(value, field)
    if _SAFE_ID_RE.fullmatch(found) is None or ".." in found:
        raise InvalidTask(
            field, f"{show(found)} is not an id (letters, digits and '._:-', no '..')"
        )
    return found


def printable(value: Any, field: str, maximum: int = TEXT_MAX) -> str:
    found = text(value, field, maximum)
    if not found or _CONTROL_RE.search(found):
        raise InvalidTask(field, f"{show(found)} must be non-empty, without control characters")
    return found


def integer(value: Any, field: str, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidTask(field, f"must be a whole number, got {show(value)}")
    if not minimum <= value <= maximum:
        raise InvalidTask(field, f"{value} is outside {minimum}..{maximum}")
    return value


def optional_integer(value: Any, field: str, minimum: int, maximum: int) -> int | None:
    return None if value is None else integer(value, field, minimum, maximum)


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidTask(field, f"must be true or false, got {show(value)}")
    return value


def choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidTask(field, f"{show(value)} is not one of {', '.join(choices)}")
    return value


def uuid(value: Any, field: str) -> str:
    if isinstance(value, str) and len(value) > 64:
        raise InvalidTask(field, f"{show(value)} is not a UUID")
    try:
        return check_uuid(value, field)
    except InvalidVirtSpec as exc:
        raise InvalidTask(field, exc.reason) from None


def address(value: Any, field: str) -> PciAddress:
    if isinstance(value, str) and len(value) > 64:
        raise InvalidTask(field, f"{show(value)} is not a PCI address")
    try:
        return PciAddress.parse(value)
    except InvalidPciAddress as exc:
        raise InvalidTask(field, str(exc)) from None


def optional_address(value: Any, field: str) -> PciAddress | None:
    return None if value is None else address(value, field)


def hex_id(value: Any, field: str) -> str | None:
    """A vendor or product id, 4 lower-case hex digits; null stays null."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) > 16:
        raise InvalidTask(field, f"{show(value)} is not a hex id")
    try:
        return normalize_id(value, field)
    except InvalidPciDevice as exc:
        raise InvalidTask(field, str(exc).removeprefix(f"{field} ")) from None


def json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object kept as it came (null is an empty one), bounded in size."""
    if value is None:
        return {}
    data = mapping(value, field)
    budget = [JSON_NODES_MAX]
    return {text(k, field, TEXT_MAX): _json(v, at(field, k), 1, budget) for k, v in data.items()}


def _json(value: Any, field: str, depth: int, budget: list[int]) -> Any:
    # Iterating a hostile structure must end: depth and node count are both capped.
    budget[0] -= 1
    if budget[0] < 0:
        raise InvalidTask(field, f"holds more than {JSON_NODES_MAX} values")
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return text(value, field, JSON_TEXT_MAX)
    if depth >= JSON_DEPTH_MAX:
        raise InvalidTask(field, f"is nested deeper than {JSON_DEPTH_MAX} levels")
    if isinstance(value, list | tuple):
        return [_json(v, f"{field}[{i}]", depth + 1, budget) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or len(k) > TEXT_MAX:
                raise InvalidTask(field, f"has a key that is not a short string: {show(k)}")
            out[k] = _json(v, at(field, k), depth + 1, budget)
        return out
    raise InvalidTask(field, f"is not JSON: {show(value)}")
