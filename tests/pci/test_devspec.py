import json
import time

import pytest

from pcifleet.pci import (
    DeviceSpec,
    InvalidDeviceSpec,
    PciAddress,
    classify,
    explain,
    parse_device_specs,
    unmatched_specs,
)

from .helpers import gpu, pf, vf

DEV = vf("0000:0a:00.5", "0000:0a:00.0")


def test_vendor_and_product_are_normalised() -> None:
    spec = DeviceSpec.from_json('{"vendor_id": "0x8086", "product_id": "154C"}')
    assert (spec.vendor_id, spec.product_id) == ("8086", "154c")
    assert spec.match(DEV)


def test_star_ids_match_anything() -> None:
    assert DeviceSpec.from_json({"vendor_id": "*", "product_id": "*"}).match(DEV)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"vendor_id": "10000"}, "vendor_id"),
        ({"vendor_id": "xyz"}, "vendor_id"),
        ({"product_id": 8086}, "product_id"),
        (
            {"address": "0000:0a:20.0"},
            "property slot (20) is greater than the maximum allowable value (1F)",
        ),
        ({"address": "0000:0a:00.8"}, "function (8)"),
        ({"address": "0000:100:00.0"}, "bus (100)"),
        ({"address": "10000:0a:00.0"}, "domain (10000)"),
        ({"address": "0:0:0:0.0"}, "more than three"),
        ({"address": "0000:zz:00.0"}, "bus (zz) is not a hex number"),
        ({"address": 5}, "address must be a string or a mapping"),
        ({"address": ["0000:0a:00.0"]}, "address must be"),
        ({"address": {"bus": "("}}, "bus"),
        ({"address": {"bus": 10}}, "bus must be a string"),
        ({"address": {"bus": "0a", "colour": "x"}}, "colour"),
        ({"address": {"slot": "a" * 300}}, "longer than"),
        ({"address": "0000:0a:00.0", "devname": "eth0"}, "not both"),
        ({"devname": "../../etc"}, "devname"),
        ({"devname": "x" * 16}, "15 bytes"),
        ({"devname": ""}, "devname"),
        ({"physical_network": 5}, "physical_network must be a string"),
        ({"trusted": True}, "trusted must be a string"),
        ({"trusted": "maybe"}, "trusted (maybe) must be a boolean word"),
        ({"remote_managed": ["true"]}, "remote_managed"),
        ({"dev_type": "type-VF"}, "reserved"),
        ({"count": "3"}, "reserved"),
    ],
)
def test_rejected_specs_name_the_field(spec: object, message: str) -> None:
    with pytest.raises(InvalidDeviceSpec) as exc:
        DeviceSpec.from_json(spec)
    assert message in str(exc.value)


@pytest.mark.parametrize("text", ["", "{", "[1, 2", "null", "42", '"text"', "[]", '{"a": NaN}x'])
def test_non_object_json_is_rejected(text: str) -> None:
    with pytest.raises(InvalidDeviceSpec):
        DeviceSpec.from_json(text)


def test_null_physical_network_is_a_tag() -> None:
    spec = DeviceSpec.from_json('{"vendor_id": "8086", "physical_network": null}')
    assert spec.tags == {"physical_network": None}


def test_other_keys_are_string_tags() -> None:
    spec = DeviceSpec.from_json(
        {"address": "*:0a:00.*", "physical_network": "physnet1", "trusted": "true", "custom": "x"}
    )
    assert spec.tags == {"physical_network": "physnet1", "trusted": "true", "custom": "x"}


@pytest.mark.parametrize(
    ("address", "matches"),
    [
        ("*:0a:00.*", ["0000:0a:00.5", "0001:0a:00.1"]),
        (":0a:00.", ["0000:0a:00.5", "0001:0a:00.1"]),
        ("0a:00.5", ["0000:0a:00.5", "0001:0a:00.5"]),
        (".5", ["0000:0a:00.5", "0000:0b:01.5"]),
        ("0000:0a:00.5", ["0000:0a:00.5"]),
        (" 0000 : 0a : 00 . 5 ", ["0000:0a:00.5"]),
        ("0000:0a:*.5", ["0000:0a:1f.5"]),
        ("", ["0000:0a:00.5", "ffff:ff:1f.7"]),
    ],
)
def test_glob_addresses(address: str, matches: list[str]) -> None:
    spec = DeviceSpec.from_json({"address": address})
    for text in matches:
        assert spec.match(gpu(text)), text


@pytest.mark.parametrize(
    ("address", "other"),
    [
        ("*:0a:00.*", "0000:0b:00.5"),
        ("0000:0a:00.5", "0000:0a:00.4"),
        (".5", "0000:0a:00.4"),
        ("0a:00.5", "0000:0a:01.5"),
    ],
)
def test_glob_addresses_reject_others(address: str, other: str) -> None:
    assert not DeviceSpec.from_json({"address": address}).match(gpu(other))


