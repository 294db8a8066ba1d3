"""The index's signatures judge a spec as the model's pools do, less NUMA node and parent."""

from __future__ import annotations

from pcifleet.pci import DevType, Pool
from pcifleet.scheduler.index import sig_matches, sig_of

VF_POOL = Pool("8086", "154c", DevType.VF, 0, "0000:3b:00.0", {"physical_network": "physnet1"})


def test_a_signature_matches_what_its_pools_match_ignoring_numa_and_parent() -> None:
    sig = sig_of(VF_POOL)
    assert sig_matches(sig, {"physical_network": "PHYSNET1", "dev_type": "type-VF"})
    assert sig_matches(sig, {"vendor_id": "8086", "numa_node": "1", "parent_addr": "x"})
    assert not sig_matches(sig, {"physical_network": "physnet2"})
    assert not sig_matches(sig, {"dev_type": "type-PF"})
    assert not sig_matches(sig, {"product_id": "1572"})
    assert not sig_matches(sig, {"trusted": "true"})
