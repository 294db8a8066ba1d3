"""PCI addresses (``dddd:bb:ss.f``) and the limits of each field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pcifleet.pci.errors import InvalidPciAddress

# The PCI limits: 16-bit domain, 8-bit bus, 5-bit slot (device), 3-bit function.
MAX_DOMAIN = 0xFFFF
MAX_BUS = 0xFF
MAX_SLOT = 0x1F
MAX_FUNCTION = 0x7
FIELD_LIMITS = {"domain": MAX_DOMAIN, "bus": MAX_BUS, "slot": MAX_SLOT, "function": MAX_FUNCTION}
FIELD_FORMATS = {"domain": "%04x", "bus": "%02x", "slot": "%02x", "function": "%x"}

_ADDRESS_RE = re.compile(
    r"(?P<domain>[0-9a-f]{4}):(?P<bus>[0-9a-f]{2}):(?P<slot>[0-9a-f]{2})\.(?P<function>[0-9a-f])",
    re.IGNORECASE,
)


def check_field(field: str, value: int, text: object) -> None:
    """Raise InvalidPciAddress when ``value`` is outside the limit of ``field``."""
    limit = FIELD_LIMITS[field]
    if not 0 <= value <= limit:
        raise InvalidPciAddress(
            f"invalid PCI address {text!r}: {field} ({value:X}) is greater than "
            f"the maximum allowable value ({limit:X})"
        )


@dataclass(frozen=True, slots=True, order=True)
class PciAddress:
    """One PCI function; ``str()`` gives the canonical lower-case form."""

    domain: int
    bus: int
    slot: int
    function: int

    def __post_init__(self) -> None:
        for field in FIELD_LIMITS:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidPciAddress(f"PCI address {field} must be an integer, got {value!r}")
            check_field(field, value, self._text())

    def _text(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @classmethod
    def parse(cls, text: Any) -> PciAddress:
        """Read ``dddd:bb:ss.f`` (hex, any case, surrounding spaces ignored)."""
        if isinstance(text, PciAddress):
            return text
        if not isinstance(text, str):
            raise InvalidPciAddress(f"PCI address must be a string, got {type(text).__name__}")
        m = _ADDRESS_RE.fullmatch(text.strip())
        if m is None:
            raise InvalidPciAddress(
                f"invalid PCI address {text!r}: expected dddd:bb:ss.f "
                "(domain, bus, slot and function in hex)"
            )
        values = {k: int(v, 16) for k, v in m.groupdict().items()}
        for field, value in values.items():
            check_field(field, value, text)
        return cls(**values)

    def fields(self) -> dict[str, str]:
        """The address as the zero-padded hex strings a regex spec matches against."""
        return {f: FIELD_FORMATS[f] % getattr(self, f) for f in FIELD_FORMATS}

    @property
    def routing_id(self) -> int:
        """Bus and devfn as one 16-bit number: what SR-IOV VF offsets count in."""
        return (self.bus << 8) | (self.slot << 3) | self.function

    @classmethod
    def from_routing_id(cls, domain: int, rid: int) -> PciAddress:
        if not 0 <= rid <= 0xFFFF:
            raise InvalidPciAddress(f"routing id {rid:#x} is outside 0..0xffff")
        return cls(domain, rid >> 8, (rid >> 3) & 0x1F, rid & 0x7)

    def __str__(self) -> str:
        return self._text()
