"""What the scheduler says when nothing fits: requests named by their label,
a physical network no host has called that; and the explain dry run."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine

from pcifleet.scheduler import NoValidHost, Scheduler, explain
from pcifleet.store.bulk import bulk_load_hosts
from tests.store.sample import classified, gpu, vf_port


def test_a_labelled_request_is_named_by_its_label(engine: Engine) -> None:
    bulk_load_hosts(engine, ["h1", "h2"], classified(0), vcpus=8, memory_mb=8192)
    request = vf_port("physnet1")
    request.label = "port 'web' (p-1)"
    with pytest.raises(NoValidHost) as info:
        Scheduler(engine).select_and_claim(str(uuid.uuid4()), [request])
    message = str(info.value)
    assert "port 'web' (p-1) (type-VF on physnet1 x1)" in message
    assert request.request_id not in message
    # physnet1 exists (the PFs carry it), its VFs are just all gone
    assert "no host has physical network" not in message


def test_a_physical_network_no_host_has_is_called_that(engine: Engine) -> None:
    bulk_load_hosts(engine, ["h1", "h2", "h3"], classified(4), vcpus=8, memory_mb=8192)
    with pytest.raises(NoValidHost) as info:
        Scheduler(engine).select_and_claim(str(uuid.uuid4()), [vf_port("PhysNet9")])
    assert "3 host(s) failed PCI: no host has physical network PhysNet9" in str(info.value)
    assert info.value.failures == {"PCI: no host has physical network PhysNet9": 3}


def test_explain_names_the_failing_request_per_host_and_claims_nothing(engine: Engine) -> None:
    bulk_load_hosts(engine, ["h1"], classified(2), vcpus=8, memory_mb=8192)
    bulk_load_hosts(engine, ["h2"], classified(0), vcpus=8, memory_mb=8192)
    sched = Scheduler(engine)
    wanted = vf_port("physnet1")
    verdicts = {v.host: v for v in explain(sched, [wanted, gpu(1)], vcpus=2)}
    assert verdicts["h1"].fits
    (failure,) = verdicts["h2"].failures
    assert (failure.filter, failure.request) == (
        "PCI",
        f"port request {wanted.request_id} (type-VF on physnet1 x1)",
    )
    assert "0 free matching device(s)" in failure.reason
    too_big = {v.host: v for v in explain(sched, [], vcpus=64)}
    assert [f.filter for f in too_big["h1"].failures] == ["vCPU"]
    # a dry run: the real claim still finds both VFs of h1 free
    for _ in range(2):
        assert sched.select_and_claim(str(uuid.uuid4()), [vf_port("physnet1")]).host == "h1"
