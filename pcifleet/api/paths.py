"""Where each service lives under the one listener, and the links built from it."""

from __future__ import annotations

COMPUTE = "/compute/v2.1"
NETWORK = "/networking/v2.0"
IMAGE = "/image/v2"


def flavor_links(base: str, flavor_id: str) -> list[dict[str, str]]:
    return [
        {"rel": "self", "href": f"{base}{COMPUTE}/flavors/{flavor_id}"},
        {"rel": "bookmark", "href": f"{base}/compute/flavors/{flavor_id}"},
    ]
