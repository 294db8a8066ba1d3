"""Hostile input of any shape: the host parsers answer with their own errors or warnings only."""

from __future__ import annotations

import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from pcifleet.host.config import HostConfigError, parse_nova_conf, parse_toml_config
from pcifleet.host.devname import check_devname
from pcifleet.host.nodedev import inventory_from_xml
from pcifleet.pci import InvalidDeviceSpec

FAST = settings(max_examples=200, deadline=None)

nova_lines = st.lists(
    st.one_of(
        st.sampled_from(["[pci]", "[DEFAULT]", "[libvirt]", "[", "# c", "; c", "", "  cont"]),
        st.builds(
            lambda k, sep, v: f"{k}{sep}{v}",
            st.sampled_from(["device_spec", "passthrough_whitelist", "alias", "pci_alias", "x"]),
            st.sampled_from([" = ", ":", "=", " "]),
            st.one_of(
                st.text(max_size=40),
                st.sampled_from(
                    ['{"vendor_id": "8086"}', "[]", "{}", '"{}"', "[{}]", '{"name": "a"}']
                ),
            ),
        ),
    ),
    max_size=12,
)


@FAST
@given(nova_lines)
def test_nova_conf_never_fails_otherwise(lines: list[str]) -> None:
    try:
        config = parse_nova_conf("\n".join(lines))
    except HostConfigError as exc:
        assert str(exc).startswith("nova.conf")
    else:
        assert isinstance(config.raw["pci"]["device_spec"], list)


toml_values = st.recursive(
    st.one_of(
        st.booleans(),
        st.integers(),
        st.text(max_size=20),
        st.sampled_from(['{"vendor_id": "8086"}', '[{"devname": "eth0"}]', '{"name": "a"}']),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(["device_spec", "alias", "passthrough_whitelist", "other"]),
        toml_values,
        max_size=3,
    )
)
def test_toml_pci_table_never_fails_otherwise(pci: dict[str, object]) -> None:
    text = "[pci]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in pci.items())
    try:
        parse_toml_config(text)
    except HostConfigError as exc:
        assert str(exc).startswith("pcifleet.toml")


def _toml(value: object) -> str:
    """A TOML inline value (JSON string escapes are TOML's too)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


xml_docs = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda body: (
            "<device><name>pci_x</name>"
            f"<capability type='pci'>{body}</capability></device>".encode()
        ),
        st.text(alphabet=string.printable, max_size=120),
    ),
)


@FAST
@given(st.lists(xml_docs, max_size=4))
def test_nodedev_xml_only_warns(docs: list[bytes]) -> None:
    inv = inventory_from_xml([(f"d{i}", d) for i, d in enumerate(docs)], "fuzz")
    assert isinstance(inv.warnings, list)


@FAST
@given(st.text(max_size=24))
def test_devname_check_is_total(name: str) -> None:
    try:
        checked = check_devname(name)
    except InvalidDeviceSpec:
        return
    assert "/" not in checked and "\0" not in checked and ".." not in checked
    assert 0 < len(checked.encode()) <= 15
