"""The plain functions the API calls: one shared scheduler per engine."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine

from pcifleet.pci import PciRequestsUnsatisfiable
from pcifleet.scheduler import (
    NoValidHost,
    SchedulerConfig,
    capacity,
    release,
    scheduler_for,
    select_and_claim,
)
from pcifleet.store.bulk import bulk_load_hosts
from pcifleet.store.claims import free
from tests.store.sample import classified, vf_port


def test_select_claim_release_and_capacity(engine: Engine) -> None:
    bulk_load_hosts(engine, ["a", "b"], classified(1), vcpus=8, memory_mb=8192)
    assert scheduler_for(engine) is scheduler_for(engine)
    vm = str(uuid.uuid4())
    result = select_and_claim(engine, vm, [vf_port()], vcpus=2, memory_mb=1024)
    assert result.instance_uuid == vm
    assert len(result.devices) == 1
    assert capacity(engine, [vf_port()]).total == 1
    release(engine, result.host, vm, vcpus=2, memory_mb=1024)
    assert capacity(engine, [vf_port()]).total == 2


def test_no_valid_host_is_also_the_models_unsatisfiable(engine: Engine) -> None:
    bulk_load_hosts(engine, ["a"], classified(1))
    with pytest.raises(PciRequestsUnsatisfiable):
        select_and_claim(engine, str(uuid.uuid4()), [vf_port("physnet7")])


def test_a_free_behind_the_schedulers_back_is_seen_before_saying_no(engine: Engine) -> None:
    """Another writer (the API deleting a server) frees the only VF: the next boot
    must not fail on the index's stale view."""
    bulk_load_hosts(engine, ["a"], classified(1))
    sched = scheduler_for(engine, SchedulerConfig(refresh_interval=3600))
    vm = str(uuid.uuid4())
    sched.select_and_claim(vm, [vf_port()])
    free(engine, "a", vm)
    assert sched.select_and_claim(str(uuid.uuid4()), [vf_port()]).host == "a"
    with pytest.raises(NoValidHost):
        sched.select_and_claim(str(uuid.uuid4()), [vf_port()])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "random"}, "mode"),
        ({"host_down_after": -1}, "host_down_after"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"weigh_window": 0}, "weigh_window"),
        ({"cpu_allocation_ratio": 0}, "cpu_allocation_ratio"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        SchedulerConfig(**kwargs)
