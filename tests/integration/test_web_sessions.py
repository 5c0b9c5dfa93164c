"""Server-side web sessions and login throttling on every store: in memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from amanah.adapters.clock import FixedClock
from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.memory_web import InMemoryLoginFailureStore, InMemoryWebSessionStore
from amanah.adapters.storage.schema_web import login_failures
from amanah.adapters.storage.sql_core import SqlCoreBanking
from amanah.adapters.storage.sql_web import SqlLoginFailureStore, SqlWebSessionStore
from amanah.app.web_sessions import LoginFailureStore, LoginThrottle, WebSessions, WebSessionStore, token_hash
from tests.conftest import BACKENDS, PgDatabase, TestDatabases, _database

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


@dataclass
class Web:
    sessions: WebSessionStore
    failures: LoginFailureStore
    layla: int
    omar: int
    engine: Engine | None = None


@pytest.fixture(params=["memory", *BACKENDS])
def web(
    request: pytest.FixtureRequest, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]
) -> Iterator[Web]:
    """The session and failure stores: the fakes, and SQL on each backend (seeded with the demo bank)."""
    kind = str(request.param)
    if kind == "memory":
        yield Web(InMemoryWebSessionStore(), InMemoryLoginFailureStore(), layla=1, omar=2)
        return
    for url in _database(kind, "seeded", "web_sessions", databases, _pg_databases):
        eng = make_engine(url)
        core = SqlCoreBanking(eng)
        try:
            yield Web(
                SqlWebSessionStore(eng),
                SqlLoginFailureStore(eng),
                core.customer_by_username("layla").id,
                core.customer_by_username("omar").id,
                eng,
            )
        finally:
            eng.dispose()


def test_a_session_is_known_by_its_token_only_until_revoked(web: Web) -> None:
    """start() gives a token whose hash alone is stored; end() revokes it for good."""
    clock = FixedClock(T0)
    service = WebSessions(web.sessions, clock, idle_s=1800, absolute_s=12 * 3600)
    token = service.start(web.layla)
    assert service.customer(token) == web.layla
    stored = web.sessions.get(token_hash(token))
    assert stored is not None and stored.id != token and stored.expires_at == T0 + timedelta(hours=12)
    assert service.customer(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert (
        service.customer(None) is None and service.customer(12) is None and service.customer("é" * 43) is None
    )
    assert service.end(token) and not service.end(token)
    assert service.customer(token) is None


def test_activity_extends_a_session_up_to_its_absolute_end(web: Web) -> None:
    """Requests within the idle timeout keep a session; idleness or the absolute lifetime end it."""
    clock = FixedClock(T0)
    service = WebSessions(web.sessions, clock, idle_s=600, absolute_s=3600)
    token = service.start(web.omar)
    for _ in range(5):
        clock.advance(590)
        assert service.customer(token) == web.omar
    clock.advance(650)  # 3600 s after login (and 650 s idle)
    assert service.customer(token) is None
    idle = service.start(web.omar)
    clock.advance(600)
    assert service.customer(idle) is None


def test_purge_forgets_ended_sessions_and_keeps_live_ones(web: Web) -> None:
    """purge() deletes revoked, expired and idle sessions only; end_all() revokes a customer's."""
    clock = FixedClock(T0)
    service = WebSessions(web.sessions, clock, idle_s=600, absolute_s=3600)
    revoked, idle, live = service.start(web.layla), service.start(web.layla), service.start(web.omar)
    other = service.start(web.layla)
    service.end(revoked)
    clock.advance(500)
    assert service.customer(live) == web.omar and service.customer(other) == web.layla
    clock.advance(200)
    assert service.purge() == 2  # the revoked one and the idle one
    assert web.sessions.get(token_hash(idle)) is None and web.sessions.get(token_hash(revoked)) is None
    assert service.customer(live) == web.omar
    assert service.end_all(web.layla) == 1
    assert service.customer(other) is None and service.customer(live) == web.omar


def test_throttle_counts_per_username_and_per_address_within_the_window(web: Web) -> None:
    """5 failures pause a username, 20 an address; the pause lasts until the window has room."""
    clock = FixedClock(T0)
    throttle = LoginThrottle(web.failures, clock, secret="s" * 32)
    for _ in range(4):
        throttle.failed("Layla", "198.51.100.7")
        clock.advance(60)
    assert throttle.retry_after("layla", "198.51.100.8") is None
    throttle.failed("layla ", "198.51.100.8")
    wait = throttle.retry_after("LAYLA", "203.0.113.1")
    assert wait == 15 * 60 - 4 * 60  # until the oldest of the 5 leaves the window
    assert throttle.retry_after("omar", "198.51.100.7") is None
    clock.advance(wait)
    assert throttle.retry_after("layla", None) is None
    for i in range(20):
        throttle.failed(f"user{i}", "192.0.2.9")
    assert throttle.retry_after("omar", "192.0.2.9") is not None
    assert throttle.retry_after("omar", "192.0.2.10") is None


def test_a_successful_login_resets_the_usernames_count_not_the_addresss(web: Web) -> None:
    """succeeded() clears the username's failures; the address keeps its own count."""
    clock = FixedClock(T0)
    throttle = LoginThrottle(web.failures, clock, secret="s" * 32, max_per_address=5)
    for _ in range(4):
        throttle.failed("omar", "192.0.2.1")
    throttle.succeeded("omar")
    throttle.failed("omar", "192.0.2.2")
    assert throttle.retry_after("omar", "192.0.2.2") is None
    throttle.failed("sara", "192.0.2.1")
    assert throttle.retry_after("anyone", "192.0.2.1") is not None


def test_failures_are_stored_as_keyed_hashes_and_purged_after_the_window(web: Web) -> None:
    """No username or address is stored in clear; purge() drops failures older than the window."""
    clock = FixedClock(T0)
    throttle = LoginThrottle(web.failures, clock, secret="k" * 32)
    throttle.failed("my-password-typed-here", "192.0.2.1")
    clock.advance(10 * 60)
    throttle.failed("omar", None)
    if web.engine is not None:
        with web.engine.connect() as conn:
            rows = conn.execute(select(login_failures)).all()
        text = repr(rows)
        assert len(rows) == 3 and "my-password" not in text and "192.0.2.1" not in text
    clock.advance(6 * 60)
    assert throttle.purge() == 2
    assert throttle.retry_after("omar", None) is None
    if web.engine is not None:
        with web.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(login_failures)).scalar() == 1
