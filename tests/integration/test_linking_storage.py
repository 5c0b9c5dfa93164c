"""The LinkStore port: the in-memory fake and the SQL adapter on every backend obey the same rules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.agreements import load_agreements
from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.memory_linking import InMemoryLinkStore
from amanah.adapters.storage.schema_linking import channel_consents
from amanah.adapters.storage.sql_core import SqlCoreBanking
from amanah.adapters.storage.sql_linking import SqlLinkStore
from amanah.app.linking import LinkingService, hash_secret
from amanah.app.ports import LinkStore
from amanah.domain.conversation import Channel
from amanah.domain.linking import ConsentMethod, GrantKind, LinkGrant, WithdrawalMethod
from tests.conftest import BACKENDS, PgDatabase, TestDatabases, _database

T0 = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
WA_ID = "15550002222"
PSID = "2000000000000002"


@dataclass
class Harness:
    kind: str
    store: LinkStore
    layla: int
    omar: int
    engine: Engine | None = None


@pytest.fixture(params=["memory", *BACKENDS])
def harness(
    request: pytest.FixtureRequest, databases: TestDatabases, _pg_databases: dict[str, PgDatabase]
) -> Iterator[Harness]:
    """A LinkStore beside the demo customers: the fake, and SQL on each backend (seeded)."""
    kind = str(request.param)
    if kind == "memory":
        yield Harness(kind, InMemoryLinkStore(), layla=1, omar=2)
        return
    for url in _database(kind, "seeded", "link_store", databases, _pg_databases):
        eng = make_engine(url)
        core = SqlCoreBanking(eng)
        try:
            yield Harness(
                kind,
                SqlLinkStore(eng),
                core.customer_by_username("layla").id,
                core.customer_by_username("omar").id,
                eng,
            )
        finally:
            eng.dispose()


def _service(store: LinkStore, clock: FixedClock) -> LinkingService:
    return LinkingService(store, load_agreements(), clock, base_url="https://bank.example", secret="s")


def _bind(store: LinkStore, channel: Channel, user_id: str, customer_id: int, at: datetime = T0) -> int:
    return store.bind(
        channel=channel,
        user_id=user_id,
        customer_id=customer_id,
        agreement_id="meta-whatsapp",
        agreement_version="2026-11-01",
        method=ConsentMethod.WHATSAPP_LINK,
        given_at=at,
        at=at,
    ).consent_id


def _grant(token: str, expires: datetime = T0 + timedelta(minutes=5)) -> LinkGrant:
    return LinkGrant(
        kind=GrantKind.WHATSAPP_TOKEN,
        token_hash=hash_secret(token),
        channel=Channel.WHATSAPP,
        issued_at=T0,
        expires_at=expires,
        user_id=WA_ID,
    )


def test_consent_records_survive_withdrawal(harness: Harness) -> None:
    """Withdrawing removes the binding at once; the consent record stays with when and how."""
    clock = FixedClock(T0)
    service = _service(harness.store, clock)
    code = service.issue_authorization_code(harness.omar, "ALT-token", psid=PSID)
    clock.advance(5)
    binding = service.complete_messenger(PSID, code)
    assert binding is not None and service.customer_for(Channel.MESSENGER, PSID) == harness.omar
    clock.advance(3600)
    assert service.unlink(Channel.MESSENGER, PSID, WithdrawalMethod.PLATFORM)
    assert service.binding(Channel.MESSENGER, PSID) is None
    [record] = service.consents(harness.omar)
    assert record.id == binding.consent_id
    assert record.method is ConsentMethod.MESSENGER_ACCOUNT_LINKING
    assert (record.channel, record.user_id) == (Channel.MESSENGER, PSID)
    assert (record.agreement_id, record.agreement_version) == ("meta-messenger", "2026-11-01")
    assert record.given_at == T0
    assert record.withdrawn_at == T0 + timedelta(seconds=3605)
    assert record.withdrawn_how is WithdrawalMethod.PLATFORM
    assert service.consents(harness.layla) == []


def test_relinking_keeps_every_record_newest_first(harness: Harness) -> None:
    """Linking the same user again withdraws the old consent as 'relinked'; records list newest first."""
    first = _bind(harness.store, Channel.WHATSAPP, WA_ID, harness.layla)
    second = _bind(harness.store, Channel.WHATSAPP, WA_ID, harness.layla, T0 + timedelta(days=1))
    records = harness.store.consents(harness.layla)
    assert [r.id for r in records] == [second, first]
    assert records[1].withdrawn_how is WithdrawalMethod.RELINKED and records[0].active
    [live] = harness.store.bindings_of(harness.layla)
    assert live.consent_id == second and live.linked_at == T0 + timedelta(days=1)


def test_bindings_of_lists_only_live_bindings(harness: Harness) -> None:
    """A customer's bindings are the live ones, oldest first, with their agreement."""
    a = _bind(harness.store, Channel.WHATSAPP, WA_ID, harness.layla)
    b = _bind(harness.store, Channel.MESSENGER, PSID, harness.layla)
    _bind(harness.store, Channel.WHATSAPP, "15550009999", harness.omar)
    assert [x.consent_id for x in harness.store.bindings_of(harness.layla)] == [a, b]
    harness.store.unbind(Channel.WHATSAPP, WA_ID, WithdrawalMethod.WEBSITE, T0)
    [left] = harness.store.bindings_of(harness.layla)
    assert (left.consent_id, left.agreement_id, left.method) == (
        b,
        "meta-whatsapp",
        ConsentMethod.WHATSAPP_LINK,
    )
    assert harness.store.unbind(Channel.WHATSAPP, WA_ID, WithdrawalMethod.WEBSITE, T0) is None


