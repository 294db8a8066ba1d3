"""Engines, sessions and schema upgrades for the store.

One code path serves both back ends: SQLite (the embedded default, a file in the
user's data directory, WAL mode so readers never block the one writer) and
PostgreSQL through psycopg 3 (several controllers sharing one database).
The schema is created and upgraded only by the Alembic migrations packaged in
``pcifleet/store/migrations``; there is no ``create_all`` path that could drift.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import platformdirs
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from pcifleet.store.private import private_dir, private_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DATABASE_FILE = "pcifleet.sqlite3"
# How long a SQLite writer waits for the write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000
# Table modules whose tables hang on Base.metadata; cloud.py belongs to the API issue.
TABLE_MODULES = ("pcifleet.store.models", "pcifleet.store.cloud")
# PostgreSQL advisory lock key taken while migrating ("pcif" in ASCII)
MIGRATION_LOCK = 0x70636966


def default_data_dir() -> Path:
    """The per-user data directory (``~/.local/share/pcifleet`` on Linux)."""
    return Path(platformdirs.user_data_dir("pcifleet", appauthor=False))


def default_database_url(data_dir: Path | None = None) -> str:
    """A SQLite URL for the database file in ``data_dir`` (created if missing)."""
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    if not directory.exists():
        private_dir(directory)
    return f"sqlite:///{(directory / DATABASE_FILE).resolve()}"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers see a snapshot while one writer commits; NORMAL sync is
    # durable across application crashes, which is what a control plane needs.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # The commit that crosses the checkpoint threshold copies the WAL back into
    # the database file; a larger threshold makes that rare on the claim path
    # (one claim in ~1,000 instead of one in ~100) at the price of a WAL file
    # of up to ~40 MB.
    cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings the store relies on.

    SQLite: WAL, foreign keys on, a busy timeout so concurrent writers queue
    instead of failing. PostgreSQL: ``postgresql://`` is mapped to psycopg 3.
    Extra keyword arguments go to ``create_engine``.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(
            f"database url {url!r} is not a URL (e.g. sqlite:////path/db.sqlite3 or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        connect_args.update(kwargs.pop("connect_args", {}))
        if parsed.database not in (None, "", ":memory:"):
            database = Path(parsed.database)
            if database.parent.is_dir():
                # SQLite gives its -wal and -shm files the database file's mode
                private_file(database)
            # Room for a scheduler's kept claim connection per thread plus readers.
            kwargs.setdefault("pool_size", 10)
            kwargs.setdefault("max_overflow", 40)
        else:
            # An in-memory database has a connection per thread, no sized pool.
            for option in ("pool_size", "max_overflow", "pool_timeout"):
                kwargs.pop(option, None)
        engine = create_engine(parsed, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 40)
        return create_engine(parsed, **kwargs)
    raise ValueError(f"database url: unsupported back end {backend!r} (use sqlite or postgresql)")


@contextmanager
def fresh_schema(url: str, prefix: str = "t_") -> Iterator[str]:
    """A new, empty PostgreSQL schema for the length of the block.

    Yields a URL whose connections put the schema first on ``search_path``; the
    schema and everything in it is dropped afterwards. Tests and benchmarks use
    it to share one database without seeing each other's rows.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"fresh_schema: {url!r} is not a PostgreSQL URL")
    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        scoped = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def load_table_modules() -> None:
    """Import every module that defines tables, so Base.metadata is complete."""
    for name in TABLE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations; no alembic.ini needed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _run(engine_or_url: Engine | str, action: Any, *args: Any) -> None:
    owned = isinstance(engine_or_url, str)
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Batch migrations rebuild SQLite tables by copy-and-drop; with
                # foreign keys on, dropping a parent would cascade into children.
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            elif conn.dialect.name == "postgresql":
                # Several API processes (uvicorn --workers) migrate as they start:
                # one at a time, the others then find the schema at head. Held to
                # the end of the session's use, released by the unlock below.
                conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                conn.commit()
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            try:
                action(cfg, *args)
                conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.rollback()
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
                    conn.commit()
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()
    finally:
        if owned:
            engine.dispose()


def upgrade(engine_or_url: Engine | str, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: the newest) with the migrations."""
    _run(engine_or_url, command.upgrade, revision)


def downgrade(engine_or_url: Engine | str, revision: str) -> None:
    """Take the schema back to ``revision`` (tests walk every step both ways)."""
    _run(engine_or_url, command.downgrade, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision among the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head
