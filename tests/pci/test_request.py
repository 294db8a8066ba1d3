import uuid

import pytest

from pcifleet.pci import (
    InvalidAlias,
    InvalidPciRequest,
    NumaPolicy,
    PciRequest,
    parse_aliases,
    request_for_port,
    requests_from_flavor,
)

ALIASES = parse_aliases(
    [
        {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", "numa_policy": "required"},
        {"name": "fpga", "vendor_id": "1172", "product_id": "0001"},
        {"name": "fpga", "vendor_id": "1172", "product_id": "0002"},
    ]
)


def test_flavor_spec_gives_one_request_per_alias() -> None:
    reqs = requests_from_flavor({"pci_passthrough:alias": " gpu : 1 , fpga:2 "}, ALIASES)
    assert [(r.alias_name, r.count) for r in reqs] == [("gpu", 1), ("fpga", 2)]
    assert reqs[0].numa_policy is NumaPolicy.REQUIRED
    assert reqs[1].specs == [
        {"vendor_id": "1172", "product_id": "0001"},
        {"vendor_id": "1172", "product_id": "0002"},
    ]
    assert len({r.request_id for r in reqs}) == 2
    for r in reqs:
        uuid.UUID(r.request_id)


def test_flavor_without_alias_spec_has_no_requests() -> None:
    assert requests_from_flavor({"hw:cpu_policy": "dedicated"}, ALIASES) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("gpu", "<alias name>:<count>"),
        ("gpu:0", "count (0)"),
        ("gpu:-1", "count (-1)"),
        ("gpu:1.5", "count (1.5)"),
        ("gpu:x", "count (x)"),
        ("gpu:99999", "count (99999)"),
        ("gpu:1:2", "<alias name>:<count>"),
        (":1", "<alias name>:<count>"),
        ("gpu:1,,fpga:1", "<alias name>:<count>"),
        ("nic:1", "alias 'nic' is not defined"),
        ("", "must be a string"),
        (5, "must be a string"),
    ],
)
def test_malformed_flavor_specs_are_rejected(value: object, message: str) -> None:
    with pytest.raises(InvalidAlias) as exc:
        requests_from_flavor({"pci_passthrough:alias": value}, ALIASES)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("vnic", "dev_type"),
    [("direct", "type-VF"), ("macvtap", "type-VF"), ("direct-physical", "type-PF")],
)
def test_port_requests(vnic: str, dev_type: str) -> None:
    req = request_for_port("physnet1", vnic, request_id="7c9e6679-7425-40de-944b-e07fc1f90ae7")
    assert req.count == 1
    assert req.specs == [{"physical_network": "physnet1", "dev_type": dev_type}]
    assert req.request_id == "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    assert req.source == "port"


def test_port_on_tunnelled_network_has_null_physnet() -> None:
    assert request_for_port(None, "direct").specs[0]["physical_network"] is None


@pytest.mark.parametrize("vnic", ["normal", "baremetal", ""])
def test_non_sriov_vnic_types_make_no_request(vnic: str) -> None:
    with pytest.raises(InvalidPciRequest, match="vnic_type"):
        request_for_port("physnet1", vnic)


def test_request_dict_round_trip() -> None:
    req = requests_from_flavor({"pci_passthrough:alias": "gpu:2"}, ALIASES)[0]
    assert PciRequest.from_dict(req.to_dict()) == req


@pytest.mark.parametrize(
    "data",
    [
        {"count": 0, "specs": [{}]},
        {"count": True, "specs": [{}]},
        {"count": 1, "specs": []},
        {"count": 1, "specs": [{"a": 1}]},
        {"count": 1, "specs": [{}], "request_id": "nope"},
        {"count": 1, "specs": [{}], "numa_policy": "x"},
        {"count": 1, "specs": [{}], "source": "x"},
        {"count": 1, "specs": [{}], "extra": "x"},
        {"specs": [{}]},
        [],
    ],
)
def test_bad_request_dicts_are_rejected(data: object) -> None:
    with pytest.raises(InvalidPciRequest):
        PciRequest.from_dict(data)  # type: ignore[arg-type]
