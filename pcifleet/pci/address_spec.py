"""The ``address`` key of a device spec: a glob string or a mapping of regexes.

Glob form (Nova's): ``[[[[<domain>]:]<bus>]:][<slot>][.[<function>]]`` where every
part may be empty or ``*`` (any) and is otherwise a hex number within the PCI
limits. Mapping form: ``{"domain": RE, "bus": RE, "slot": RE, "function": RE}``,
each a regular expression matched from the start of the zero-padded hex field
(as Nova does; anchor with ``$`` for an exact match); missing keys match anything.
A mapping whose four values are plain hex numbers names one device, like a glob
without wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import regex

from pcifleet.pci.address import FIELD_LIMITS, PciAddress
from pcifleet.pci.errors import InvalidDeviceSpec

ANY = "*"
FIELDS = ("domain", "bus", "slot", "function")
# A pattern longer than this is not a PCI address pattern but an accident or an attack.
MAX_PATTERN_LENGTH = 256
# Matching is bounded in time as well, so no pattern can hang the process.
MATCH_TIMEOUT_S = 0.05
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


def _hex_field(field: str, text: str) -> int:
    if _HEX_RE.fullmatch(text) is None:
        raise InvalidDeviceSpec(f"property {field} ({text}) is not a hex number")
    value = int(text, 16)
    limit = FIELD_LIMITS[field]
    if value > limit:
        raise InvalidDeviceSpec(
            f"property {field} ({text}) is greater than the maximum allowable value ({limit:X})"
        )
    return value


@dataclass(frozen=True, slots=True)
class GlobAddressSpec:
    """Each field an int or None (any)."""

    domain: int | None
    bus: int | None
    slot: int | None
    function: int | None

    @classmethod
    def parse(cls, text: str) -> GlobAddressSpec:
        dbs, _, func = text.partition(".")
        parts = dbs.split(":")
        if len(parts) > 3:
            raise InvalidDeviceSpec(
                f"address ({text}) has more than three ':' separated parts (domain:bus:slot)"
            )
        parts = [""] * (3 - len(parts)) + parts
        values: list[int | None] = []
        for field, part in zip(FIELDS, [*parts, func], strict=True):
            part = part.strip()
            values.append(None if part in ("", ANY) else _hex_field(field, part))
        return cls(*values)

    @property
    def single(self) -> PciAddress | None:
        """The one device this names, when no field is a wildcard."""
        if None in (self.domain, self.bus, self.slot, self.function):
            return None
        return PciAddress(self.domain, self.bus, self.slot, self.function)  # type: ignore[arg-type]

    def match(self, address: PciAddress) -> str | None:
        for field in FIELDS:
            want = getattr(self, field)
            if want is not None and want != getattr(address, field):
                return f"{field} {getattr(address, field):x} is not {want:x}"
        return None


@dataclass(frozen=True, slots=True)
class RegexAddressSpec:
    patterns: tuple[tuple[str, Any], ...]  # (field, compiled pattern)
    single: PciAddress | None

    @classmethod
    def parse(cls, mapping: Mapping[str, Any]) -> RegexAddressSpec:
        unknown = sorted(set(map(str, mapping)) - set(FIELDS))
        if unknown:
            raise InvalidDeviceSpec(
                f"address has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(FIELDS)}"
            )
        compiled: list[tuple[str, Any]] = []
        literal: dict[str, int] = {}
        for field in FIELDS:
            if field not in mapping:
                continue
            pattern = mapping[field]
            if not isinstance(pattern, str):
                raise InvalidDeviceSpec(
                    f"address {field} must be a string (a regular expression), got {pattern!r}"
                )
            if len(pattern) > MAX_PATTERN_LENGTH:
                raise InvalidDeviceSpec(
                    f"address {field} regular expression is longer than "
                    f"{MAX_PATTERN_LENGTH} characters"
                )
            try:
                compiled.append((field, regex.compile(pattern, regex.IGNORECASE)))
            except (regex.error, ValueError, OverflowError, RecursionError) as exc:
                raise InvalidDeviceSpec(
                    f"address {field} ({pattern}) is not a valid regular expression: {exc}"
                ) from None
            if _HEX_RE.fullmatch(pattern):
                literal[field] = _hex_field(field, pattern)
        single = PciAddress(**literal) if len(literal) == len(FIELDS) else None
        return cls(tuple(compiled), single)

    def match(self, address: PciAddress) -> str | None:
        if self.single is not None:
            return None if self.single == address else f"address {address} is not {self.single}"
        fields = address.fields()
        for field, pattern in self.patterns:
            try:
                found = pattern.match(fields[field], timeout=MATCH_TIMEOUT_S)
            except TimeoutError:
                return f"{field} pattern {pattern.pattern!r} timed out"
            if found is None:
                return f"{field} {fields[field]} does not match {pattern.pattern!r}"
        return None


AddressSpec = GlobAddressSpec | RegexAddressSpec


def parse_address_spec(value: Any) -> AddressSpec:
    """Read the ``address`` value of a device spec; raises InvalidDeviceSpec."""
    if isinstance(value, str):
        return GlobAddressSpec.parse(value)
    if isinstance(value, Mapping):
        return RegexAddressSpec.parse(value)
    raise InvalidDeviceSpec(
        f"address must be a string or a mapping of regular expressions, got {type(value).__name__}"
    )
