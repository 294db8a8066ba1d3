"""Alembic environment: runs the packaged migrations on a connection or URL.

``pcifleet.store.db.upgrade`` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line may instead
give ``sqlalchemy.url``. Only online mode exists: the store never emits SQL files.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pcifleet.store.base import Base
from pcifleet.store.db import load_table_modules, make_engine

load_table_modules()
config = context.config
target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection given and sqlalchemy.url is not set")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
