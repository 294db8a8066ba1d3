"""vf_index in device specs: one PF's VFs split between physical networks."""

import pytest

from pcifleet.pci import (
    DevType,
    InvalidDeviceSpec,
    PciDevice,
    build_pools,
    classify,
    parse_device_specs,
)

from .helpers import pf

PF = "0000:3b:00.0"


def indexed_vf(index: int) -> PciDevice:
    return PciDevice(
        address=f"0000:3b:{2 + index // 8:02x}.{index % 8}",
        vendor_id="8086",
        product_id="154c",
        dev_type=DevType.VF,
        parent_addr=PF,
        numa_node=0,
        extra={"vf_index": str(index)},
    )


def test_a_pfs_vfs_split_between_physical_networks() -> None:
    devices = [pf(PF, "ens1f0"), *(indexed_vf(i) for i in range(12))]
    specs = parse_device_specs(
        [
            {"devname": "ens1f0", "vf_index": "0-7", "physical_network": "physnet1"},
            {"devname": "ens1f0", "vf_index": "8-10,11", "physical_network": "physnet2"},
        ]
    )
    classified = classify(devices, specs)
    by_net: dict[str | None, list[str]] = {}
    for c in classified:
        if c.tags is not None:
            by_net.setdefault(c.tags.get("physical_network"), []).append(c.device.extra["vf_index"])
    assert by_net == {"physnet1": [str(i) for i in range(8)], "physnet2": ["8", "9", "10", "11"]}
    # the PF itself is not a VF: a vf_index spec never hands it out
    assert classified[0].tags is None
    # two VF pools on one PF, one per physical network
    vf_pools = [p for p in build_pools(classified).pools if p.dev_type is DevType.VF]
    assert sorted((p.tags["physical_network"], p.count) for p in vf_pools) == [
        ("physnet1", 8),
        ("physnet2", 4),
    ]


def test_the_mismatch_says_why() -> None:
    (spec,) = parse_device_specs([{"vf_index": "0-3"}])
    assert spec.mismatch(indexed_vf(9)) == "vf_index: VF 9 is not in the spec's list"
    assert spec.mismatch(pf(PF)) == "vf_index: type-PF is not a VF"
    unknown = PciDevice(
        address="0000:3b:02.0", vendor_id="8086", product_id="154c", dev_type=DevType.VF,
        parent_addr=PF,
    )  # fmt: skip
    assert "index is not known" in (spec.mismatch(unknown) or "")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("7-0", "range 7-0 is reversed"),
        ("0-70000", "70000 is greater than the maximum 65535"),
        ("999999999999", "is not N or N-M"),
        ("one", "'one' is not N or N-M"),
        ("0-3;8", "is not N or N-M"),
        ("", "names no VF"),
        (["0-3"], "property vf_index must be a text"),
        (True, "property vf_index must be a text"),
        (None, "property vf_index must be a text"),
    ],
)
def test_hostile_vf_index_is_refused_naming_the_field(value: object, message: str) -> None:
    with pytest.raises(InvalidDeviceSpec) as err:
        parse_device_specs([{"devname": "ens1f0", "vf_index": value}])
    assert "vf_index" in str(err.value)
    assert message in str(err.value)


def test_a_number_is_one_index() -> None:
    (spec,) = parse_device_specs([{"vf_index": 3}])
    assert spec.vf_index == {3}
