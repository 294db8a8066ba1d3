"""A private PostgreSQL schema per test, from ``PCIFLEET_TEST_PG_URL``.

Each test gets a fresh schema named ``t_<random>`` and an engine whose
connections put it first on ``search_path``; the schema is dropped afterwards, so
tests never see each other's rows and can run against one shared database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pcifleet.store.db import make_engine
from tests.system import unavailable

PG_URL_ENV = "PCIFLEET_TEST_PG_URL"


def pg_url_or_skip() -> str:
    url = os.environ.get(PG_URL_ENV, "")
    if not url:
        unavailable(
            f"PostgreSQL: set {PG_URL_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:55432/"
            "pcifleet_test) to run the store tests against PostgreSQL"
        )
    return url


def url_with_schema(url: str, schema: str) -> str:
    """``url`` with libpq options that select ``schema`` for every connection."""
    parsed = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """Create a new empty schema, yield a URL that uses it, drop it afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        yield url_with_schema(url, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def engine_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)
