"""Which device specs and aliases ``pcifleet up`` runs with, and where they came from.

Simulated hosts get their devices from the host layout (``--layout``, default
the sample host), and their device specs and aliases from the layout too —
unless ``--config`` gives ``[pci] device_spec`` or ``alias``, which then
replace the layout's (each list on its own), as they would on a real host.
The config's ``[agent]`` section describes one real machine and so applies
only with ``--local``. The alias source is kept to name it when a flavor asks
for an alias that is not defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pcifleet.host import HostConfig, load_host_config, load_layout, sample_layout_path
from pcifleet.pci import Alias, DeviceSpec, HostLayout, parse_aliases, parse_device_specs


@dataclass
class UpPci:
    layout: HostLayout
    host_config: HostConfig | None
    specs: list[DeviceSpec]
    aliases: dict[str, list[Alias]]
    alias_source: str
    notes: list[str] = field(default_factory=list)


def up_pci(layout_path: Path | None, config_path: Path | None, local: bool) -> UpPci:
    """The PCI configuration of one ``pcifleet up``; raises HostConfigError or
    InvalidAlias/InvalidDeviceSpec naming the file and entry that is wrong."""
    layout = load_layout(layout_path)
    config = load_host_config(config_path) if config_path is not None else None
    config_label = f"[pci] alias of {config_path}"
    if local:
        return UpPci(
            layout,
            config,
            config.device_spec if config else [],
            config.alias if config else {},
            config_label if config else "no --config (no aliases)",
        )
    layout_label = f"the host layout {layout_path or sample_layout_path()}"
    specs = parse_device_specs(layout.device_spec)
    aliases = parse_aliases(list(layout.alias))
    source = layout_label
    notes: list[str] = []
    if config is not None:
        if config.device_spec:
            specs = config.device_spec
            notes.append(f"device specs from {config_path} (the layout's are not used)")
        if config.alias:
            aliases, source = config.alias, config_label
            notes.append(f"aliases from {config_path} (the layout's are not used)")
        if not config.device_spec and not config.alias:
            notes.append(f"{config_path} has no [pci] device_spec or alias: the layout's apply")
        if "agent" in config.raw:
            notes.append(f"{config_path}: [agent] describes a real host; ignored without --local")
    return UpPci(layout, config, specs, aliases, source, notes)