def test_regex_mapping_matches_from_field_start() -> None:
    spec = DeviceSpec.from_json(
        {"address": {"domain": ".*", "bus": "0[ab]", "slot": "1", "function": "[0-2]"}}
    )
    assert spec.match(gpu("0000:0a:10.2"))
    assert spec.match(gpu("0000:0b:1f.0"))  # "1" matches the start of "1f", as in Nova
    assert not spec.match(gpu("0000:0a:10.3"))
    assert not spec.match(gpu("0000:0c:10.0"))


def test_regex_mapping_can_anchor() -> None:
    spec = DeviceSpec.from_json({"address": {"slot": "1$"}})
    assert not spec.match(gpu("0000:0a:1f.0"))
    assert not spec.match(gpu("0000:0a:01.0"))  # "01" does not start with "1"
    assert DeviceSpec.from_json({"address": {"slot": "0[0-3]$"}}).match(gpu("0000:0a:01.0"))


def test_single_address_spec_matches_the_pf_and_its_vfs() -> None:
    spec = DeviceSpec.from_json({"address": "0000:0a:00.0", "physical_network": "physnet1"})
    assert spec.match(pf("0000:0a:00.0"))
    assert spec.match(vf("0000:0a:02.3", "0000:0a:00.0"))
    assert not spec.match(vf("0000:0b:02.3", "0000:0b:00.0"))


def test_literal_regex_mapping_is_a_single_device() -> None:
    spec = DeviceSpec.from_json(
        {"address": {"domain": "0000", "bus": "0a", "slot": "00", "function": "0"}}
    )
    assert spec.match(vf("0000:0a:02.3", "0000:0a:00.0"))
    assert spec.match(pf("0000:0a:00.0"))
    assert not spec.match(pf("0000:0a:00.1"))


def test_wildcard_address_does_not_pull_in_vfs() -> None:
    spec = DeviceSpec.from_json({"address": "0000:0a:00.*"})
    assert not spec.match(vf("0000:0a:02.3", "0000:0a:00.0"))


def test_literal_regex_out_of_range_is_rejected() -> None:
    with pytest.raises(InvalidDeviceSpec, match="slot"):
        DeviceSpec.from_json(
            {"address": {"domain": "0000", "bus": "0a", "slot": "20", "function": "0"}}
        )


def test_devname_matches_netdev_and_a_pfs_vfs() -> None:
    spec = DeviceSpec.from_json({"devname": "ens1f0", "physical_network": "physnet1"})
    parent = pf("0000:3b:00.0", ifname="ens1f0")
    child = vf("0000:3b:02.0", "0000:3b:00.0", ifname="ens1f0v0")
    assert spec.match(parent)
    assert spec.match(child, parent)
    assert not spec.match(child)  # without its parent the VF's own name decides
    assert not spec.match(pf("0000:3c:00.0", ifname="ens2f0"))


def test_vendor_mismatch_is_explained() -> None:
    reason = DeviceSpec.from_json({"vendor_id": "15b3"}).mismatch(DEV)
    assert reason == "vendor_id 8086 is not 15b3"


def test_classify_takes_the_first_matching_spec() -> None:
    specs = parse_device_specs(
        [
            '{"address": "0000:0a:00.5", "physical_network": "physnet2"}',
            {"vendor_id": "8086", "physical_network": "physnet1"},
            '[{"vendor_id": "ffff"}]',
        ]
    )
    devices = [pf("0000:0a:00.0"), DEV, gpu("0000:5e:00.0")]
    out = classify(devices, specs)
    assert [c.spec_index for c in out] == [1, 0, None]
    assert out[1].tags == {"physical_network": "physnet2"}
    assert not out[2].matched
    assert unmatched_specs(out, specs) == [2]


def test_explain_says_per_spec_why() -> None:
    specs = parse_device_specs(
        [{"vendor_id": "15b3"}, {"address": "0000:0b:*.*"}, {"product_id": "154c"}]
    )
    result = explain(DEV, [DEV], specs)
    assert result[0] == (0, "vendor_id 8086 is not 15b3")
    assert result[1][1] is not None and "bus" in result[1][1]
    assert result[2] == (2, None)


def test_parse_device_specs_names_the_entry() -> None:
    with pytest.raises(InvalidDeviceSpec, match="entry 2"):
        parse_device_specs(['{"vendor_id": "8086"}', '{"vendor_id": "nothex"}'])


def test_catastrophic_regex_cannot_hang() -> None:
    # Nested quantifiers backtrack exponentially on a long input; our fields are at
    # most 4 characters and matching is bounded by a timeout, so this returns at once.
    spec = DeviceSpec.from_json({"address": {"domain": "(0*)*(0*)*(0*)*(0*)*x"}})
    started = time.monotonic()
    assert not spec.match(gpu("0000:0a:00.0"))
    assert time.monotonic() - started < 5  # generous: only guards against a hang


def test_source_keeps_what_the_operator_wrote() -> None:
    spec = DeviceSpec.from_json('{"devname": "eth3", "physical_network": "net"}')
    assert json.loads(spec.source) == {"devname": "eth3", "physical_network": "net"}


def test_spec_address_type_reports_single() -> None:
    spec = DeviceSpec.from_json({"address": "0000:0a:00.0"})
    assert spec.address is not None and spec.address.single == PciAddress.parse("0000:0a:00.0")
