"""Store fixtures: one empty database per test, on SQLite and on PostgreSQL.

``engine`` is parametrized over both back ends and upgraded with the real
migrations (never ``create_all``), so every store test runs against the schema
an operator gets. ``blank_engine`` is the same without the upgrade, for the
migration tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pcifleet.store.db import default_database_url, make_engine, upgrade
from tests.store.pg import fresh_schema, pg_url_or_skip

BACKENDS = ["sqlite", "postgresql"]


def _blank(backend: str, tmp_path: Path) -> Iterator[Engine]:
    if backend == "sqlite":
        engine = make_engine(default_database_url(tmp_path))
        yield engine
        engine.dispose()
        return
    with fresh_schema(pg_url_or_skip()) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def blank_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database (no tables) on each back end."""
    yield from _blank(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at the newest migration, on each back end."""
    for eng in _blank(request.param, tmp_path):
        upgrade(eng)
        yield eng


@pytest.fixture
def pg_engine(tmp_path: Path) -> Iterator[Engine]:
    """A database at the newest migration on PostgreSQL only (multi-process tests)."""
    for eng in _blank("postgresql", tmp_path):
        upgrade(eng)
        yield eng
