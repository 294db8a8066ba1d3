"""The service catalog: every OpenStack service is this same app under a prefix."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from pcifleet.api.settings import ApiSettings

# (service type, service name, path under the base URL)
SERVICES = (
    ("identity", "keystone", "/v3"),
    ("compute", "nova", "/compute/v2.1"),
    ("network", "neutron", "/networking"),
    ("image", "glance", "/image"),
)


def base_url(request: Request, settings: ApiSettings) -> str:
    """The URL clients reach us at, without a trailing slash."""
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def catalog(base: str, region: str) -> list[dict[str, Any]]:
    entries = []
    for type_, name, path in SERVICES:
        url = base + path
        entries.append(
            {
                "id": name,
                "type": type_,
                "name": name,
                "endpoints": [
                    {
                        "id": f"{name}-{interface}",
                        "interface": interface,
                        "region": region,
                        "region_id": region,
                        "url": url,
                    }
                    for interface in ("public", "internal", "admin")
                ],
            }
        )
    return entries
