"""Judging the hosts a walk has not reached yet, a whole shape at a time.

When the first hosts of a walk all fail, the rest often fail too (a request
nobody can meet), and putting thousands of hosts through the filters one by
one is what made "no valid host" slow. The verdicts do not need that: among
the hosts a request walks, the ``resources`` filter is a set operation on the
index's free vCPU and RAM buckets, and the PCI/NUMA verdict depends only on a
host's shape, so it is worked out once on one host of each shape. The result
is the same tally the one-by-one walk would have made, host for host.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pcifleet.pci import PciRequest
from pcifleet.scheduler.filters import (
    NOT_ENOUGH_RAM,
    NOT_ENOUGH_VCPUS,
    cell_options,
    fit_pci,
    pci_failure,
)
from pcifleet.scheduler.index import FleetIndex, HostEntry, Shape


@dataclass(slots=True, frozen=True)
class Unwalked:
    """What the walk has not judged yet, and how to tell the hosts it must skip."""

    requests: Sequence[PciRequest]
    vcpus: int
    memory_mb: int
    numa_cells: Sequence[int] | None
    numa_nodes: int | None
    # Host ids a move must not land on, and the one it must (None: any).
    unwanted: frozenset[int]
    only: frozenset[int] | None


def _walked_by(index: FleetIndex, driving: PciRequest | None, entry: HostEntry) -> bool:
    """Would ``index.walk(driving)`` reach a host of this entry's shape?"""
    if driving is None:
        return True
    sigs = index.sigs_for(driving)
    return sum(entry.sig_free.get(s, 0) for s in sigs) >= driving.count


def judge_the_rest(
    index: FleetIndex,
    driving: PciRequest | None,
    todo: Unwalked,
    judged: set[int],
    seen: set[int],
    not_wanted: str,
    unfit: dict[Shape, str],
) -> tuple[Counter[str], int] | None:
    """The tally of every host ``index.walk(driving)`` would reach that is not
    in ``judged``, and how many of those are not in ``seen``, if none of them passes every
    filter; None if one may (the caller walks on to find it, as before).

    The reasons are the walk's, in its order: not wanted by a move, vCPU,
    RAM, then the PCI filter's reason for the shape. ``unfit`` holds the
    reasons of shapes already found not to fit, and gains those found here.
    """
    cpus_short = index.cpu_buckets.below(todo.vcpus) if todo.vcpus else set()
    ram_short = index.ram_buckets.below(todo.memory_mb) if todo.memory_mb else set()
    tally: Counter[str] = Counter()
    reached = 0
    for members in index.shapes.values():
        entry = index.hosts[next(iter(members))]
        if not _walked_by(index, driving, entry):
            continue
        rest = members - judged
        if not rest:
            continue
        reached += len(rest) - len(rest & seen)
        skip = rest & todo.unwanted
        if todo.only is not None:
            skip |= rest - todo.only
        rest -= skip
        tally[not_wanted] += len(skip)
        for filter_reason, below in ((NOT_ENOUGH_VCPUS, cpus_short), (NOT_ENOUGH_RAM, ram_short)):
            if below is None:  # every host is short
                short, rest = rest, set()
            else:
                short = rest & below
                rest -= short
            tally[filter_reason] += len(short)
        if not rest:
            continue
        reason = unfit.get(entry.shape)
        if reason is None:
            options = cell_options(
                entry, todo.numa_cells, todo.numa_nodes, todo.vcpus, todo.memory_mb
            )
            if fit_pci(entry, todo.requests, options, todo.vcpus, todo.memory_mb) is not None:
                return None
            reason = unfit[entry.shape] = pci_failure(entry, todo.requests, options)
        tally[reason] += len(rest)
    return +tally, reached  # +: drops the reasons no host failed, as the walk does


def host_ids(index: FleetIndex, names: Collection[str]) -> frozenset[int]:
    return frozenset(index.by_name[n] for n in names if n in index.by_name)
