"""Inventory reports for the API tests, made from the PCI model's sample host
(two X710 ports with 64 VFs each on physnet1/physnet2, two GPUs)."""

from __future__ import annotations

from typing import Any

from tests.pci.sample import sample_aliases, sample_classified, sample_layout

__all__ = ["sample_aliases", "sample_layout", "sample_report"]


def sample_report(generation: int | None = 0, *, drop_vfs_of: str | None = None) -> dict[str, Any]:
    """The sample host's classified devices as an inventory report body.

    ``drop_vfs_of`` leaves out the VFs of that PF (a host without free VFs there).
    """
    devices = []
    for item in sample_classified():
        if not item.matched:
            continue
        if drop_vfs_of and str(item.device.parent_addr) == drop_vfs_of:
            continue
        devices.append({"device": item.device.to_dict(), "tags": item.tags})
    return {"generation": generation, "vcpus": 64, "memory_mb": 262144, "devices": devices}
