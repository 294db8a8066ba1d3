"""Host layout files: the TOML a simulated host is described in.

``pcifleet.pci.HostLayout`` turns a parsed document into devices (no I/O); this
module does the reading, for every caller (``pcifleet inventory --layout``,
``pcifleet up``, tests), so the sample host is found one way and a bad file gets
one kind of error that names it.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from pcifleet.host.errors import HostConfigError
from pcifleet.pci import HostLayout

# A layout is a few dozen lines; anything this big is the wrong file.
MAX_LAYOUT_BYTES = 1 << 20


def sample_layout_path() -> Path:
    """Where the sample host shipped with pcifleet (two X710 ports, two GPUs) lives."""
    return Path(str(resources.files("pcifleet").joinpath("data/sample-host.toml")))


def load_layout(path: Path | None = None) -> HostLayout:
    """The host layout in ``path``; None means the shipped sample host.

    Raises HostConfigError naming the file when it cannot be read, is not TOML,
    or describes an impossible host.
    """
    path = sample_layout_path() if path is None else path
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LAYOUT_BYTES + 1)
    except OSError as exc:
        raise HostConfigError(f"{path}: cannot read host layout: {exc.strerror}") from None
    if len(data) > MAX_LAYOUT_BYTES:
        raise HostConfigError(f"{path}: host layout is larger than {MAX_LAYOUT_BYTES} bytes")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise HostConfigError(f"{path}: host layout is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise HostConfigError(f"{path}: host layout is not valid TOML: {exc}") from None
    try:
        return HostLayout.from_dict(doc)
    except ValueError as exc:  # InvalidPciDevice, InvalidPciAddress
        raise HostConfigError(f"{path}: {exc}") from None
