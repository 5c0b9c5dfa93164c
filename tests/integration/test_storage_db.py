"""Engine configuration: URL rewriting, SQLite pragmas and locking."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from amanah.adapters.storage.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, normalize_url, write_engine


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///./amanah.db", "sqlite:///./amanah.db"),
    ],
)
def test_normalize_url_points_postgres_at_psycopg(given: str, expected: str) -> None:
    """PostgreSQL URLs without a driver (or with psycopg2) use psycopg 3; others are unchanged."""
    assert normalize_url(given) == expected


def test_postgres_engine_uses_psycopg() -> None:
    """make_engine builds a psycopg engine from a plain postgresql:// URL without connecting."""
    engine = make_engine("postgresql://nobody@127.0.0.1:1/none")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_sqlite_engine_sets_pragmas_and_creates_parent_dir(tmp_path: Path) -> None:
    """A SQLite file engine uses WAL, enforces foreign keys, waits 10 s for locks, syncs NORMAL."""
    path = tmp_path / "nested" / "dir" / "amanah.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()
    assert path.exists()


def test_sqlite_lower_folds_non_ascii(tmp_path: Path) -> None:
    """SQLite's lower() is replaced by a Unicode-aware one, as PostgreSQL's is."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT lower('ÉCOLE Café')")).scalar() == "école café"
    engine.dispose()


def test_sqlite_in_memory_engine_keeps_one_database() -> None:
    """An in-memory SQLite URL shares one database across connections."""
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (7)"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM t")).scalar() == 7
    engine.dispose()


def test_sqlite_write_transaction_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    """A write_engine transaction holds SQLite's write lock from BEGIN, before any statement."""
    path = tmp_path / "lock.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with write_engine(engine).begin():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        engine.dispose()


def test_sqlite_rollback_discards_writes(tmp_path: Path) -> None:
    """With BEGIN issued by Amanah, a rolled-back transaction leaves nothing behind."""
    engine = make_engine(f"sqlite:///{tmp_path / 'rb.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        trans.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()
