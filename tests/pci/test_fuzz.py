"""Parsers never raise anything but their own ValueError subclasses, whatever they get."""

import contextlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pcifleet.pci import (
    DeviceSpec,
    HostLayout,
    InvalidAlias,
    InvalidDeviceSpec,
    InvalidNumaTopology,
    InvalidPciAddress,
    InvalidPciDevice,
    InvalidPciRequest,
    NumaTopology,
    PciAddress,
    PciDevice,
    PciPools,
    format_index_list,
    parse_aliases,
    parse_index_list,
    requests_from_flavor,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
address_text = st.text(alphabet="0123456789abcdefABCDEF:.* x-", max_size=20)
spec_keys = st.sampled_from(
    ["vendor_id", "product_id", "address", "devname", "physical_network", "trusted", "vf_index"]
)
spec_dicts = st.dictionaries(spec_keys, json_values | address_text, max_size=4)


@given(st.text(max_size=30) | address_text)
def test_address_parse_only_raises_its_error(text: str) -> None:
    try:
        addr = PciAddress.parse(text)
    except InvalidPciAddress:
        return
    assert PciAddress.parse(str(addr)) == addr


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7))
def test_every_valid_address_round_trips(d: int, b: int, s: int, f: int) -> None:
    addr = PciAddress(d, b, s, f)
    assert PciAddress.parse(str(addr).upper()) == addr


@settings(max_examples=300)
@given(spec_dicts | json_values)
def test_device_spec_only_raises_its_error(obj: object) -> None:
    for candidate in (obj, json.dumps(obj)):
        with contextlib.suppress(InvalidDeviceSpec):
            DeviceSpec.from_json(candidate)


@given(address_text)
def test_glob_addresses_only_raise_their_error(text: str) -> None:
    with contextlib.suppress(InvalidDeviceSpec):
        DeviceSpec.from_json({"address": text})


@given(
    st.dictionaries(st.sampled_from(["domain", "bus", "slot", "function"]), st.text(max_size=12))
)
def test_regex_addresses_only_raise_their_error(mapping: dict[str, str]) -> None:
    try:
        spec = DeviceSpec.from_json({"address": mapping})
    except InvalidDeviceSpec:
        return
    spec.mismatch(_any_device())


def _any_device() -> PciDevice:
    return PciDevice(address="0000:0a:00.1", vendor_id="8086", product_id="154c")


alias_keys = st.sampled_from(
    [
        "name",
        "vendor_id",
        "product_id",
        "device_type",
        "numa_policy",
        "capability_type",
        "traits",
        "live_migratable",
        "resource_class",
    ]
)


@settings(max_examples=300)
@given(
    st.lists(st.dictionaries(alias_keys, json_values, max_size=6) | json_values, max_size=3),
    st.text(max_size=20),
)
def test_alias_parsing_and_flavor_specs_only_raise_their_error(entries: list, spec: str) -> None:
    try:
        aliases = parse_aliases(entries)
    except InvalidAlias:
        aliases = {}
    with contextlib.suppress(InvalidAlias):
        requests_from_flavor({"pci_passthrough:alias": spec}, aliases)


@given(json_values)
def test_pool_json_only_raises_its_error(data: object) -> None:
    with contextlib.suppress(InvalidPciRequest):
        PciPools.from_json(data)


device_keys = st.sampled_from(
    [
        "address",
        "vendor_id",
        "product_id",
        "dev_type",
        "parent_addr",
        "numa_node",
        "ifname",
        "driver",
        "extra",
        "other",
    ]
)


@settings(max_examples=300)
@given(st.dictionaries(device_keys, json_values | address_text, max_size=8) | json_values)
def test_device_from_dict_only_raises_its_error(data: object) -> None:
    with contextlib.suppress(InvalidPciDevice):
        PciDevice.from_dict(data)  # type: ignore[arg-type]


nic_keys = st.sampled_from(
    [
        "address",
        "vendor_id",
        "product_id",
        "vf_product_id",
        "numvfs",
        "totalvfs",
        "vf_offset",
        "numa_node",
        "ifname",
        "driver",
        "vf_driver",
        "mac",
    ]
)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["hostname", "nics", "devices", "pci"]),
        st.lists(st.dictionaries(nic_keys, json_values | address_text, max_size=8), max_size=2)
        | json_values,
    )
)
def test_layout_only_raises_its_error(data: dict) -> None:
    with contextlib.suppress(InvalidPciDevice):
        HostLayout.from_dict(data).devices()


@settings(max_examples=300)
@given(st.text(alphabet="0123456789-, x", max_size=30) | json_values)
def test_index_lists_only_raise_their_error(obj: object) -> None:
    try:
        got = parse_index_list(obj, "f", 4096, InvalidDeviceSpec)
    except InvalidDeviceSpec:
        return
    assert all(0 <= i <= 4096 for i in got)
    assert parse_index_list(format_index_list(got), "f", 4096, InvalidDeviceSpec) == got


@settings(max_examples=300)
@given(
    json_values
    | st.lists(
        st.dictionaries(
            st.sampled_from(["id", "cpus", "memory_mb", "socket"]),
            json_values | st.text(alphabet="0123456789-,", max_size=12),
            max_size=4,
        ),
        max_size=3,
    )
)
def test_numa_topologies_only_raise_their_error(obj: object) -> None:
    with contextlib.suppress(InvalidNumaTopology):
        NumaTopology.from_json(obj)
