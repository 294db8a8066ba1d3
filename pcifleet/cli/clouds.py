"""clouds.yaml for the ``openstack`` CLI and openstacksdk."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from pcifleet.api.bootstrap import Credentials


def cloud_entry(auth_url: str, creds: Credentials, region: str) -> dict[str, object]:
    return {
        "auth": {
            "auth_url": auth_url,
            "username": creds.username,
            "password": creds.password,
            "project_name": creds.project_name,
            "user_domain_name": creds.user_domain_name,
            "project_domain_name": creds.project_domain_name,
        },
        "region_name": region,
        "identity_api_version": 3,
        "interface": "public",
    }


def write_clouds_yaml(
    path: Path, auth_url: str, admin: Credentials, demo: Credentials, region: str = "RegionOne"
) -> Path:
    """Two clouds: ``pcifleet`` (the admin) and ``pcifleet-demo`` (a member of demo)."""
    doc = {
        "clouds": {
            "pcifleet": cloud_entry(auth_url, admin, region),
            "pcifleet-demo": cloud_entry(auth_url, demo, region),
        }
    }
    tmp = path.with_suffix(".tmp")
    # Passwords inside: readable by the owner only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    os.replace(tmp, path)
    return path
