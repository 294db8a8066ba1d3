import pytest

from pcifleet.pci import (
    DeviceRecord,
    DeviceStatus,
    DeviceTracker,
    InvalidDeviceTransition,
    PciAddress,
    PciRequestsUnsatisfiable,
    check_transition,
    request_for_port,
    requests_from_flavor,
)

from .sample import sample_aliases, sample_classified

S = DeviceStatus
PF1 = PciAddress.parse("0000:3b:00.0")


def tracker() -> DeviceTracker:
    return DeviceTracker.from_classified((c.device, c.tags) for c in sample_classified())


def statuses(t: DeviceTracker) -> dict[S, int]:
    out: dict[S, int] = {}
    for r in t.records.values():
        out[r.status] = out.get(r.status, 0) + 1
    return out


def test_claim_records_instance_and_request_and_blocks_pf() -> None:
    t = tracker()
    req = request_for_port("physnet1", "direct")
    changes = t.claim("inst-1", [req])
    claimed = [c for c in changes if c.new is S.CLAIMED]
    assert len(claimed) == 1
    vf = t.records[claimed[0].address]
    assert (vf.instance_uuid, vf.request_id) == ("inst-1", req.request_id)
    assert vf.device.parent_addr == PF1
    assert t.records[PF1].status is S.UNAVAILABLE
    assert t.pools().free_count({"physical_network": "physnet1", "dev_type": "type-VF"}) == 63


def test_full_life_cycle_restores_everything() -> None:
    t = tracker()
    before = t.pools().to_json()
    reqs = [request_for_port("physnet1", "direct"), request_for_port("physnet1", "direct")]
    reqs += requests_from_flavor({"pci_passthrough:alias": "gpu:1"}, sample_aliases())
    t.claim("inst-1", reqs)
    assert len(t.allocate("inst-1")) == 3
    assert statuses(t)[S.ALLOCATED] == 3
    t.free("inst-1")
    assert t.pools().to_json() == before
    assert all(r.instance_uuid is None for r in t.records.values())


def test_pf_stays_blocked_while_a_sibling_vf_is_in_use() -> None:
    t = tracker()
    t.claim("a", [request_for_port("physnet1", "direct")])
    t.claim("b", [request_for_port("physnet1", "direct")])
    t.free("a")
    assert t.records[PF1].status is S.UNAVAILABLE
    t.free("b")
    assert t.records[PF1].status is S.AVAILABLE


def test_pf_claim_blocks_and_free_restores_all_vfs() -> None:
    t = tracker()
    t.claim("a", [request_for_port("physnet1", "direct-physical")])
    vfs = [r for r in t.records.values() if r.device.parent_addr == PF1]
    assert len(vfs) == 64 and all(r.status is S.UNAVAILABLE for r in vfs)
    with pytest.raises(PciRequestsUnsatisfiable):
        t.claim("b", [request_for_port("physnet1", "direct")])
    t.free("a")
    assert all(r.status is S.AVAILABLE for r in vfs)


def test_failed_claim_changes_nothing() -> None:
    t = tracker()
    before = {a: r.status for a, r in t.records.items()}
    reqs = [request_for_port("physnet1", "direct"), request_for_port("physnet9", "direct")]
    with pytest.raises(PciRequestsUnsatisfiable, match="physnet9"):
        t.claim("x", reqs)
    assert {a: r.status for a, r in t.records.items()} == before


def test_claims_never_hand_out_a_device_twice() -> None:
    t = tracker()
    for n in range(64):
        t.claim(f"i{n}", [request_for_port("physnet2", "direct")])
    with pytest.raises(PciRequestsUnsatisfiable):
        t.claim("one-too-many", [request_for_port("physnet2", "direct")])
    owners = [r.instance_uuid for r in t.records.values() if r.status is S.CLAIMED]
    assert len(owners) == len(set(owners)) == 64


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.AVAILABLE, S.ALLOCATED),
        (S.ALLOCATED, S.CLAIMED),
        (S.REMOVED, S.CLAIMED),
        (S.UNAVAILABLE, S.CLAIMED),
        (S.ALLOCATED, S.REMOVED),
        (S.CLAIMED, S.UNAVAILABLE),
    ],
)
def test_illegal_transitions_raise(old: S, new: S) -> None:
    with pytest.raises(InvalidDeviceTransition, match=f"{old} -> {new}"):
        check_transition("0000:00:00.0", old, new)


def test_illegal_transition_in_tracker_changes_nothing() -> None:
    t = tracker()
    t.claim("a", [request_for_port("physnet1", "direct")])
    (vf,) = [r for r in t.records.values() if r.status is S.CLAIMED]
    with pytest.raises(InvalidDeviceTransition):
        t.remove(vf.device.address)
    assert vf.status is S.CLAIMED


def test_removed_devices_leave_the_pools() -> None:
    t = tracker()
    vf = next(r for r in t.records.values() if r.device.parent_addr == PF1)
    t.remove(vf.device.address)
    assert t.pools().free_count({"physical_network": "physnet1", "dev_type": "type-VF"}) == 63


def test_record_pool_id_for_unmatched_device_is_none() -> None:
    rec = next(iter(tracker().records.values()))
    assert DeviceRecord(rec.device, None).pool_id is None
