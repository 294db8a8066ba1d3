"""Checks for every value that ends up in libvirt XML.

Each check returns the value in its canonical form or raises ``InvalidVirtSpec``
naming the field. XML escaping is lxml's job; these checks keep out what libvirt
would reject or silently rewrite, so errors show up where the bad value came in.
"""

from __future__ import annotations

import re
import uuid as uuid_mod
from typing import Any

from pcifleet.pci.address import PciAddress
from pcifleet.pci.device import check_ifname as pci_check_ifname
from pcifleet.pci.errors import InvalidPciAddress, InvalidPciDevice
from pcifleet.virt.errors import InvalidVirtSpec

_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
# libvirt's schema caps a port profile id at 39 characters; we also keep to the
# characters switch vendors use so an id never needs quoting anywhere downstream.
_PROFILEID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,38}")
# XML 1.0 cannot carry C0 controls (but tab/LF/CR), surrogates, U+FFFE or U+FFFF
# at all, and libvirt's schema refuses newlines in names; DEL and C1 controls are
# refused too, to keep names printable.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_MACHINE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_MAX = 255
VLAN_MIN, VLAN_MAX = 1, 4094
VCPUS_MAX = 4096
# 16 TiB: far above any host, far below overflowing libvirt's KiB counters.
MEMORY_MB_MAX = 16 * 1024 * 1024
IMAGE_FORMATS = ("raw", "qcow2")


def check_mac(value: Any, field: str = "mac") -> str:
    """A unicast Ethernet MAC as six lower-case ``xx:`` groups."""
    if not isinstance(value, str):
        raise InvalidVirtSpec(field, f"must be a string like fa:16:3e:12:34:56, got {value!r}")
    mac = value.strip().lower()
    if _MAC_RE.fullmatch(mac) is None:
        raise InvalidVirtSpec(field, f"{value!r} is not a MAC address like fa:16:3e:12:34:56")
    first = int(mac[:2], 16)
    if first & 1:
        raise InvalidVirtSpec(field, f"{value!r} is a multicast address; a port needs unicast")
    if mac == "00:00:00:00:00:00":
        raise InvalidVirtSpec(field, "00:00:00:00:00:00 is not a usable MAC address")
    return mac


def check_vlan(value: Any, field: str = "vlan") -> int:
    """An 802.1Q VLAN id, 1..4094 (0 and 4095 are reserved by the standard)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidVirtSpec(field, f"must be an integer {VLAN_MIN}..{VLAN_MAX}, got {value!r}")
    if not VLAN_MIN <= value <= VLAN_MAX:
        raise InvalidVirtSpec(field, f"{value} is outside {VLAN_MIN}..{VLAN_MAX}")
    return value


def check_profileid(value: Any, field: str = "profileid") -> str:
    """An 802.1Qbh port profile id: 1..39 of ``A-Z a-z 0-9 . _ : + -``."""
    if not isinstance(value, str) or _PROFILEID_RE.fullmatch(value) is None:
        raise InvalidVirtSpec(
            field,
            f"{value!r} is not a port profile id (1 to 39 of letters, digits and '._:+-', "
            "starting with a letter or digit)",
        )
    return value


def check_name(value: Any, field: str = "name") -> str:
    """A libvirt domain or network name: printable, no '/', at most 255 characters.

    Characters such as ``<`` or ``&`` are fine: lxml escapes them.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidVirtSpec(field, f"must be a non-empty string, got {value!r}")
    if len(value) > NAME_MAX:
        raise InvalidVirtSpec(field, f"is longer than {NAME_MAX} characters")
    if "/" in value:
        raise InvalidVirtSpec(field, f"{value!r} must not contain '/'")
    if _CONTROL_RE.search(value):
        raise InvalidVirtSpec(field, f"{value!r} must not contain control characters")
    return value


def check_title(value: Any, field: str = "title") -> str:
    """A domain's one-line title (the server's display name); may contain '/'."""
    if not isinstance(value, str):
        raise InvalidVirtSpec(field, f"must be a string, got {value!r}")
    if len(value) > NAME_MAX:
        raise InvalidVirtSpec(field, f"is longer than {NAME_MAX} characters")
    if _CONTROL_RE.search(value):
        raise InvalidVirtSpec(field, f"{value!r} must not contain control characters")
    return value


def check_uuid(value: Any, field: str = "uuid") -> str:
    """A UUID in the canonical lower-case dashed form."""
    if isinstance(value, uuid_mod.UUID):
        return str(value)
    if not isinstance(value, str):
        raise InvalidVirtSpec(field, f"must be a UUID string, got {value!r}")
    try:
        parsed = uuid_mod.UUID(value.strip())
    except ValueError:
        raise InvalidVirtSpec(field, f"{value!r} is not a UUID") from None
    return str(parsed)


def check_machine(value: Any, field: str = "machine") -> str:
    """A QEMU machine type such as ``q35`` or ``pc-q35-7.2``."""
    if not isinstance(value, str) or _MACHINE_RE.fullmatch(value) is None:
        raise InvalidVirtSpec(field, f"{value!r} is not a machine type like q35 or pc-q35-7.2")
    return value


def check_positive(value: Any, field: str, maximum: int) -> int:
    """An integer in 1..maximum."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidVirtSpec(field, f"must be an integer, got {value!r}")
    if not 1 <= value <= maximum:
        raise InvalidVirtSpec(field, f"{value} is outside 1..{maximum}")
    return value


def check_image_path(value: Any, field: str = "image_path") -> str:
    """An absolute file path (a disk image, a console log)."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidVirtSpec(field, f"must be an absolute path, got {value!r}")
    if _CONTROL_RE.search(value):
        raise InvalidVirtSpec(field, f"{value!r} must not contain control characters")
    if "/../" in value + "/" or "/./" in value + "/":
        raise InvalidVirtSpec(field, f"{value!r} must not contain '.' or '..' components")
    return value


def check_choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise InvalidVirtSpec(field, f"{value!r} is not one of {', '.join(choices)}")
    return str(value)


def check_ifname(value: Any, field: str = "ifname") -> str:
    """A Linux netdev name (the kernel's rules, as the PCI model checks them)."""
    try:
        return pci_check_ifname(value, field)
    except InvalidPciDevice as exc:
        raise InvalidVirtSpec(field, str(exc).removeprefix(f"{field} ")) from None


def check_address(value: Any, field: str = "address") -> PciAddress:
    """A PCI address, given as ``PciAddress`` or ``dddd:bb:ss.f`` text."""
    try:
        return PciAddress.parse(value)
    except InvalidPciAddress as exc:
        raise InvalidVirtSpec(field, str(exc)) from None
