"""Golden files: one reviewed XML file per shape under tests/virt/golden/.

To accept a deliberate change, regenerate with ``PCIFLEET_UPDATE_GOLDEN=1 pytest
tests/virt/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.virt.shapes import golden_texts

GOLDEN = Path(__file__).parent / "golden"
TEXTS = golden_texts()


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_shape_matches_golden_file(name: str) -> None:
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("PCIFLEET_UPDATE_GOLDEN"):
        path.write_text(TEXTS[name], encoding="utf-8")
    assert path.read_text(encoding="utf-8") == TEXTS[name]


def test_no_stale_golden_files() -> None:
    on_disk = {p.stem for p in GOLDEN.glob("*.xml")}
    assert on_disk == set(TEXTS)
