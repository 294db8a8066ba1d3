"""Device specs (Nova's ``[pci] device_spec``, formerly ``passthrough_whitelist``).

A spec says which host devices may be handed out and tags them. Matching keys:
``vendor_id``, ``product_id``, ``address`` or ``devname``; every other key is a tag.
A list of specs classifies each device by the first spec that matches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pcifleet.pci.address_spec import AddressSpec, parse_address_spec
from pcifleet.pci.device import DevType, PciDevice, check_ifname, normalize_id
from pcifleet.pci.errors import InvalidDeviceSpec
from pcifleet.pci.ranges import parse_index_list

ANY = "*"
MATCH_KEYS = ("vendor_id", "product_id", "address", "devname", "vf_index")
# A PF has at most 65535 VFs (the SR-IOV capability's TotalVFs is 16 bits).
VF_INDEX_MAX = 65535
TRUE_WORDS = frozenset({"true", "yes", "1", "on"})
# Names the pools use for their own fields; a tag may not shadow them.
RESERVED_TAGS = frozenset({"dev_type", "numa_node", "parent_addr", "count", "total", "tags"})
BOOLEAN_TAGS = frozenset({"trusted", "remote_managed", "live_migratable"})
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "1", "0", "on", "off"})
MAX_SPEC_TEXT = 64 * 1024


def _load(obj: Any) -> Any:
    if isinstance(obj, str | bytes):
        if len(obj) > MAX_SPEC_TEXT:
            raise InvalidDeviceSpec(f"device spec is longer than {MAX_SPEC_TEXT} characters")
        try:
            return json.loads(obj)
        except (ValueError, RecursionError) as exc:
            raise InvalidDeviceSpec(
                f"device spec is not valid JSON ({exc}): {obj!r:.200}"
            ) from None
    return obj


def _id(value: Any, key: str) -> str | None:
    if value == ANY:
        return None
    return normalize_id(value, f"property {key}", InvalidDeviceSpec)


def _tag(key: str, value: Any) -> str | None:
    if key in RESERVED_TAGS:
        raise InvalidDeviceSpec(f"tag {key} is reserved for pool fields and cannot be set")
    if value is None and key == "physical_network":
        return None  # a port on a tunnelled network has no physical network
    if not isinstance(value, str):
        raise InvalidDeviceSpec(
            f"tag {key} must be a string, got {json.dumps(value)[:80]} ({type(value).__name__})"
        )
    if key in BOOLEAN_TAGS:
        word = value.strip().lower()
        if word not in BOOLEAN_WORDS:
            raise InvalidDeviceSpec(
                f"tag {key} ({value}) must be a boolean word such as 'true' or 'false'"
            )
        # One spelling, so a request for trusted="true" meets a pool tagged "yes".
        return "true" if word in TRUE_WORDS else "false"
    return value


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One operator entry; build it with ``from_json``."""

    vendor_id: str | None = None
    product_id: str | None = None
    address: AddressSpec | None = None
    devname: str | None = None
    # VF indexes (the N of the PF's virtfnN): the spec then matches only those
    # VFs, so one PF's VFs can be split between physical networks or uses.
    vf_index: frozenset[int] | None = None
    tags: dict[str, str | None] = field(default_factory=dict)
    source: str = "{}"

    @classmethod
    def from_json(cls, obj: Any) -> DeviceSpec:
        data = _load(obj)
        if not isinstance(data, Mapping):
            raise InvalidDeviceSpec(
                f"device spec must be a JSON object, got {type(data).__name__}: {str(obj)[:200]}"
            )
        if "address" in data and "devname" in data:
            raise InvalidDeviceSpec("device spec may have address or devname, not both")
        try:
            source = json.dumps(data, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidDeviceSpec(
                f"device spec holds a value JSON cannot represent: {exc}"
            ) from None
        devname = data.get("devname")
        if devname is not None or "devname" in data:
            devname = check_ifname(devname, "property devname", InvalidDeviceSpec)
        tags: dict[str, str | None] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise InvalidDeviceSpec(f"device spec key {key!r} is not a string")
            if key not in MATCH_KEYS:
                tags[key] = _tag(key, value)
        return cls(
            vendor_id=_id(data["vendor_id"], "vendor_id") if "vendor_id" in data else None,
            product_id=_id(data["product_id"], "product_id") if "product_id" in data else None,
            address=parse_address_spec(data["address"]) if "address" in data else None,
            devname=devname,
            vf_index=_vf_index(data["vf_index"]) if "vf_index" in data else None,
            tags=tags,
            source=source,
        )

    def mismatch(self, device: PciDevice, parent: PciDevice | None = None) -> str | None:
        """None when the spec matches ``device``; otherwise the key that failed, and why.

        ``parent`` is a VF's PF: a spec naming a PF (by single address or devname)
        matches the PF's VFs too.
        """
        if self.vf_index is not None:
            reason = _vf_mismatch(self.vf_index, device)
            if reason is not None:
                return reason
        if self.vendor_id is not None and self.vendor_id != device.vendor_id:
            return f"vendor_id {device.vendor_id} is not {self.vendor_id}"
        if self.product_id is not None and self.product_id != device.product_id:
            return f"product_id {device.product_id} is not {self.product_id}"
        if self.address is not None:
            single = self.address.single
            if single is not None and device.parent_addr == single:
                return None
            reason = self.address.match(device.address)
            if reason is not None:
                return f"address: {reason}"
        if self.devname is not None:
            is_vf = device.dev_type is DevType.VF
            if is_vf and parent is not None and parent.ifname == self.devname:
                return None
            if device.ifname != self.devname:
                have = device.ifname or "no netdev"
                return f"devname: device has {have}, spec wants {self.devname}"
        return None

    def match(self, device: PciDevice, parent: PciDevice | None = None) -> bool:
        return self.mismatch(device, parent) is None


def _vf_index(value: Any) -> frozenset[int]:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidDeviceSpec(
            f"property vf_index must be a text like '0-7' or '0-3,8', got {json.dumps(value)[:80]}"
        )
    indexes = parse_index_list(value, "property vf_index", VF_INDEX_MAX, InvalidDeviceSpec)
    if not indexes:
        raise InvalidDeviceSpec("property vf_index names no VF")
    return indexes


def _vf_mismatch(indexes: frozenset[int], device: PciDevice) -> str | None:
    if device.dev_type is not DevType.VF:
        return f"vf_index: {device.dev_type.value} is not a VF"
    text = device.extra.get("vf_index")
    if text is None or not text.isdigit():
        return "vf_index: the VF's index is not known (its PF's virtfn links were not read)"
    if int(text) not in indexes:
        return f"vf_index: VF {text} is not in the spec's list"
    return None


def parse_device_specs(entries: Iterable[Any] | str) -> list[DeviceSpec]:
    """Specs from config entries: JSON texts or mappings; a JSON text may hold a list."""
    if isinstance(entries, str | bytes | Mapping):
        entries = [entries]
    specs: list[DeviceSpec] = []
    for index, entry in enumerate(entries):
        data = _load(entry)
        items = data if isinstance(data, list) else [data]
        for item in items:
            try:
                specs.append(DeviceSpec.from_json(item))
            except InvalidDeviceSpec as exc:
                raise InvalidDeviceSpec(f"device_spec entry {index + 1}: {exc}") from None
    return specs


@dataclass(frozen=True, slots=True)
class Classified:
    """A device and what the specs made of it."""

    device: PciDevice
    spec_index: int | None = None
    tags: dict[str, str | None] | None = None

    @property
    def matched(self) -> bool:
        return self.spec_index is not None


def _parents(devices: Sequence[PciDevice]) -> dict[Any, PciDevice]:
    return {d.address: d for d in devices}


def classify(devices: Sequence[PciDevice], specs: Sequence[DeviceSpec]) -> list[Classified]:
    """Each device with the first spec that matches it, in the operator's order."""
    by_address = _parents(devices)
    out: list[Classified] = []
    for device in devices:
        parent = by_address.get(device.parent_addr) if device.parent_addr else None
        for index, spec in enumerate(specs):
            if spec.match(device, parent):
                out.append(Classified(device, index, dict(spec.tags)))
                break
        else:
            out.append(Classified(device))
    return out


def explain(
    device: PciDevice, devices: Sequence[PciDevice], specs: Sequence[DeviceSpec]
) -> list[tuple[int, str | None]]:
    """Spec by spec: None where it matches ``device``, else why not."""
    parent = _parents(devices).get(device.parent_addr) if device.parent_addr else None
    return [(i, spec.mismatch(device, parent)) for i, spec in enumerate(specs)]


def unmatched_specs(classified: Iterable[Classified], specs: Sequence[DeviceSpec]) -> list[int]:
    """Indexes of specs that classified no device: the operator's silent mistakes."""
    used = {c.spec_index for c in classified if c.spec_index is not None}
    return [i for i in range(len(specs)) if i not in used]
