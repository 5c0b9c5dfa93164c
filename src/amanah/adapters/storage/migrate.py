"""Run Amanah's Alembic migrations from Python, without an alembic.ini.

``migrate(url)`` upgrades to every head (other modules' migrations may branch from
``0001_initial``). It is idempotent, and safe when several processes start at once: the whole
upgrade runs in one transaction that first takes a lock (PostgreSQL advisory lock; SQLite's write
lock via ``BEGIN IMMEDIATE``), so a second caller waits, then finds nothing left to do. DDL is
transactional on both backends here, so a failed migration leaves the database as it was.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData

import amanah.adapters.storage as storage_package
from amanah.adapters.storage.db import advisory_lock, make_engine, normalize_url, write_engine
from amanah.adapters.storage.schema import metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_NAME = "amanah:migrations"


def full_metadata() -> MetaData:
    """The shared metadata after importing every ``schema*.py`` module, so it lists every table."""
    for module in pkgutil.iter_modules(storage_package.__path__):
        if module.name.startswith("schema"):
            importlib.import_module(f"{storage_package.__name__}.{module.name}")
    return metadata


def alembic_config(url: str = "") -> Config:
    """An Alembic config pointing at the packaged migrations (for ``command.*`` calls and tools)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    config.set_main_option("path_separator", "os")
    if url:
        # ConfigParser interpolation treats "%" specially (URL-encoded passwords contain it).
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


@contextmanager
def migration_transaction(url: str) -> Iterator[Connection]:
    """A connection inside a write transaction holding the migration lock; commits on success."""
    engine = make_engine(url)
    try:
        with write_engine(engine).begin() as conn:
            advisory_lock(conn, _LOCK_NAME)
            yield conn
    finally:
        engine.dispose()


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to all migration heads. Safe to call again and concurrently."""
    config = alembic_config(url)
    with migration_transaction(url) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")


def current_heads(url: str) -> set[str]:
    """The revisions the database at ``url`` is at (empty before the first migration)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads())
    finally:
        engine.dispose()


def script_heads() -> set[str]:
    """The head revisions of the packaged migration scripts."""
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())
