"""Where the API keeps uploaded image files (the image API writes them, agents
download them)."""

from __future__ import annotations

from pathlib import Path


def image_path(data_dir: Path, image_id: str) -> Path:
    # ids come from the store (checked on create): no separators can reach the path
    return data_dir / "images" / image_id
