"""Writing clouds.yaml for the ``openstack`` CLI and openstacksdk."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pcifleet.api.bootstrap import BootstrapResult, clouds_yaml


def write_clouds_yaml(path: Path, auth_url: str, creds: BootstrapResult) -> Path:
    """The clouds ``pcifleet`` (admin) and ``pcifleet-demo`` (demo member), mode 0600."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(clouds_yaml(auth_url, creds), f, sort_keys=False)
    os.replace(tmp, path)
    return path
