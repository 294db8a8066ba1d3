"""Unpack a captured sysfs snapshot (symlinks stored as ``NAME.link`` files) into a real tree.

Captures of ``/sys`` kept in git (tests/fixtures/sysfs, ../shared/fixtures) cannot hold
symlinks, so each link ``NAME`` is a text file ``NAME.link`` with the target as
``readlink`` printed it, and an attribute whose read failed is ``NAME.err``. Discovery
reads real trees only; this turns a capture back into one (``.err`` files are left
out, so reading such an attribute fails as it did on the captured host).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pcifleet.host.errors import HostDiscoveryError

LINK_SUFFIX = ".link"
ERR_SUFFIX = ".err"


def is_snapshot(root: Path) -> bool:
    """True when ``root`` is a capture: its device list holds ``*.link`` files, not links."""
    devices = root / "bus" / "pci" / "devices"
    try:
        with os.scandir(devices) as it:
            return any(e.name.endswith(LINK_SUFFIX) and not e.is_symlink() for e in it)
    except OSError:
        return False


def materialize_snapshot(src: Path, dest: Path) -> Path:
    """Copy the capture ``src`` (a ``sys`` directory) to ``dest`` with real symlinks."""
    if not src.is_dir():
        raise HostDiscoveryError(f"{src}: not a directory")
    for dirpath, _dirs, files in os.walk(src):
        out = dest / Path(dirpath).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(dirpath) / name
            if name.endswith(LINK_SUFFIX):
                target = path.read_text()
                if os.path.isabs(target) or "\0" in target:
                    # Captured links are relative; an absolute one would leave the tree.
                    raise HostDiscoveryError(f"{path}: link target {target!r} is not relative")
                os.symlink(target, out / name[: -len(LINK_SUFFIX)])
            elif not name.endswith(ERR_SUFFIX):
                shutil.copyfile(path, out / name)
    return dest
