"""Secure links on every storage backend (and the in-memory fake): single use, expiry, binding."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from amanah.adapters.privacy.secure_links import (
    InMemorySecureLinks,
    LinkPurpose,
    Refusal,
    SecureLinkStore,
    SqlSecureLinks,
    content_digest,
    token_digest,
)
from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.schema import customers
from amanah.adapters.storage.schema_guard import secure_links
from tests.conftest import BACKENDS, PgDatabase, TestDatabases, _database

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
CONTENT = {
    "text": "• Current account (JO71 CBJO 0000 0000 0000 1234 5678 90): 1,200.000 JOD",
    "language": "en",
}


def _customer(engine: Engine, username: str) -> int:
    with engine.begin() as conn:
        result = conn.execute(
            customers.insert().values(
                username=username,
                display_name=username.title(),
                language="en",
                password_hash="x",
                created_at=NOW,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]


@pytest.fixture(params=["memory", *BACKENDS])
def store_and_customers(
    request: pytest.FixtureRequest, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]
) -> Iterator[tuple[SecureLinkStore, int, int]]:
    """A secure-link store with two customers: the in-memory fake and SQL on every backend."""
    kind = str(request.param)
    if kind == "memory":
        yield InMemorySecureLinks(), 1, 2
        return
    for url in _database(kind, "migrated", "secure_links", databases, _pg_databases):
        engine = make_engine(url)
        try:
            yield SqlSecureLinks(engine), _customer(engine, "alice"), _customer(engine, "bob")
        finally:
            engine.dispose()


def mint(store: SecureLinkStore, customer_id: int, ttl_s: int = 600) -> str:
    return store.mint(
        customer_id=customer_id, purpose=LinkPurpose.WITHHELD, content=CONTENT, now=NOW, ttl_s=ttl_s
    )


def test_a_link_opens_once_for_its_customer(store_and_customers: tuple[SecureLinkStore, int, int]) -> None:
    """The first redemption returns the content; the second is refused as used."""
    store, alice, _ = store_and_customers
    token = mint(store, alice)
    first = store.redeem(token, alice, NOW + timedelta(seconds=5))
    assert first.ok and first.link is not None
    assert dict(first.link.content) == CONTENT
    assert first.link.content_sha256 == content_digest(CONTENT)
    again = store.redeem(token, alice, NOW + timedelta(seconds=6))
    assert (again.ok, again.refusal) == (False, Refusal.USED)


def test_an_expired_link_is_refused(store_and_customers: tuple[SecureLinkStore, int, int]) -> None:
    """At or after its expiry time a link no longer opens, even unused."""
    store, alice, _ = store_and_customers
    token = mint(store, alice, ttl_s=600)
    assert store.redeem(token, alice, NOW + timedelta(seconds=600)).refusal is Refusal.EXPIRED
    assert store.redeem(mint(store, alice), alice, NOW + timedelta(seconds=599)).ok


def test_another_customer_cannot_open_it_nor_burn_it(
    store_and_customers: tuple[SecureLinkStore, int, int],
) -> None:
    """A wrong customer is refused and the link stays usable by its owner."""
    store, alice, bob = store_and_customers
    token = mint(store, alice)
    assert store.redeem(token, bob, NOW).refusal is Refusal.WRONG_CUSTOMER
    assert store.redeem(token, alice, NOW).ok


@pytest.mark.parametrize("token", ["", "nope", "a" * 500, "../../etc", "تجربة"])
def test_unknown_or_malformed_tokens_are_refused(
    store_and_customers: tuple[SecureLinkStore, int, int], token: str
) -> None:
    """Anything that is not a minted token is simply unknown."""
    store, alice, _ = store_and_customers
    mint(store, alice)
    assert store.redeem(token, alice, NOW).refusal is Refusal.UNKNOWN


def test_purge_deletes_only_expired_links(store_and_customers: tuple[SecureLinkStore, int, int]) -> None:
    """Expired links can be purged; live ones stay."""
    store, alice, _ = store_and_customers
    old = mint(store, alice, ttl_s=60)
    live = mint(store, alice, ttl_s=3600)
    assert store.purge(NOW + timedelta(seconds=120)) == 1
    assert store.redeem(old, alice, NOW).refusal is Refusal.UNKNOWN
    assert store.redeem(live, alice, NOW).ok


def test_only_the_token_hash_is_stored_and_content_is_cleared_on_use(engine: Engine) -> None:
    """The database never holds the token, and drops the content once shown (keeping its digest)."""
    store = SqlSecureLinks(engine)
    alice = _customer(engine, "alice")
    token = mint(store, alice)
    with engine.connect() as conn:
        row = conn.execute(select(secure_links)).mappings().one()
    assert row["token_sha256"] == token_digest(token)
    assert token not in str(dict(row))
    assert (row["expires_at"] - row["created_at"]).total_seconds() == 600
    assert store.redeem(token, alice, NOW).ok
    with engine.connect() as conn:
        row = conn.execute(select(secure_links)).mappings().one()
    assert row["content"] is None and row["used_at"] is not None
    assert row["content_sha256"] == content_digest(CONTENT)


def test_two_concurrent_redemptions_succeed_once(engine: Engine) -> None:
    """Two requests racing on the same link: exactly one gets the content."""
    store = SqlSecureLinks(engine)
    alice = _customer(engine, "alice")
    token = mint(store, alice)
    results: list[bool] = []
    barrier = threading.Barrier(2)

    def open_it() -> None:
        barrier.wait()
        results.append(store.redeem(token, alice, NOW).ok)

    threads = [threading.Thread(target=open_it) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [False, True]
