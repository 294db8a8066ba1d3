"""The operator's host config: which devices may be handed out (device_spec) and aliases.

Two formats:

- ``pcifleet.toml``: ``[pci] device_spec = [...]`` and ``alias = [...]``, each entry a
  JSON text or a TOML table. Other sections are kept in ``HostConfig.raw`` for the
  layers that own them.
- ``nova.conf``: the ``[pci]`` section with repeated ``device_spec`` (or its old name
  ``passthrough_whitelist``) and ``alias`` lines, so an operator brings the config
  they already run. configparser refuses repeated keys, so the section is read here
  line by line, the way oslo.config reads it (``=`` or ``:``, outer quotes dropped,
  indented continuation lines).

Every error names the file and the field (and the line for nova.conf).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pcifleet.host.errors import HostConfigError
from pcifleet.pci import Alias, DeviceSpec, InvalidAlias, InvalidDeviceSpec, parse_aliases

MAX_CONFIG_BYTES = 1 << 20
# [pci] keys of pcifleet.toml; passthrough_whitelist is Nova's old name of device_spec.
TOML_PCI_KEYS = frozenset({"device_spec", "passthrough_whitelist", "alias"})
# nova.conf: (section, key) -> field. Nova before Newton read the DEFAULT ones.
NOVA_KEYS = {
    ("pci", "device_spec"): "device_spec",
    ("pci", "passthrough_whitelist"): "device_spec",
    ("pci", "alias"): "alias",
    ("DEFAULT", "pci_passthrough_whitelist"): "device_spec",
    ("DEFAULT", "pci_alias"): "alias",
}


@dataclass(frozen=True)
class HostConfig:
    """Parsed device specs and aliases, plus the whole document for other sections."""

    device_spec: list[DeviceSpec] = field(default_factory=list)
    alias: dict[str, list[Alias]] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


@dataclass(frozen=True)
class _Entry:
    value: Any
    where: str  # "[pci] alias 2" or "line 12: [pci] alias"; numbers count from 1


def _specs(entries: list[_Entry], label: str) -> list[DeviceSpec]:
    """The specs in order. An error names the spec by its number counting from
    1 over all specs (an entry may hold a JSON list of several), the number
    ``pcifleet inventory`` shows, and where it was written."""
    specs: list[DeviceSpec] = []
    for entry in entries:
        value = entry.value
        try:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except (ValueError, RecursionError) as exc:
                    raise InvalidDeviceSpec(f"not valid JSON ({exc}): {value!r:.200}") from None
            items = value if isinstance(value, list) else [value]
            for item in items:
                specs.append(DeviceSpec.from_json(item))
        except InvalidDeviceSpec as exc:
            n = len(specs) + 1
            where = (
                f"{entry.where} {n}"
                if entry.where.endswith("device_spec")
                else f"{entry.where} (device_spec {n})"
            )
            raise HostConfigError(f"{label}: {where}: {exc}") from None
    return specs


def _aliases(entries: list[_Entry], label: str) -> dict[str, list[Alias]]:
    try:
        return parse_aliases([e.value for e in entries])
    except InvalidAlias as exc:
        # Only now parse entry by entry, to name the one at fault; when each is
        # fine alone, two entries of one name conflict.
        for entry in entries:
            try:
                parse_aliases([entry.value])
            except InvalidAlias as one:
                raise HostConfigError(f"{label}: {entry.where}: {one}") from None
        raise HostConfigError(f"{label}: [pci] alias: {exc}") from None


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise HostConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise HostConfigError(f"{path}: config is larger than {MAX_CONFIG_BYTES} bytes")
    return data


def parse_toml_config(text: str, label: str = "pcifleet.toml") -> HostConfig:
    """A ``pcifleet.toml`` document; ``label`` names it in errors."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HostConfigError(f"{label}: not valid TOML: {exc}") from None
    return config_from_document(doc, label)