def test_unbind_consent_removes_only_the_binding_made_under_that_consent(harness: Harness) -> None:
    """Withdrawing by consent id needs the owner's id and leaves a newer binding of the user alone."""
    store = harness.store
    first = _bind(store, Channel.WHATSAPP, WA_ID, harness.layla)
    assert store.unbind_consent(first, harness.omar, WithdrawalMethod.WEBSITE, T0) is None  # not omar's
    second = _bind(store, Channel.WHATSAPP, WA_ID, harness.omar, T0 + timedelta(minutes=1))  # relinked
    assert store.unbind_consent(first, harness.layla, WithdrawalMethod.WEBSITE, T0) is None
    live = store.binding(Channel.WHATSAPP, WA_ID)
    assert live is not None and live.consent_id == second
    removed = store.unbind_consent(second, harness.omar, WithdrawalMethod.WEBSITE, T0 + timedelta(hours=1))
    assert removed is not None and removed.consent_id == second
    assert store.binding(Channel.WHATSAPP, WA_ID) is None
    [record] = store.consents(harness.omar)
    assert record.withdrawn_how is WithdrawalMethod.WEBSITE and record.withdrawn_at == T0 + timedelta(hours=1)
    assert store.consents(harness.layla)[0].withdrawn_how is WithdrawalMethod.RELINKED


def test_a_grant_is_redeemed_once_and_never_after_expiry(harness: Harness) -> None:
    """Peeking changes nothing; the first redemption wins; expired grants cannot be redeemed."""
    harness.store.add_grant(_grant("tok-a"))
    harness.store.add_grant(_grant("tok-b"))
    assert harness.store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret("tok-a")) is not None
    used = harness.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret("tok-a"), T0)
    assert used is not None and used.used_at == T0 and used.user_id == WA_ID
    assert harness.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret("tok-a"), T0) is None
    late = T0 + timedelta(minutes=5)
    assert harness.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret("tok-b"), late) is None
    assert harness.store.redeem_grant(GrantKind.MESSENGER_CODE, hash_secret("tok-b"), T0) is None
    assert harness.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret("nope"), T0) is None


def test_concurrent_redemptions_let_exactly_one_win(harness: Harness) -> None:
    """Two webhook deliveries racing with the same secret: one redemption succeeds, the other fails."""
    harness.store.add_grant(_grant("race"))
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def redeem() -> None:
        barrier.wait()
        results.append(
            harness.store.redeem_grant(GrantKind.WHATSAPP_TOKEN, hash_secret("race"), T0) is not None
        )

    threads = [threading.Thread(target=redeem) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [False, False, False, True]


def test_purge_removes_only_expired_grants(harness: Harness) -> None:
    """purge_grants deletes grants that expired before the cut-off and keeps the rest."""
    harness.store.add_grant(_grant("old", expires=T0))
    harness.store.add_grant(_grant("new", expires=T0 + timedelta(days=2)))
    assert harness.store.purge_grants(T0 + timedelta(days=1)) == 1
    assert harness.store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret("old")) is None
    assert harness.store.grant(GrantKind.WHATSAPP_TOKEN, hash_secret("new")) is not None


def test_naive_timestamps_are_refused(harness: Harness) -> None:
    """Every stored time is timezone-aware UTC; a naive one is a bug and is refused."""
    with pytest.raises(ValueError, match="aware"):
        harness.store.unbind(Channel.WHATSAPP, WA_ID, WithdrawalMethod.CHAT, datetime(2026, 1, 1))


def test_the_database_refuses_to_rewrite_a_consent_record(seeded_engine: Engine) -> None:
    """Consent records are proof: changing one, or withdrawing it twice, is refused by the database."""
    store = SqlLinkStore(seeded_engine)
    layla = SqlCoreBanking(seeded_engine).customer_by_username("layla").id
    consent_id = _bind(store, Channel.WHATSAPP, WA_ID, layla)
    with pytest.raises(DBAPIError, match="only be withdrawn"), seeded_engine.begin() as conn:
        conn.execute(
            update(channel_consents).where(channel_consents.c.id == consent_id).values(agreement_version="x")
        )
    store.unbind(Channel.WHATSAPP, WA_ID, WithdrawalMethod.CHAT, T0)
    with pytest.raises(DBAPIError, match="only be withdrawn"), seeded_engine.begin() as conn:
        conn.execute(
            update(channel_consents)
            .where(channel_consents.c.id == consent_id)
            .values(withdrawn_at=T0 + timedelta(days=1), withdrawn_how="website")
        )
    [record] = store.consents(layla)
    assert record.withdrawn_how is WithdrawalMethod.CHAT and record.agreement_version == "2026-11-01"


def test_a_withdrawal_needs_both_when_and_how(seeded_engine: Engine) -> None:
    """A check constraint refuses a withdrawal time without a method."""
    store = SqlLinkStore(seeded_engine)
    layla = SqlCoreBanking(seeded_engine).customer_by_username("layla").id
    consent_id = _bind(store, Channel.WHATSAPP, WA_ID, layla)
    with pytest.raises(IntegrityError), seeded_engine.begin() as conn:
        conn.execute(
            update(channel_consents).where(channel_consents.c.id == consent_id).values(withdrawn_at=T0)
        )
