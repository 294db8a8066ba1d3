"""What the operator's device specs make of a host's inventory: matches, pools, mistakes.

``pcifleet inventory`` prints this, and the agent reports the same devices and pools,
so the classification lives here rather than in either of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pcifleet.host.inventory import Inventory
from pcifleet.pci import (
    Classified,
    DeviceSpec,
    PciDevice,
    PciPools,
    build_pools,
    classify,
    explain,
    pool_id_of,
    unmatched_specs,
)


@dataclass(frozen=True)
class SpecVerdict:
    """One spec's answer for one device: ``reason`` is None when it matches."""

    index: int
    spec: DeviceSpec
    reason: str | None
    chosen: bool  # the first matching spec: the one that classifies the device

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec_index": self.index + 1,
            "spec": self.spec.source,
            "matches": self.reason is None,
            "reason": self.reason,
            "chosen": self.chosen,
        }


@dataclass(frozen=True)
class InventoryReport:
    """An inventory classified by a list of device specs."""

    inventory: Inventory
    specs: list[DeviceSpec]
    classified: list[Classified]
    pools: PciPools

    @property
    def unmatched_specs(self) -> list[int]:
        """Indexes of specs that matched no device of this host."""
        return unmatched_specs(self.classified, self.specs)

    def device_dicts(self) -> list[dict[str, Any]]:
        """``PciDevice.to_dict()`` of each device plus ``matched``, ``spec_index`` (the
        spec's number counting from 1, as the text and config errors count), ``tags``,
        ``pool_id`` (the last three null when no spec matches)."""
        out = []
        for c in self.classified:
            row = c.device.to_dict()
            row.update(
                matched=c.matched,
                spec_index=None if c.spec_index is None else c.spec_index + 1,
                tags=c.tags,
                pool_id=pool_id_of(c.device, c.tags) if c.tags is not None else None,
            )
            out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.inventory.source,
            "devices": self.device_dicts(),
            "pools": self.pools.to_json(),
            "unmatched_specs": [
                {"spec_index": i + 1, "spec": self.specs[i].source} for i in self.unmatched_specs
            ],
            "warnings": list(self.inventory.warnings),
        }

    def explain(self, device: PciDevice) -> list[SpecVerdict]:
        """Spec by spec, why ``device`` is or is not matched."""
        verdicts = []
        chosen_done = False
        for index, reason in explain(device, self.inventory.devices, self.specs):
            chosen = reason is None and not chosen_done
            chosen_done = chosen_done or chosen
            verdicts.append(SpecVerdict(index, self.specs[index], reason, chosen))
        return verdicts


def classify_inventory(inventory: Inventory, specs: list[DeviceSpec]) -> InventoryReport:
    classified = classify(inventory.devices, specs)
    return InventoryReport(inventory, specs, classified, build_pools(classified))
