"""Opening the store for a command: engine plus migrations, or one clear error."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from pcifleet.cli.errors import CliError
from pcifleet.store.db import default_data_dir, default_database_url, make_engine, upgrade


def open_store(url: str | None, data_dir: Path | None = None) -> Engine:
    """The database at ``url`` (default: SQLite in ``data_dir``), migrated to the newest schema."""
    url = url or default_database_url(data_dir or default_data_dir())
    try:
        engine = make_engine(url)
        upgrade(engine)
    except Exception as exc:  # any driver or migration failure ends the command the same way
        raise CliError(f"database {url}: {exc}") from None
    return engine
