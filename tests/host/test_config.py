"""The operator's host config: pcifleet.toml and nova.conf [pci], and their mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.host.config import (
    HostConfig,
    load_host_config,
    nova_conf_values,
    parse_nova_conf,
    parse_toml_config,
)
from pcifleet.host.errors import HostConfigError
from pcifleet.pci import DevType

TOML = """
[pci]
device_spec = [
  '{"devname": "ens1f0", "physical_network": "physnet1"}',
  { vendor_id = "10de", product_id = "1db4" },
  '[{"address": "0000:86:*.*", "physical_network": "physnet2"}, {"vendor_id": "15b3"}]',
]
alias = [
  { name = "gpu", vendor_id = "10de", product_id = "1db4", device_type = "type-PCI" },
  '{"name": "vf", "vendor_id": "8086", "product_id": "154c"}',
]

[agent]
report_interval = 10
"""


def test_toml_specs_aliases_and_other_sections() -> None:
    config = parse_toml_config(TOML)
    assert isinstance(config, HostConfig)
    assert [s.devname for s in config.device_spec] == ["ens1f0", None, None, None]
    assert config.device_spec[0].tags == {"physical_network": "physnet1"}
    assert config.device_spec[2].tags == {"physical_network": "physnet2"}
    assert config.device_spec[3].vendor_id == "15b3"
    assert sorted(config.alias) == ["gpu", "vf"]
    assert config.alias["gpu"][0].device_type is DevType.PCI
    assert config.raw["agent"] == {"report_interval": 10}


def test_legacy_name_and_empty_config() -> None:
    config = parse_toml_config('[pci]\npassthrough_whitelist = [\'{"vendor_id": "8086"}\']\n')
    assert config.device_spec[0].vendor_id == "8086"
    empty = parse_toml_config("")
    assert (empty.device_spec, empty.alias, empty.raw) == ([], {}, {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[pci\n", "pcifleet.toml: not valid TOML"),
        ("pci = 3\n", "[pci] must be a table"),
        ("[pci]\ndevice_specs = []\n", "[pci] has unknown key(s) device_specs"),
        ("[pci]\ndevice_spec = '{}'\n", "[pci] device_spec must be a list"),
        ("[pci]\ndevice_spec = [3]\n", "[pci] device_spec 1 must be a JSON text or a table"),
        ("[pci]\ndevice_spec = ['{}', '{']\n", "[pci] device_spec 2: not valid JSON"),
        (
            "[pci]\ndevice_spec = [{vendor_id = 'xyz'}]\n",
            "[pci] device_spec 1: property vendor_id (xyz) is not a hex number",
        ),
        (
            "[pci]\ndevice_spec = [{devname = '../../etc/passwd'}]\n",
            "[pci] device_spec 1: property devname ('../../etc/passwd') must not contain",
        ),
        (
            "[pci]\ndevice_spec = [{devname = 'a-very-long-ifname0'}]\n",
            "longer than the kernel's limit of 15 bytes",
        ),
        ("[pci]\nalias = [{vendor_id = '8086'}]\n", "[pci] alias 1:"),
        (
            "[pci]\nalias = [{name='a', vendor_id='8086', product_id='0001', "
            "device_type='type-PF'}, {name='a', vendor_id='8086', product_id='0002', "
            "device_type='type-VF'}]\n",
            "[pci] alias: alias 'a': device_type",
        ),
        (
            "[pci]\nalias = [{name='a', vendor_id='8086', product_id='0001', "
            "device_type='type-PF'}, {name='a', vendor_id='8086', product_id='0002', "
            "device_type='type-VF'}, {name='b'}]\n",
            "[pci] alias 3:",  # a bad entry is named even after a conflict
        ),
        (
            "[pci]\ndevice_spec = []\npassthrough_whitelist = []\n",
            "both device_spec and passthrough_whitelist",
        ),
    ],
)
def test_toml_errors_name_the_file_and_field(text: str, message: str) -> None:
    with pytest.raises(HostConfigError) as err:
        parse_toml_config(text)
    assert str(err.value).startswith("pcifleet.toml: ")
    assert message in str(err.value)


NOVA_CONF = """
[DEFAULT]
debug = true
# a comment: device_spec = {"vendor_id": "dead"}

