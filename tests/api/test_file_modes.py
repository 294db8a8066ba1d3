"""What pcifleet writes is its owner's alone: the SQLite database (with its WAL
and shared-memory files) and uploaded image files are 0600, their directories
0700, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pcifleet.store.db import default_database_url, make_engine, upgrade
from tests.api.conftest import Tokens
from tests.api.helpers import Api


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_the_database_and_its_directory_are_private(tmp_path: Path, open_umask: None) -> None:
    data_dir = tmp_path / "data"
    engine = make_engine(default_database_url(data_dir))
    upgrade(engine)
    with engine.connect() as conn:  # writes the WAL
        conn.execute(text("SELECT 1"))
        db = Path(engine.url.database or "")
        files = [p for p in db.parent.iterdir() if p.name.startswith(db.name)]
        assert {p.name for p in files} >= {db.name, db.name + "-wal"}
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    engine.dispose()
    assert mode(data_dir) == 0o700


def test_an_existing_open_database_is_narrowed(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "old.sqlite3"
    db.touch(mode=0o644)
    make_engine(f"sqlite:///{db}").dispose()
    assert mode(db) == 0o600


def test_uploaded_images_are_private(api: Api, tokens: Tokens, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        body = {"name": "i", "disk_format": "raw", "container_format": "bare"}
        image = api.post("/image/v2/images", token=tokens.demo, json=body).json()
        resp = api.put(f"/image/v2/images/{image['id']}/file", token=tokens.demo, content=b"d")
        assert resp.status_code == 204, resp.text
    finally:
        os.umask(old)
    # the app's data directory is the test's tmp_path (see conftest.make_settings)
    path = tmp_path / "images" / image["id"]
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
