"""Shared fixtures.

Databases
---------
Every database fixture is parametrised over the backends: SQLite (a file in a temporary directory)
always, and PostgreSQL when ``AMANAH_TEST_POSTGRES_URL`` is set, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``. PostgreSQL parameters carry
``@pytest.mark.postgres``.

* ``db_url``: an empty database.
* ``migrated_url`` / ``engine``: a database after ``migrate()``, with no rows.
* ``seeded_url`` / ``seeded_engine``: migrated, holding the demo bank at :data:`DEMO_ANCHOR`.
* ``demo_banking``: the demo bank behind the ``CoreBanking``/``Authenticator`` ports, on the
  in-memory fake *and* every SQL backend: for contract tests that must hold for both.
* ``conversation_store``: an empty ``ConversationStore``, likewise on the fake and every backend.

Isolation: every test starts from exactly that state, whatever earlier tests did.
* SQLite: each test gets its own file, copied from a per-session template (milliseconds).
* PostgreSQL: the admin URL is only used to create and drop databases. Each test module gets its
  own uniquely named databases (one per fixture above that it uses, created with AUTOCOMMIT and
  dropped at the end of the module), so parallel runs never clash. Before each test the database is
  reset in place: for ``db_url`` the ``public`` schema is recreated empty; otherwise the rows of
  every table are deleted (and, for seeded ones, the demo rows restored from a snapshot) and the id
  sequences rewound. That costs tens of milliseconds, where ``CREATE DATABASE`` costs about a second.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from amanah.adapters.core.demo import DemoBank, demo_bank, load_demo_in_memory, seed_demo
from amanah.adapters.storage.db import make_engine, normalize_url
from amanah.adapters.storage.memory import (
    InMemoryAuthenticator,
    InMemoryConversationStore,
    InMemoryCoreBanking,
)
from amanah.adapters.storage.migrate import migrate, script_heads
from amanah.adapters.storage.sql_conversations import SqlConversationStore
from amanah.adapters.storage.sql_core import SqlAuthenticator, SqlCoreBanking
from amanah.app.ports import Authenticator, ConversationStore, CoreBanking

POSTGRES_URL_ENV = "AMANAH_TEST_POSTGRES_URL"
DEMO_ANCHOR = date(2026, 3, 15)  # the demo history in seeded databases ends on this day


def _backend_params() -> list[Any]:
    params: list[Any] = ["sqlite"]
    if os.environ.get(POSTGRES_URL_ENV):
        params.append(pytest.param("postgresql", marks=pytest.mark.postgres))
    return params


BACKENDS = _backend_params()


@functools.cache
def _script_heads() -> frozenset[str]:
    return frozenset(script_heads())


@dataclass
class PgDatabase:
    """One PostgreSQL test database, reset in place before each test that uses it."""

    url: str
    owner: TestDatabases
    engine: Engine = field(init=False)
    _tables: tuple[str, ...] = ()
    _reflected: MetaData | None = None

    def __post_init__(self) -> None:
        self.engine = make_engine(self.url)

    def close(self) -> None:
        self.engine.dispose()

    def _drop_schema(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        self._reflected = None

    def _metadata(self) -> MetaData:
        names = tuple(sorted(inspect(self.engine).get_table_names()))
        if self._reflected is None or names != self._tables:
            self._reflected = MetaData()
            self._reflected.reflect(self.engine)
            self._tables = names
        return self._reflected

    def reset(self, kind: str) -> None:
        """Bring the database to ``empty``, ``migrated`` (no rows) or ``seeded``."""
        if kind == "empty":
            self._drop_schema()
            return
        with self.engine.connect() as conn:
            heads = set(MigrationContext.configure(conn).get_current_heads())
        if heads != _script_heads():
            self._drop_schema()
            migrate(self.url)
        snapshot = self.owner.pg_seed_snapshot(self) if kind == "seeded" else {}
        tables = [t for t in self._metadata().sorted_tables if t.name != "alembic_version"]
        with self.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            for table in reversed(tables):
                conn.execute(table.delete())
            for table in tables:
                if snapshot.get(table.name):
                    conn.execute(table.insert(), snapshot[table.name])
                if "id" in table.c:
                    next_id = (conn.execute(select(func.max(table.c.id))).scalar() or 0) + 1
                    conn.execute(
                        text("SELECT setval(pg_get_serial_sequence(:table, 'id'), :next_id, false)"),
                        {"table": table.name, "next_id": next_id},
                    )

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table (except alembic_version), for snapshots."""
        tables = [t for t in self._metadata().sorted_tables if t.name != "alembic_version"]
        with self.engine.connect() as conn:
            return {
                t.name: [dict(r) for r in conn.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
                for t in tables
            }


@dataclass
class TestDatabases:
    """Creates and drops uniquely named test databases; keeps per-session templates and snapshots."""

    __test__ = False  # not a test class, despite the name

    root: Path
    postgres_admin_url: str | None
    _templates: dict[str, str] = field(default_factory=dict)
    _pg_seeded: dict[str, list[dict[str, Any]]] | None = None
    _prefix: str = field(default_factory=lambda: f"amanah_t{os.getpid()}_{uuid.uuid4().hex[:6]}")

    # -- SQLite: a file per test, copied from a template ------------------------------------------

    def sqlite(self, kind: str) -> str:
        path = self.root / f"{self._prefix}_{uuid.uuid4().hex[:10]}.db"
        if kind != "empty":
            source = make_url(self._sqlite_template(kind)).database
            assert source is not None
            shutil.copyfile(source, path)
        return f"sqlite:///{path}"

    def _sqlite_template(self, kind: str) -> str:
        if kind not in self._templates:
            url = self._sqlite_template("migrated") if kind == "seeded" else self.sqlite("empty")
            if kind == "seeded":
                url = self._copy_sqlite(url)
            engine = make_engine(url)
            try:
                if kind == "migrated":
                    migrate(url)
                elif kind == "seeded":
                    seed_demo(engine, DEMO_ANCHOR)
                else:
                    raise ValueError(kind)
                with engine.connect() as conn:  # fold the WAL into the file so a copy carries everything
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                engine.dispose()
            self._templates[kind] = url
        return self._templates[kind]

    def _copy_sqlite(self, url: str) -> str:
        path = self.root / f"{self._prefix}_{uuid.uuid4().hex[:10]}.db"
        source = make_url(url).database
        assert source is not None
        shutil.copyfile(source, path)
        return f"sqlite:///{path}"

    # -- PostgreSQL: databases per module, reset in place -----------------------------------------

    def _admin(self) -> Engine:
        if not self.postgres_admin_url:
            raise RuntimeError(f"{POSTGRES_URL_ENV} is not set")
        return create_engine(normalize_url(self.postgres_admin_url), isolation_level="AUTOCOMMIT")

    def create_postgres(self) -> PgDatabase:
        name = f"{self._prefix}_{uuid.uuid4().hex[:10]}"
        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            admin.dispose()
        url = make_url(normalize_url(self.postgres_admin_url or "")).set(database=name)
        return PgDatabase(url.render_as_string(hide_password=False), self)

    def drop(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
            return
        admin = self._admin()
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        finally:
            admin.dispose()

    def pg_seed_snapshot(self, db: PgDatabase) -> dict[str, list[dict[str, Any]]]:
        """The rows of a freshly seeded demo bank, taken once per session (seeding hashes passwords)."""
        if self._pg_seeded is None:
            db.reset("migrated")
            seed_demo(db.engine, DEMO_ANCHOR)
            self._pg_seeded = db.dump()
        return self._pg_seeded

    def cleanup(self) -> None:
        for url in self._templates.values():
            self.drop(url)
        self._templates.clear()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabases]:
    dbs = TestDatabases(tmp_path_factory.mktemp("db"), os.environ.get(POSTGRES_URL_ENV))
    yield dbs
    dbs.cleanup()


@pytest.fixture(scope="module")
def _pg_databases(databases: TestDatabases) -> Iterator[dict[str, PgDatabase]]:
    """This module's PostgreSQL databases, one per role; dropped when the module is done."""
    created: dict[str, PgDatabase] = {}
    yield created
    for db in created.values():
        db.close()
        databases.drop(db.url)


def _database(
    backend: str, kind: str, role: str, databases: TestDatabases, pg: dict[str, PgDatabase]
) -> Iterator[str]:
    if backend == "sqlite":
        url = databases.sqlite(kind)
        yield url
        databases.drop(url)
        return
    assert backend == "postgresql"
    if role not in pg:
        pg[role] = databases.create_postgres()
    pg[role].reset(kind)
    yield pg[role].url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend under test: ``sqlite`` or ``postgresql``."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]) -> Iterator[str]:
    """An empty database of ``backend``, for this test alone."""
    yield from _database(backend, "empty", "db_url", databases, _pg_databases)


@pytest.fixture
def migrated_url(
    backend: str, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]
) -> Iterator[str]:
    """A database with every migration applied and no rows, for this test alone."""
    yield from _database(backend, "migrated", "migrated_url", databases, _pg_databases)


