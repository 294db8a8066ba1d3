"""A private PostgreSQL schema per test, from ``PCIFLEET_TEST_PG_URL``.

Each test gets a fresh schema named ``t_<random>`` (``pcifleet.store.db.fresh_schema``)
and an engine whose connections put it first on ``search_path``; the schema is
dropped afterwards, so tests never see each other's rows and can run against one
shared database.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine

from pcifleet.store.db import fresh_schema
from tests.system import unavailable

PG_URL_ENV = "PCIFLEET_TEST_PG_URL"

__all__ = ["PG_URL_ENV", "engine_url", "fresh_schema", "pg_url_or_skip"]


def pg_url_or_skip() -> str:
    url = os.environ.get(PG_URL_ENV, "")
    if not url:
        unavailable(
            f"PostgreSQL: set {PG_URL_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:55432/"
            "pcifleet_test) to run the store tests against PostgreSQL"
        )
    return url


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)
