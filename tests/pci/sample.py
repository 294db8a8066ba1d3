"""The sample host shipped with pcifleet, classified, for tests."""

from pcifleet.host import load_layout
from pcifleet.pci import Alias, Classified, HostLayout, classify, parse_aliases, parse_device_specs


def sample_layout() -> HostLayout:
    return load_layout()


def sample_classified() -> list[Classified]:
    layout = sample_layout()
    return classify(layout.devices(), parse_device_specs(layout.device_spec))


def sample_aliases() -> dict[str, list[Alias]]:
    return parse_aliases(sample_layout().alias)
