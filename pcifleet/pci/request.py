"""PCI requests: what a server asks of a host, from its flavor and its SR-IOV ports."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pcifleet.pci.alias import Alias, NumaPolicy
from pcifleet.pci.device import DevType
from pcifleet.pci.errors import InvalidAlias, InvalidPciRequest

ALIAS_EXTRA_SPEC = "pci_passthrough:alias"
VNIC_TYPES = ("normal", "direct", "macvtap", "direct-physical")
# vnic_type -> the kind of device a port of that type needs.
SRIOV_VNIC_TYPES: dict[str, DevType] = {
    "direct": DevType.VF,
    "macvtap": DevType.VF,
    "direct-physical": DevType.PF,
}
# No flavor needs more devices than a host could hold; a larger count is a typo.
MAX_COUNT = 1024
_COUNT_RE = re.compile(r"[0-9]+")


def _new_id() -> str:
    return str(uuid.uuid4())


Spec = dict[str, str | None]


@dataclass(slots=True)
class PciRequest:
    """count devices, each matching any one of ``specs``."""

    count: int
    specs: list[Spec]
    request_id: str = field(default_factory=_new_id)
    alias_name: str | None = None
    numa_policy: NumaPolicy = NumaPolicy.LEGACY
    source: str = "flavor"
    # Each device of every request marked so lands on a PF no other marked
    # request of the server uses (bonding in the guest wants two uplinks).
    distinct_pf: bool = False
    # How messages name what asked (a port's name and id); not part of the
    # request's meaning, so not stored, compared or sent.
    label: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count < 1:
            raise InvalidPciRequest(f"count must be a positive integer, got {self.count!r}")
        if not isinstance(self.specs, list) or not self.specs:
            raise InvalidPciRequest("specs must be a non-empty list")
        for spec in self.specs:
            if not isinstance(spec, dict) or not all(
                isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in spec.items()
            ):
                raise InvalidPciRequest(f"each spec must map strings to strings, got {spec!r}")
        try:
            self.numa_policy = NumaPolicy(self.numa_policy)
        except ValueError:
            raise InvalidPciRequest(f"numa_policy ({self.numa_policy!r}) is not known") from None
        if not isinstance(self.distinct_pf, bool):
            raise InvalidPciRequest(f"distinct_pf must be true or false, got {self.distinct_pf!r}")
        if self.source not in ("flavor", "port"):
            raise InvalidPciRequest(f"source ({self.source!r}) must be 'flavor' or 'port'")
        try:
            uuid.UUID(str(self.request_id))
        except ValueError:
            raise InvalidPciRequest(f"request_id ({self.request_id!r}) is not a UUID") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "specs": [dict(s) for s in self.specs],
            "request_id": self.request_id,
            "alias_name": self.alias_name,
            "numa_policy": self.numa_policy.value,
            "source": self.source,
            "distinct_pf": self.distinct_pf,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PciRequest:
        if not isinstance(d, Mapping):
            raise InvalidPciRequest(f"a PCI request must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(map(str, d)) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidPciRequest(f"unknown PCI request field(s): {', '.join(unknown)}")
        if "count" not in d or "specs" not in d:
            raise InvalidPciRequest("a PCI request needs count and specs")
        try:
            return cls(**d)
        except TypeError as exc:
            raise InvalidPciRequest(str(exc)) from None


def _parse_entry(entry: str, aliases: Mapping[str, list[Alias]], source: str | None) -> PciRequest:
    name, sep, count_text = entry.partition(":")
    name, count_text = name.strip(), count_text.strip()
    if not sep or not name or ":" in count_text:
        raise InvalidAlias(
            f"{ALIAS_EXTRA_SPEC} entry {entry.strip()!r} must be written as <alias name>:<count>"
        )
    if _COUNT_RE.fullmatch(count_text) is None or not 1 <= int(count_text) <= MAX_COUNT:
        raise InvalidAlias(
            f"{ALIAS_EXTRA_SPEC} entry {entry.strip()!r}: count ({count_text}) must be an "
            f"integer from 1 to {MAX_COUNT}"
        )
    group = aliases.get(name)
    if not group:
        known = ", ".join(sorted(aliases)) if aliases else "none"
        where = f" in {source}" if source else ""
        raise InvalidAlias(
            f"{ALIAS_EXTRA_SPEC}: alias {name!r} is not defined; aliases defined{where}: {known}"
        )
    return PciRequest(
        count=int(count_text),
        specs=[a.spec() for a in group],
        alias_name=name,
        numa_policy=group[0].numa_policy,
        source="flavor",
    )


def requests_from_flavor(
    extra_specs: Mapping[str, Any],
    aliases: Mapping[str, list[Alias]],
    *,
    source: str | None = None,
) -> list[PciRequest]:
    """One request per alias the flavor's ``pci_passthrough:alias`` names ("gpu:1,fpga:2").

    ``source`` says where ``aliases`` were defined (a config file...), for the
    message about an alias that is not among them."""
    value = extra_specs.get(ALIAS_EXTRA_SPEC)
    if value is None:
        return []
    if not isinstance(value, str) or not value.strip():
        raise InvalidAlias(
            f"{ALIAS_EXTRA_SPEC} must be a string like 'gpu:1,fpga:2', got {value!r}"
        )
    return [_parse_entry(entry, aliases, source) for entry in value.split(",")]


def request_for_port(
    physical_network: str | None,
    vnic_type: str,
    request_id: str | None = None,
    *,
    trusted: bool = False,
    numa_policy: NumaPolicy | None = None,
    distinct_pf: bool = False,
) -> PciRequest:
    """The request of one SR-IOV port: a VF (direct, macvtap) or a PF (direct-physical).

    ``trusted`` (the port's ``binding:profile`` says so) asks only for devices
    whose spec tags them ``trusted``; Nova does the same.
    """
    dev_type = SRIOV_VNIC_TYPES.get(vnic_type)
    if dev_type is None:
        raise InvalidPciRequest(
            f"vnic_type {vnic_type!r} needs no PCI device; SR-IOV types are "
            f"{', '.join(SRIOV_VNIC_TYPES)}"
        )
    if physical_network is not None and not isinstance(physical_network, str):
        raise InvalidPciRequest(
            f"physical_network must be a string or null, got {physical_network!r}"
        )
    spec: Spec = {"physical_network": physical_network, "dev_type": dev_type.value}
    if trusted:
        spec["trusted"] = "true"
    return PciRequest(
        count=1,
        specs=[spec],
        request_id=request_id or _new_id(),
        source="port",
        numa_policy=numa_policy or NumaPolicy.LEGACY,
        distinct_pf=distinct_pf,
    )


TRUE_WORDS = frozenset({"true", "yes", "1", "on"})


def profile_trusted(profile: Mapping[str, Any] | None) -> bool:
    """Whether a port's ``binding:profile`` asks for a trusted VF (``trusted: true``,
    the JSON boolean or a boolean word, as Nova reads it)."""
    value = (profile or {}).get("trusted")
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS
