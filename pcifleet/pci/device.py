"""A PCI device as a host sees it: identity, SR-IOV role, locality, netdev."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pcifleet.pci.address import PciAddress
from pcifleet.pci.errors import InvalidPciAddress, InvalidPciDevice

_HEX_ID_RE = re.compile(r"(?:0x)?([0-9a-f]{1,4})", re.IGNORECASE)
# The kernel's IFNAMSIZ is 16 including the terminating NUL.
IFNAME_MAX_BYTES = 15


class DevType(StrEnum):
    """The SR-IOV role of a device."""

    PCI = "type-PCI"
    PF = "type-PF"
    VF = "type-VF"


def normalize_id(value: Any, field_name: str, error: type[ValueError] = InvalidPciDevice) -> str:
    """A vendor or product id as 4 lower-case hex digits (``0x`` prefix allowed)."""
    if not isinstance(value, str):
        raise error(f"{field_name} must be a hex string, got {value!r}")
    m = _HEX_ID_RE.fullmatch(value.strip())
    if m is None:
        raise error(f"{field_name} ({value}) is not a hex number of at most 4 digits (max FFFF)")
    return f"{int(m.group(1), 16):04x}"


def check_ifname(
    name: Any, field_name: str = "ifname", error: type[ValueError] = InvalidPciDevice
) -> str:
    """A Linux network interface name, checked before it can touch a filesystem path."""
    if not isinstance(name, str) or not name:
        raise error(f"{field_name} must be a non-empty string, got {name!r}")
    if "/" in name or "\0" in name or name in (".", "..") or ".." in name:
        raise error(f"{field_name} ({name!r}) must not contain '/', '..' or NUL")
    if any(c.isspace() for c in name) or ":" in name:
        raise error(f"{field_name} ({name!r}) must not contain spaces or ':'")
    if len(name.encode()) > IFNAME_MAX_BYTES:
        raise error(
            f"{field_name} ({name!r}) is longer than the kernel's limit of {IFNAME_MAX_BYTES} bytes"
        )
    return name


def _address(value: Any, field_name: str) -> PciAddress:
    try:
        return PciAddress.parse(value)
    except InvalidPciAddress as exc:
        raise InvalidPciDevice(f"{field_name}: {exc}") from None


@dataclass(frozen=True, slots=True)
class PciDevice:
    """Facts about one PCI function; immutable, states live in the tracker/store.

    Keyword construction accepts strings for addresses and dev_type and normalises
    them, so ``PciDevice(address="0000:0A:10.2", vendor_id="0x8086", ...)`` works.
    """

    address: PciAddress
    vendor_id: str
    product_id: str
    dev_type: DevType = DevType.PCI
    parent_addr: PciAddress | None = None
    numa_node: int | None = None
    ifname: str | None = None
    driver: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__ once, at construction.
        set_ = object.__setattr__
        set_(self, "address", _address(self.address, "address"))
        set_(self, "vendor_id", normalize_id(self.vendor_id, "vendor_id"))
        set_(self, "product_id", normalize_id(self.product_id, "product_id"))
        try:
            set_(self, "dev_type", DevType(self.dev_type))
        except ValueError:
            choices = ", ".join(t.value for t in DevType)
            raise InvalidPciDevice(
                f"dev_type ({self.dev_type!r}) must be one of {choices}"
            ) from None
        if self.parent_addr is not None:
            set_(self, "parent_addr", _address(self.parent_addr, "parent_addr"))
        if (self.parent_addr is not None) != (self.dev_type is DevType.VF):
            raise InvalidPciDevice(
                f"device {self.address}: parent_addr is required for a type-VF and only for it"
            )
        numa = self.numa_node
        if numa is not None and (not isinstance(numa, int) or isinstance(numa, bool)):
            raise InvalidPciDevice(f"numa_node must be an integer or null, got {numa!r}")
        if numa is not None and numa < 0:
            set_(self, "numa_node", None)  # the kernel writes -1 for "unknown"
        if self.ifname is not None:
            check_ifname(self.ifname)
        if self.driver is not None and not isinstance(self.driver, str):
            raise InvalidPciDevice(f"driver must be a string, got {self.driver!r}")
        if not isinstance(self.extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.extra.items()
        ):
            raise InvalidPciDevice("extra must be a mapping of strings to strings")
        set_(self, "extra", dict(self.extra))

    @property
    def vendor_product(self) -> str:
        """``vvvv:pppp``, the form of ``pci_vendor_info``."""
        return f"{self.vendor_id}:{self.product_id}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with the keys ``from_dict`` takes."""
        return {
            "address": str(self.address),
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "dev_type": self.dev_type.value,
            "parent_addr": str(self.parent_addr) if self.parent_addr else None,
            "numa_node": self.numa_node,
            "ifname": self.ifname,
            "driver": self.driver,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PciDevice:
        """Build from a mapping of the keyword names; unknown keys are refused."""
        if not isinstance(d, Mapping):
            raise InvalidPciDevice(f"a device must be a mapping, got {type(d).__name__}")
        allowed = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise InvalidPciDevice(f"unknown device field(s): {', '.join(map(str, unknown))}")
        missing = [k for k in ("address", "vendor_id", "product_id") if k not in d]
        if missing:
            raise InvalidPciDevice(f"device is missing field(s): {', '.join(missing)}")
        kwargs = dict(d)
        if kwargs.get("extra") is None:
            kwargs.pop("extra", None)
        if kwargs.get("dev_type") is None:
            kwargs.pop("dev_type", None)
        return cls(**kwargs)