[pci]
; comments both ways
device_spec = {"devname": "ens1f0", "physical_network": "physnet1"}
device_spec = [{"vendor_id": "10de", "product_id": "1db4"},
  {"vendor_id": "15b3", "physical_network": "physnet2"}]
passthrough_whitelist: '{"address": "0000:5e:00.0"}'
alias = {"name": "gpu", "vendor_id": "10de", "product_id": "1db4", "device_type": "type-PCI"}
report_in_placement = false

[libvirt]
virt_type = kvm
"""


def test_nova_conf_repeated_keys() -> None:
    values = nova_conf_values(NOVA_CONF)
    assert [n for n, _ in values["device_spec"]] == [8, 9, 11]
    config = parse_nova_conf(NOVA_CONF)
    assert [s.devname for s in config.device_spec] == ["ens1f0", None, None, None]
    assert config.device_spec[2].tags == {"physical_network": "physnet2"}
    assert str(config.device_spec[3].address.single) == "0000:5e:00.0"  # type: ignore[union-attr]
    assert list(config.alias) == ["gpu"]
    assert len(config.raw["pci"]["device_spec"]) == 3


def test_nova_conf_legacy_default_section() -> None:
    text = (
        "[DEFAULT]\n"
        'pci_passthrough_whitelist = {"vendor_id": "8086"}\n'
        'pci_alias = {"name": "x", "vendor_id": "8086", "product_id": "0001"}\n'
    )
    config = parse_nova_conf(text)
    assert config.device_spec[0].vendor_id == "8086"
    assert list(config.alias) == ["x"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("device_spec = {}\n", "nova.conf:1: device_spec is outside any section"),
        ("[pci\n", "nova.conf:1: malformed section header"),
        ("[pci]\njust words\n", "nova.conf:2: expected 'key = value'"),
        (
            '[pci]\ndevice_spec = {"vendor_id": 8086}\n',
            "nova.conf: line 2: [pci] device_spec 1: property vendor_id",
        ),
        (
            '[pci]\npassthrough_whitelist = {}\npassthrough_whitelist = {"vendor_id": 8086}\n',
            "nova.conf: line 3: [pci] passthrough_whitelist (device_spec 2): property vendor_id",
        ),
        ("[pci]\n\n\nalias = {nope\n", "nova.conf: line 4: [pci] alias:"),
        ("[DEFAULT]\npci_alias = {}\n", "nova.conf: line 2: [DEFAULT] pci_alias:"),
    ],
)
def test_nova_conf_errors(text: str, message: str) -> None:
    with pytest.raises(HostConfigError, match=None) as err:
        parse_nova_conf(text)
    assert message in str(err.value)


def test_load_by_suffix(tmp_path: Path) -> None:
    toml = tmp_path / "pcifleet.toml"
    toml.write_text(TOML)
    nova = tmp_path / "nova.conf"
    nova.write_text(NOVA_CONF)
    assert load_host_config(toml).path == toml
    assert len(load_host_config(nova).device_spec) == 4


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match=r"missing.toml: cannot read config: No such file"):
        load_host_config(tmp_path / "missing.toml")
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"\xff\xfe[pci]")
    with pytest.raises(HostConfigError, match="not UTF-8"):
        load_host_config(binary)
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (2 << 20))
    with pytest.raises(HostConfigError, match="larger than"):
        load_host_config(huge)
    bad = tmp_path / "bad.toml"
    bad.write_text("[pci]\ndevice_spec = [{vendor_id = 'x'}]\n")
    with pytest.raises(HostConfigError, match=rf"^{bad}: \[pci\] device_spec 1: "):
        load_host_config(bad)


def test_a_spec_is_numbered_as_the_inventory_numbers_it() -> None:
    """A JSON list in one entry holds several specs: an error counts specs, from 1."""
    text = "[pci]\ndevice_spec = ['[{\"vendor_id\": \"8086\"}, {}]', {vendor_id = 'zz'}]\n"
    with pytest.raises(HostConfigError, match="device_spec 3: property vendor_id"):
        parse_toml_config(text)
