"""The sample host (pcifleet/data/sample-host.toml) as classified devices.

Two X710 ports (PF 8086:1572, VFs 8086:154c) on physnet1/NUMA 0 and
physnet2/NUMA 1, two GPUs 10de:1db4 on NUMA 0 and 1. ``numvfs`` shrinks the
VF count so tests can exhaust a host quickly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pcifleet.pci import (
    Classified,
    PciRequest,
    classify,
    parse_aliases,
    parse_device_specs,
    request_for_port,
    requests_from_flavor,
)
from tests.pci.sample import sample_layout

PF1, PF2 = "0000:3b:00.0", "0000:86:00.0"
GPU0, GPU1 = "0000:5e:00.0", "0000:d8:00.0"


def classified(numvfs: int = 64) -> list[Classified]:
    lay = sample_layout()
    lay = replace(lay, nics=tuple(replace(nic, numvfs=numvfs) for nic in lay.nics))
    return classify(lay.devices(), parse_device_specs(list(lay.device_spec)))


def vf_port(physnet: str = "physnet1") -> PciRequest:
    return request_for_port(physnet, "direct")


def pf_port(physnet: str = "physnet1") -> PciRequest:
    return request_for_port(physnet, "direct-physical")


def gpu(count: int = 1, numa_policy: str | None = None) -> PciRequest:
    alias: dict[str, Any] = {"name": "gpu", "vendor_id": "10de", "product_id": "1db4"}
    if numa_policy:
        alias["numa_policy"] = numa_policy
    aliases = parse_aliases([alias])
    return requests_from_flavor({"pci_passthrough:alias": f"gpu:{count}"}, aliases)[0]
