"""The sample host shipped with pcifleet, classified, for tests."""

import tomllib
from importlib import resources

from pcifleet.pci import Classified, HostLayout, classify, parse_aliases, parse_device_specs


def sample_layout() -> HostLayout:
    text = resources.files("pcifleet").joinpath("data/sample-host.toml").read_text()
    return HostLayout.from_dict(tomllib.loads(text))


def sample_classified() -> list[Classified]:
    layout = sample_layout()
    return classify(layout.devices(), parse_device_specs(layout.device_spec))


def sample_aliases():  # type: ignore[no-untyped-def]
    return parse_aliases(sample_layout().alias)
