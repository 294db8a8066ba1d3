"""Inventory reports for the API tests, made from the PCI model's sample host
(two X710 ports with 64 VFs each on physnet1/physnet2, two GPUs)."""

from __future__ import annotations

import tomllib
from functools import cache
from typing import Any

from pcifleet.pci import Alias, HostLayout, classify, parse_aliases, parse_device_specs
from tests.conftest import ROOT

SAMPLE = ROOT / "pcifleet" / "data" / "sample-host.toml"


@cache
def sample_layout() -> HostLayout:
    return HostLayout.from_dict(tomllib.loads(SAMPLE.read_text()))


def sample_aliases() -> dict[str, list[Alias]]:
    return parse_aliases(list(sample_layout().alias))


def sample_report(generation: int | None = 0, *, drop_vfs_of: str | None = None) -> dict[str, Any]:
    """The sample host's classified devices as an inventory report body.

    ``drop_vfs_of`` leaves out the VFs of that PF (a host without free VFs there).
    """
    layout = sample_layout()
    specs = parse_device_specs(list(layout.device_spec))
    devices = []
    for item in classify(layout.devices(), specs):
        if not item.matched:
            continue
        if drop_vfs_of and str(item.device.parent_addr) == drop_vfs_of:
            continue
        devices.append({"device": item.device.to_dict(), "tags": item.tags})
    return {"generation": generation, "vcpus": 64, "memory_mb": 262144, "devices": devices}
