"""Fixtures of the host-layer tests: real-kernel sysfs captures and generated hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcifleet.host.snapshot import materialize_snapshot

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
K61 = "debian12-k6.1-iommu-udev"
K61_NOIOMMU = "debian12-k6.1-noiommu-noudev"
K612_7VFS = "debian12-k6.12-iommu-udev-7vfs"


def real_sysfs(variant: str, tmp_path: Path) -> Path:
    """A capture of a real kernel's /sys unpacked with real symlinks; returns its root."""
    return materialize_snapshot(FIXTURES / variant / "sys", tmp_path / variant / "sys")


@pytest.fixture
def k61(tmp_path: Path) -> Path:
    return real_sysfs(K61, tmp_path)
