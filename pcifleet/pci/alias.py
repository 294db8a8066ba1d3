"""PCI aliases: named device descriptions that flavors ask for.

Accepts every key a Nova ``[pci] alias`` entry may hold. Several entries with one
name mean "any of these devices".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pcifleet.pci.device import DevType
from pcifleet.pci.errors import InvalidAlias

_ID_RE = re.compile(r"[0-9a-fA-F]{4}")
_TRUE = frozenset({"true", "yes", "1", "on"})
_FALSE = frozenset({"false", "no", "0", "off"})
MAX_ALIAS_TEXT = 64 * 1024


class NumaPolicy(StrEnum):
    REQUIRED = "required"
    LEGACY = "legacy"
    PREFERRED = "preferred"
    SOCKET = "socket"


KNOWN_KEYS = frozenset(
    {
        "name",
        "vendor_id",
        "product_id",
        "device_type",
        "numa_policy",
        "capability_type",
        "resource_class",
        "traits",
        "live_migratable",
    }
)


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    vendor_id: str
    product_id: str
    device_type: DevType | None = None
    numa_policy: NumaPolicy = NumaPolicy.LEGACY
    capability_type: str = "pci"
    resource_class: str | None = None
    traits: tuple[str, ...] = ()
    live_migratable: bool | None = None

    def spec(self) -> dict[str, str | None]:
        """The request spec this entry stands for (keys compared with pool values)."""
        out: dict[str, str | None] = {"vendor_id": self.vendor_id, "product_id": self.product_id}
        if self.device_type is not None:
            out["dev_type"] = self.device_type.value
        if self.live_migratable is not None:
            out["live_migratable"] = "true" if self.live_migratable else "false"
        return out


def _bool_word(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise InvalidAlias(f"{where}: live_migratable ({value!r}) must be a boolean word (true/false)")


def _str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidAlias(f"{where}: {key} must be a string, got {value!r}")
    return value


def _hex4(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if value is None:
        raise InvalidAlias(f"{where}: {key} is required")
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise InvalidAlias(f"{where}: {key} ({value!r}) must be exactly 4 hex digits")
    return value.lower()


def _enum(cls: Any, data: Mapping[str, Any], key: str, where: str) -> Any:
    value = data.get(key)
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        choices = "|".join(m.value for m in cls)
        raise InvalidAlias(f"{where}: {key} ({value!r}) must be one of {choices}") from None


def alias_from_mapping(data: Any) -> Alias:
    """One alias entry; raises InvalidAlias naming the alias and the field."""
    if not isinstance(data, Mapping):
        raise InvalidAlias(f"alias entry must be a JSON object, got {type(data).__name__}")
    raw_name = data.get("name")
    if not isinstance(raw_name, str) or not raw_name.strip():
        raise InvalidAlias(f"alias entry {str(dict(data))[:200]}: name is required")
    name = raw_name.strip()
    where = f"alias {name!r}"
    unknown = sorted(str(k) for k in data if k not in KNOWN_KEYS)
    if unknown:
        raise InvalidAlias(f"{where}: unknown key(s) {', '.join(unknown)}")
    capability = _str(data, "capability_type", where) or "pci"
    if capability != "pci":
        raise InvalidAlias(f"{where}: capability_type ({capability!r}) must be 'pci'")
    traits_text = _str(data, "traits", where)
    traits = tuple(t.strip() for t in traits_text.split(",") if t.strip()) if traits_text else ()
    live = data.get("live_migratable")
    return Alias(
        name=name,
        vendor_id=_hex4(data, "vendor_id", where),
        product_id=_hex4(data, "product_id", where),
        device_type=_enum(DevType, data, "device_type", where),
        numa_policy=_enum(NumaPolicy, data, "numa_policy", where) or NumaPolicy.LEGACY,
        capability_type=capability,
        resource_class=_str(data, "resource_class", where),
        traits=traits,
        live_migratable=None if live is None else _bool_word(live, where),
    )


def _entries(entries: Iterable[Any] | str | Mapping[str, Any]) -> Iterable[Any]:
    if isinstance(entries, str | bytes | Mapping):
        entries = [entries]
    for entry in entries:
        if isinstance(entry, str | bytes):
            if len(entry) > MAX_ALIAS_TEXT:
                raise InvalidAlias(f"alias entry is longer than {MAX_ALIAS_TEXT} characters")
            try:
                entry = json.loads(entry)
            except (ValueError, RecursionError) as exc:
                raise InvalidAlias(
                    f"alias entry is not valid JSON ({exc}): {entry!r:.200}"
                ) from None
        if isinstance(entry, list):
            yield from entry
        else:
            yield entry


def parse_aliases(entries: Iterable[Any] | str | Mapping[str, Any]) -> dict[str, list[Alias]]:
    """Aliases by name from config entries (JSON texts or mappings)."""
    out: dict[str, list[Alias]] = {}
    for entry in _entries(entries):
        alias = alias_from_mapping(entry)
        group = out.setdefault(alias.name, [])
        if group:
            first = group[0]
            if first.device_type != alias.device_type:
                raise InvalidAlias(
                    f"alias {alias.name!r}: device_type {alias.device_type} conflicts with "
                    f"{first.device_type} in an earlier entry of the same name"
                )
            if first.numa_policy != alias.numa_policy:
                raise InvalidAlias(
                    f"alias {alias.name!r}: numa_policy {alias.numa_policy} conflicts with "
                    f"{first.numa_policy} in an earlier entry of the same name"
                )
        group.append(alias)
    return out