def config_from_document(doc: Mapping[str, Any], label: str) -> HostConfig:
    """A config from an already parsed TOML document (a host layout's ``[pci]`` too)."""
    pci = doc.get("pci", {})
    if not isinstance(pci, Mapping):
        raise HostConfigError(f"{label}: [pci] must be a table")
    unknown = sorted(set(pci) - TOML_PCI_KEYS)
    if unknown:
        raise HostConfigError(
            f"{label}: [pci] has unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(TOML_PCI_KEYS))})"
        )
    if "device_spec" in pci and "passthrough_whitelist" in pci:
        raise HostConfigError(f"{label}: [pci] has both device_spec and passthrough_whitelist")
    fields: dict[str, list[_Entry]] = {"device_spec": [], "alias": []}
    for key, value in pci.items():
        name = "alias" if key == "alias" else "device_spec"
        if not isinstance(value, list):
            raise HostConfigError(
                f"{label}: [pci] {key} must be a list of JSON texts or tables, "
                f"got {type(value).__name__}"
            )
        for i, item in enumerate(value):
            if not isinstance(item, str | Mapping):
                raise HostConfigError(
                    f"{label}: [pci] {key} {i + 1} must be a JSON text or a table, "
                    f"got {type(item).__name__}"
                )
            where = f"[pci] {key}" if name == "device_spec" else f"[pci] {key} {i + 1}"
            fields[name].append(_Entry(item, where))
    return HostConfig(
        device_spec=_specs(fields["device_spec"], label),
        alias=_aliases(fields["alias"], label),
        raw=dict(doc),
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


@dataclass
class _NovaValue:
    lineno: int
    name: str  # the HostConfig field
    option: str  # as written: "[pci] passthrough_whitelist"
    text: str


def _nova_values(text: str, label: str) -> list[_NovaValue]:
    found: list[_NovaValue] = []
    section: str | None = None
    current: _NovaValue | None = None  # the value an indented line continues
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if line[0] in " \t" and current is not None:
            current.text += "\n" + stripped  # oslo.config continuation line
            continue
        current = None
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                raise HostConfigError(
                    f"{label}:{lineno}: malformed section header {stripped!r:.80}"
                )
            section = stripped[1:-1].strip()
            continue
        seps = [i for i in (stripped.find("="), stripped.find(":")) if i > 0]
        if not seps:
            raise HostConfigError(f"{label}:{lineno}: expected 'key = value', got {stripped!r:.80}")
        key = stripped[: min(seps)].strip()
        if section is None:
            raise HostConfigError(f"{label}:{lineno}: {key} is outside any section")
        name = NOVA_KEYS.get((section, key))
        if name is not None:
            value = stripped[min(seps) + 1 :].strip()
            current = _NovaValue(lineno, name, f"[{section}] {key}", value)
            found.append(current)
    for v in found:
        v.text = _unquote(v.text)
    return found


def nova_conf_values(text: str, label: str = "nova.conf") -> dict[str, list[tuple[int, str]]]:
    """``device_spec`` and ``alias`` values of a nova.conf, each with its line number."""
    found = _nova_values(text, label)
    return {
        name: [(v.lineno, v.text) for v in found if v.name == name]
        for name in ("device_spec", "alias")
    }


def parse_nova_conf(text: str, label: str = "nova.conf") -> HostConfig:
    """The PCI options of a nova.conf; ``raw`` holds them as ``{"pci": {...}}``."""
    found = _nova_values(text, label)
    entries = {
        name: [_Entry(v.text, f"line {v.lineno}: {v.option}") for v in found if v.name == name]
        for name in ("device_spec", "alias")
    }
    raw = {"pci": {name: [e.value for e in items] for name, items in entries.items()}}
    return HostConfig(
        device_spec=_specs(entries["device_spec"], label),
        alias=_aliases(entries["alias"], label),
        raw=raw,
    )


def load_host_config(path: Path) -> HostConfig:
    """Load ``path``: TOML when it ends in ``.toml``, else a nova.conf-style ini file."""
    data = _read(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HostConfigError(f"{path}: config is not UTF-8 text") from None
    label = str(path)
    config = (
        parse_toml_config(text, label) if path.suffix == ".toml" else parse_nova_conf(text, label)
    )
    return HostConfig(config.device_spec, config.alias, config.raw, path)