@pytest.fixture
def engine(migrated_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database."""
    eng = make_engine(migrated_url)
    yield eng
    eng.dispose()


@pytest.fixture
def seeded_url(backend: str, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]) -> Iterator[str]:
    """A migrated database holding the demo bank at :data:`DEMO_ANCHOR`, for this test alone."""
    yield from _database(backend, "seeded", "seeded_url", databases, _pg_databases)


@pytest.fixture
def seeded_engine(seeded_url: str) -> Iterator[Engine]:
    """An engine on a database holding the demo bank at :data:`DEMO_ANCHOR`."""
    eng = make_engine(seeded_url)
    yield eng
    eng.dispose()


@dataclass(frozen=True)
class DemoBanking:
    """The demo bank behind the ports, on one implementation."""

    kind: str  # "memory", "sqlite" or "postgresql"
    core: CoreBanking
    auth: Authenticator
    bank: DemoBank
    engine: Engine | None = None


@pytest.fixture(params=["memory", *BACKENDS])
def demo_banking(
    request: pytest.FixtureRequest, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]
) -> Iterator[DemoBanking]:
    """The demo bank at DEMO_ANCHOR behind CoreBanking/Authenticator: in-memory fake and SQL."""
    kind = str(request.param)
    bank = demo_bank(DEMO_ANCHOR)
    if kind == "memory":
        core = InMemoryCoreBanking()
        auth = InMemoryAuthenticator(core)
        load_demo_in_memory(bank, core, auth)
        yield DemoBanking(kind, core, auth, bank)
        return
    for url in _database(kind, "seeded", "demo_banking", databases, _pg_databases):
        eng = make_engine(url)
        try:
            yield DemoBanking(kind, SqlCoreBanking(eng), SqlAuthenticator(eng), bank, eng)
        finally:
            eng.dispose()


@pytest.fixture(params=["memory", *BACKENDS])
def conversation_store(
    request: pytest.FixtureRequest, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]
) -> Iterator[ConversationStore]:
    """An empty ConversationStore: the in-memory fake and the SQL adapter on every backend."""
    kind = str(request.param)
    if kind == "memory":
        yield InMemoryConversationStore()
        return
    for url in _database(kind, "migrated", "conversation_store", databases, _pg_databases):
        eng = make_engine(url)
        try:
            yield SqlConversationStore(eng)
        finally:
            eng.dispose()
