"""Engines for SQLite and PostgreSQL, configured the same way wherever Amanah opens a database.

* SQLite: WAL journal, ``foreign_keys=ON``, a 10 s ``busy_timeout``, ``synchronous=NORMAL``, and a
  Unicode-aware ``lower()`` so case-insensitive searches behave as on PostgreSQL. Amanah issues
  ``BEGIN`` itself (the driver's implicit transactions are switched off), which makes DDL
  transactional and lets :func:`write_engine` start ``BEGIN IMMEDIATE`` transactions: a writer takes
  the write lock up front and waits ``busy_timeout`` for it, instead of failing with "database is
  locked" when it upgrades a read lock.
* PostgreSQL: ``postgresql://`` and ``postgres://`` URLs are rewritten to the psycopg 3 driver;
  the pool pre-pings and recycles connections.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

SQLITE_BUSY_TIMEOUT_MS = 10_000
_BEGIN_OPTION = "amanah_sqlite_begin"


def normalize_url(url: str) -> str:
    """Return ``url`` with PostgreSQL URLs pointed at the psycopg 3 driver; other URLs unchanged."""
    url = url.strip()
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_dumps(value: Any) -> str:
    # Arabic stays readable in the database; compact separators keep rows small.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _unicode_lower(value: str | bytes | int | float | None) -> str | bytes | int | float | None:
    """SQLite's built-in ``lower()`` only folds ASCII; this one folds all of Unicode, like PostgreSQL's."""
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create a synchronous SQLAlchemy engine for ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=echo)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(
            url,
            echo=echo,
            json_serializer=_json_dumps,
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    return create_engine(url, echo=echo, json_serializer=_json_dumps)


def _sqlite_engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": _json_dumps}
    if in_memory:
        # One shared connection, or every checkout would see a different empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        assert isinstance(dbapi_connection, sqlite3.Connection)
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION)
        # Straight on the sqlite3 connection: through exec_driver_sql a BEGIN cost as much CPU as a
        # query (SQLAlchemy's statement machinery), and every transaction, read or write, has one.
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")

    return engine


def write_engine(engine: Engine) -> Engine:
    """The same engine, whose transactions take SQLite's write lock at ``BEGIN`` (no-op elsewhere).

    Use it for every transaction that writes: ``with write_engine(engine).begin() as conn: ...``.
    """
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{_BEGIN_OPTION: "immediate"})


def advisory_lock(conn: Connection, name: str) -> None:
    """Serialise writers that share ``name`` until the current transaction ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, because a transaction
    from :func:`write_engine` already holds the database's single write lock.
    """
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# --- writes deferred to a caller's batch -----------------------------------------------------------

WriteOp = Callable[[Connection], Any]
_DEFERRED: ContextVar[list[WriteOp] | None] = ContextVar("amanah_deferred_writes", default=None)


def defer_writes(ops: list[WriteOp] | None) -> None:
    """Collect later :func:`defer_write` calls of this thread (context) into ``ops``; None stops.

    A channel worker that writes a batch of events in one transaction uses it so that rows a shared
    adapter would write on its own (a secure link minted by the guard) go into that transaction:
    stored with the reply that carries them, or not at all.
    """
    _DEFERRED.set(ops)


def defer_write(op: WriteOp) -> bool:
    """Add ``op`` to this thread's open batch (True); False when there is none (write it now)."""
    ops = _DEFERRED.get()
    if ops is None:
        return False
    ops.append(op)
    return True
