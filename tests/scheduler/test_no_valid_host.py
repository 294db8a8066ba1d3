""" "No valid host" answered from the index (issue 15): the reasons are the ones
putting every host through the filters one by one gives, host for host, and
each host is blamed on the filter it actually fails."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from pcifleet.pci import PciRequest
from pcifleet.scheduler import NoValidHost, Scheduler, SchedulerConfig
from pcifleet.scheduler.filters import HOST_DISABLED, NOT_ENOUGH_RAM, NOT_ENOUGH_VCPUS
from pcifleet.scheduler.index import FleetIndex
from pcifleet.scheduler.scheduler import NOT_WANTED
from pcifleet.store.bulk import bulk_load_hosts
from pcifleet.store.claims import claim
from pcifleet.store.inventory import set_host_state, sync_inventory
from pcifleet.store.models import hosts_table as H
from pcifleet.store.models import utcnow
from tests.store.sample import classified, gpu, vf_port

CELLS = [
    {"id": 0, "cpus": "0-7", "memory_mb": 32768, "socket": 0},
    {"id": 1, "cpus": "8-15", "memory_mb": 32768, "socket": 1},
]
ONE_SOCKET = [{**c, "socket": 0} for c in CELLS]


def new_id() -> str:
    return str(uuid.uuid4())


def names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(n)]


def no_valid_host(
    engine: Engine, requests: Sequence[PciRequest], walk_before_shapes: int, **kw: object
) -> NoValidHost:
    sched = Scheduler(engine, SchedulerConfig(cpu_allocation_ratio=1.0))
    sched.walk_before_shapes = walk_before_shapes
    with pytest.raises(NoValidHost) as info:
        sched.select_and_claim(new_id(), requests, **kw)  # type: ignore[arg-type]
    return info.value


def both_ways(engine: Engine, requests: Sequence[PciRequest], **kw: object) -> NoValidHost:
    """The answer judging every host one by one, checked equal to the answer
    judging all but the first by shape; returns it."""
    one_by_one = no_valid_host(engine, requests, 10**9, **kw)
    by_shape = no_valid_host(engine, requests, 1, **kw)
    assert by_shape.failures == one_by_one.failures
    assert str(by_shape) == str(one_by_one)
    return by_shape


def test_hosts_short_of_vcpus_and_hosts_short_of_vfs_are_each_blamed_for_their_own(
    engine: Engine,
) -> None:
    busy, full, spare = names("busy", 12), names("full", 15), names("spare", 9)
    bulk_load_hosts(engine, busy + full + spare, classified(1), vcpus=8, memory_mb=65536)
    for host in busy:  # vCPUs used up, VFs free
        claim(engine, host, new_id(), [], vcpus=8)
    for host in full:  # vCPUs free, the one physnet1 VF taken
        claim(engine, host, new_id(), [vf_port("physnet1")])
    for host in spare:  # room for a physnet2 port, not for 6 vCPUs more
        claim(engine, host, new_id(), [vf_port("physnet2")], vcpus=4)
    request = vf_port("physnet1")
    answer = both_ways(engine, [request], vcpus=6)
    unserved = (
        f"PCI: port request {request.request_id} (type-VF on physnet1 x1): no free matching device"
    )
    assert answer.failures == {NOT_ENOUGH_VCPUS: 12 + 9, unserved: 15}


def test_vcpus_are_blamed_before_ram_and_ram_only_where_vcpus_fit(engine: Engine) -> None:
    bulk_load_hosts(engine, names("h", 40), classified(4), vcpus=8, memory_mb=8192)
    for host in names("h", 40)[:10]:
        claim(engine, host, new_id(), [], vcpus=6, memory_mb=6144)  # short of both
    for host in names("h", 40)[10:25]:
        claim(engine, host, new_id(), [], memory_mb=6144)  # short of RAM only
    for host in names("h", 40)[25:]:
        claim(engine, host, new_id(), [], vcpus=6)  # short of vCPUs only
    answer = both_ways(engine, [vf_port()], vcpus=4, memory_mb=4096)
    assert answer.failures == {NOT_ENOUGH_VCPUS: 10 + 15, NOT_ENOUGH_RAM: 15}


def test_a_numa_request_fails_on_two_socket_hosts_and_says_so_per_shape(engine: Engine) -> None:
    for i, host in enumerate(names("n", 36)):
        cells = ONE_SOCKET if i % 4 == 0 else CELLS
        sync_inventory(
            engine, host, classified(2), None, vcpus=16, memory_mb=65536, numa_topology=cells
        )
    # One GPU per cell: a socket-policy pair fits a one-socket host only.
    placed = Scheduler(engine).select_and_claim(new_id(), [gpu(2, "socket")], numa_nodes=1)
    assert placed.host in names("n", 36)[::4]
    for host in names("n", 36)[::4]:  # the one-socket hosts keep one GPU at most
        if host != placed.host:
            claim(engine, host, new_id(), [gpu(1)])
    request = gpu(2, "socket")
    answer = both_ways(engine, [request], vcpus=2, numa_nodes=1)
    numa = [reason for reason in answer.failures if "within NUMA policy socket" in reason]
    assert len(numa) == 1 and answer.failures[numa[0]] == 27
    assert answer.failures["PCI: alias 'gpu' x2: no free matching device"] == 9


def test_too_few_cells_for_the_guest_is_a_numa_reason(engine: Engine) -> None:
    for host in names("n", 34):
        sync_inventory(
            engine, host, classified(2), None, vcpus=16, memory_mb=65536, numa_topology=CELLS
        )
    answer = both_ways(engine, [vf_port()], vcpus=2, numa_nodes=3)
    assert answer.failures == {
        "NUMA: the host has too few NUMA nodes with room for the instance's cells": 34
    }


def test_down_and_disabled_hosts_keep_their_names_and_their_physical_network(
    engine: Engine,
) -> None:
    bulk_load_hosts(engine, names("h", 35), classified(2), vcpus=8, memory_mb=8192)
    physnet3 = [
        (c.device, {"physical_network": "physnet3"})
        for c in classified(2)
        if c.tags is not None and c.tags.get("physical_network") == "physnet1"
    ]
    sync_inventory(engine, "odd", physnet3, None, vcpus=8, memory_mb=8192)
    set_host_state(engine, "odd", "disabled")
    with engine.begin() as conn:
        old = utcnow() - timedelta(minutes=10)
        conn.execute(update(H).where(H.c.name == "h03").values(last_report_at=old))
    request = vf_port("physnet3")
    answer = both_ways(engine, [request])
    # physnet3 is known (a disabled host has it): the others lack a free VF of it
    unserved = (
        f"PCI: port request {request.request_id} (type-VF on physnet3 x1): no free matching device"
    )
    assert answer.failures == {
        unserved: 34,
        HOST_DISABLED: 1,
        "host up: no report within the down interval": 1,
    }
    assert "failed host up: disabled (odd)" in str(answer)


def test_a_move_that_may_go_to_one_host_only_blames_the_others_for_that(
    engine: Engine,
) -> None:
    bulk_load_hosts(engine, names("h", 40), classified(2), vcpus=8, memory_mb=8192)
    answer = both_ways(engine, [vf_port()], vcpus=16, only_host="h07")
    assert answer.failures == {NOT_WANTED: 39, NOT_ENOUGH_VCPUS: 1}
    answer = both_ways(engine, [vf_port()], vcpus=16, ignore_hosts=["h01", "h02"])
    assert answer.failures == {NOT_WANTED: 2, NOT_ENOUGH_VCPUS: 38}


def test_a_fit_behind_many_misses_is_still_found(engine: Engine) -> None:
    bulk_load_hosts(engine, names("h", 40), classified(2), vcpus=8, memory_mb=8192)
    for host in names("h", 40)[:-1]:
        claim(engine, host, new_id(), [], vcpus=8)
    sched = Scheduler(engine, SchedulerConfig(cpu_allocation_ratio=1.0))
    sched.walk_before_shapes = 1
    assert sched.select_and_claim(new_id(), [vf_port()], vcpus=4).host == "h39"


def test_the_index_kept_by_claims_and_frees_matches_one_built_afresh(engine: Engine) -> None:
    bulk_load_hosts(engine, names("h", 6), classified(2), vcpus=8, memory_mb=8192)
    sched = Scheduler(engine)
    servers = [new_id() for _ in range(3)]
    placed = [sched.select_and_claim(vm, [vf_port()], vcpus=2) for vm in servers]
    sched.select_and_claim(new_id(), [gpu(1)], memory_mb=1024)
    sched.release(placed[0].host, servers[0], vcpus=2)
    set_host_state(engine, "h05", "disabled")
    sched.host_changed("h05")

    def view(index: FleetIndex) -> tuple[object, ...]:
        return (
            {shape: set(ids) for shape, ids in index.shapes.items()},
            {lv: set(ids) for lv, ids in index.cpu_buckets.by_level.items()},
            {lv: set(ids) for lv, ids in index.ram_buckets.by_level.items()},
            +index.physnets,
            set(index.ineligible),
            set(index.eligible),
        )

    fresh = Scheduler(engine)
    fresh.refresh(force=True)
    assert view(sched.index) == view(fresh.index)
    assert view(fresh.index)[3] == {"physnet1": 6, "physnet2": 6}
