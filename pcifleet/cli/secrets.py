"""Secrets ``pcifleet up`` keeps in its data directory, so a restart reuses them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def read_or_create_secret(path: Path, nbytes: int = 18) -> tuple[str, bool]:
    """The secret stored at ``path``, or a new one written there (mode 0600).

    Returns (secret, created).
    """
    try:
        value = path.read_text().strip()
        if value:
            return value, False
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(nbytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True
