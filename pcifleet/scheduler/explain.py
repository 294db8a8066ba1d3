"""Why each host would or would not take a server: the scheduler's own filters,
run over every host of its index without claiming anything.

A dry run for operators (``pcifleet explain-boot``): the same ``host_up``,
``resources`` and PCI fit the scheduler applies, and, for a host where the PCI
requests do not fit together, each request tried on its own so the answer
names the one that fails (or says they fail only together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pcifleet.pci import PciRequest
from pcifleet.scheduler.filters import cell_options, fit_pci, host_up, pci_failure, resources
from pcifleet.scheduler.index import HostEntry, describe
from pcifleet.scheduler.scheduler import Scheduler


@dataclass(slots=True)
class Failure:
    """One filter that turned the host down, and for which request if one."""

    filter: str
    reason: str
    request: str | None = None


@dataclass(slots=True)
class HostVerdict:
    host: str
    failures: list[Failure] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.failures


def _alone(entry: HostEntry, request: PciRequest) -> str:
    """Why one request does not fit this host on its own, in the host's numbers
    (the request itself is named beside it, so not repeated here)."""
    physnet = request.specs[0].get("physical_network") if request.source == "port" else None
    if physnet and not any(
        str(p.tags.get("physical_network") or "").lower() == physnet.lower()
        for p in entry.pools.pools
    ):
        return f"the host has no physical network {physnet}"
    free = sum(p.count for p in entry.pools.pools if any(p.matches(s) for s in request.specs))
    if free >= request.count:
        return f"{free} free matching device(s), but not within NUMA policy {request.numa_policy}"
    return f"needs {request.count} device(s), {free} free matching device(s) here"


def _split(reason: str) -> tuple[str, str]:
    """The filters' reasons read ``"<filter>: <why>"``."""
    name, _, why = reason.partition(": ")
    return name, why or reason


def explain(
    sched: Scheduler,
    requests: Sequence[PciRequest],
    *,
    vcpus: int = 0,
    memory_mb: int = 0,
) -> list[HostVerdict]:
    """Every known host, by name, with the filters it fails for this server."""
    sched.refresh(force=True)
    with sched._lock:  # the index is not thread-safe on its own
        entries = sorted(sched.index.hosts.values(), key=lambda e: e.name)
        verdicts = []
        for entry in entries:
            verdict = HostVerdict(entry.name)
            for reason in (host_up(entry), resources(entry, vcpus, memory_mb, sched.config)):
                if reason:
                    verdict.failures.append(Failure(*_split(reason)))
            options = cell_options(entry, None, None)
            if requests and fit_pci(entry, requests, options, vcpus, memory_mb) is None:
                alone = [
                    r for r in requests if fit_pci(entry, [r], options, vcpus, memory_mb) is None
                ]
                for request in alone:
                    verdict.failures.append(
                        Failure("PCI", _alone(entry, request), describe(request))
                    )
                if not alone:
                    name, why = _split(pci_failure(entry, requests, options))
                    verdict.failures.append(
                        Failure(name, f"each request fits alone, not all together: {why}")
                    )
            verdicts.append(verdict)
        return verdicts
