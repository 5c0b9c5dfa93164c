"""The disclosure ledger in SQL, on every backend: appends chain, and tampering is found and named."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select, text, update
from sqlalchemy.exc import DBAPIError

from amanah.adapters.clock import FixedClock
from amanah.adapters.privacy.agreements import load_agreements
from amanah.adapters.privacy.guard import AgreementGuard
from amanah.adapters.privacy.ledger import GENESIS, Disclosure, ProblemKind, SqlDisclosureLedger, chain_hash
from amanah.adapters.privacy.secure_links import InMemorySecureLinks
from amanah.adapters.storage.db import write_engine
from amanah.adapters.storage.schema_guard import disclosures
from amanah.domain.banking import CardStatus
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.replies import CardLine, CardNumberValue, CardStatusValue, Reply

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def disclosure(i: int, customer_id: int = 1, channel: Channel = Channel.MESSENGER) -> Disclosure:
    return Disclosure(
        at=T0 + timedelta(minutes=i, microseconds=123_456),
        channel=channel,
        customer_id=customer_id,
        user_id=f"psid-{customer_id}",
        categories={
            DataCategory.PUBLIC: Treatment.ALLOW,
            DataCategory.ACCOUNT_BALANCE: Treatment.SECURE_LINK,
        },
        agreement_id="meta-messenger",
        agreement_version="2026-11-01",
        body_sha256=f"{i:064x}",
    )


@pytest.fixture
def ledger(engine: Engine) -> SqlDisclosureLedger:
    """A SQL ledger holding six records."""
    ledger = SqlDisclosureLedger(engine)
    for i in range(1, 7):
        ledger.append(None, disclosure(i))
    return ledger


@contextmanager
def tampering(engine: Engine) -> Iterator[None]:
    """Drop the append-only trigger (as someone with owner rights could), then put it back."""
    postgres = engine.dialect.name == "postgresql"
    with write_engine(engine).begin() as conn:
        conn.execute(text("DROP TRIGGER trg_disclosures_no_update" + (" ON disclosures" if postgres else "")))
    try:
        yield
    finally:
        with write_engine(engine).begin() as conn:
            body = (
                "FOR EACH ROW EXECUTE FUNCTION amanah_refuse_update()"
                if postgres
                else "BEGIN SELECT RAISE(ABORT, 'disclosures is append-only'); END"
            )
            conn.execute(
                text(f"CREATE TRIGGER trg_disclosures_no_update BEFORE UPDATE ON disclosures {body}")
            )


def problems(ledger: SqlDisclosureLedger) -> set[tuple[ProblemKind, int]]:
    return {(p.kind, p.seq) for p in ledger.verify()}


def move(engine: Engine, moves: dict[int, int]) -> None:
    """Renumber records (through free numbers, so the primary key never collides)."""
    with write_engine(engine).begin() as conn:
        for old in moves:
            conn.execute(update(disclosures).where(disclosures.c.seq == old).values(seq=old + 10_000))
        for old, new in moves.items():
            conn.execute(update(disclosures).where(disclosures.c.seq == old + 10_000).values(seq=new))


def test_appends_chain_and_round_trip_exactly(ledger: SqlDisclosureLedger) -> None:
    """Stored records read back with the same hash (timestamps to the microsecond) and verify clean."""
    rows = ledger.records()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == GENESIS and rows[1].prev_hash == rows[0].hash
    assert all(r.computed_hash() == r.hash for r in rows)
    assert rows[0].at == T0 + timedelta(minutes=1, microseconds=123_456)
    assert ledger.verify() == []
    head = ledger.head()
    assert head is not None and head.seq == 6


def test_the_database_refuses_updates(ledger: SqlDisclosureLedger) -> None:
    """disclosures is append-only: an UPDATE is refused by a trigger."""
    with pytest.raises(DBAPIError, match="append-only"), write_engine(ledger.engine).begin() as conn:
        conn.execute(update(disclosures).values(categories={"public": "allow"}))


def test_a_changed_record_is_detected(ledger: SqlDisclosureLedger) -> None:
    """Hiding that a balance went out (editing categories) is reported as record #3 changed."""
    with tampering(ledger.engine), write_engine(ledger.engine).begin() as conn:
        conn.execute(update(disclosures).where(disclosures.c.seq == 3).values(categories={"public": "allow"}))
    assert problems(ledger) == {(ProblemKind.CHANGED, 3)}


def test_a_deleted_record_is_detected(ledger: SqlDisclosureLedger) -> None:
    """Deleting record #3 is reported as #3 missing."""
    with write_engine(ledger.engine).begin() as conn:
        conn.execute(delete(disclosures).where(disclosures.c.seq == 3))
    found = ledger.verify()
    assert {(p.kind, p.seq) for p in found} == {(ProblemKind.DELETED, 4)}
    assert "#3" in found[0].message


def test_an_inserted_record_is_detected(ledger: SqlDisclosureLedger) -> None:
    """A forged record slipped in as #3 (with a correct hash, the rest renumbered) is reported as inserted."""
    engine = ledger.engine
    second = ledger.records()[1]
    fake = disclosure(99, customer_id=42)
    with tampering(engine):
        move(engine, {seq: seq + 1 for seq in range(6, 2, -1)})
        with write_engine(engine).begin() as conn:
            conn.execute(
                disclosures.insert().values(
                    seq=3,
                    at=fake.at,
                    channel=fake.channel.value,
                    customer_id=fake.customer_id,
                    user_id=fake.user_id,
                    categories={c.value: t.value for c, t in fake.categories.items()},
                    agreement_id=fake.agreement_id,
                    agreement_version=fake.agreement_version,
                    body_sha256=fake.body_sha256,
                    prev_hash=second.hash,
                    hash=chain_hash(fake, second.hash),
                )
            )
    assert [r.seq for r in ledger.records()] == [1, 2, 3, 4, 5, 6, 7]
    assert problems(ledger) == {(ProblemKind.INSERTED, 3)}


def test_reordered_records_are_detected(ledger: SqlDisclosureLedger) -> None:
    """Swapping #3 and #4 is reported as both out of order."""
    with tampering(ledger.engine):
        move(ledger.engine, {3: 4, 4: 3})
    assert problems(ledger) == {(ProblemKind.REORDERED, 3), (ProblemKind.REORDERED, 4)}


def test_concurrent_appends_never_fork_the_chain(engine: Engine) -> None:
    """Four writers appending at once give one intact chain with consecutive numbers."""
    ledger = SqlDisclosureLedger(engine)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(8):
                ledger.append(None, disclosure(w * 100 + i, customer_id=w))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [r.seq for r in ledger.records()] == list(range(1, 33))
    assert ledger.verify() == []


def test_the_record_belongs_to_the_callers_transaction(engine: Engine) -> None:
    """guard.record() writes in the outbox's transaction: if that rolls back, no record remains."""
    ledger = SqlDisclosureLedger(engine)
    guard = AgreementGuard(
        load_agreements(), InMemorySecureLinks(), ledger, "https://bank.example", FixedClock(T0)
    )
    reply = Reply((CardLine("Debit", CardNumberValue("4242", "Visa"), CardStatusValue(CardStatus.ACTIVE)),))
    prepared = guard.prepare(Channel.MESSENGER, 5, reply)
    with pytest.raises(RuntimeError), write_engine(engine).begin() as conn:
        guard.record(conn, prepared=prepared, user_id="psid-5", body=b"{}", at=T0)
        raise RuntimeError("the outbox insert failed")
    assert ledger.records() == []
    with write_engine(engine).begin() as conn:
        guard.record(conn, prepared=prepared, user_id="psid-5", body=b"{}", at=T0)
    (record,) = ledger.records()
    assert record.categories == {"public": "allow", "card.number": "mask", "card.status": "allow"}


def test_many_appends_in_one_transaction_chain_and_a_rolled_back_one_leaves_no_trace(engine: Engine) -> None:
    """A batch of appends in one transaction (the head read once) gives consecutive, chained records;
    after a rolled-back batch the next transaction continues from the stored head, not from the lost one."""
    ledger = SqlDisclosureLedger(engine)
    with write_engine(engine).begin() as conn:
        for i in range(1, 6):
            ledger.append(conn, disclosure(i))
    with pytest.raises(RuntimeError), write_engine(engine).begin() as conn:
        for i in range(6, 9):
            ledger.append(conn, disclosure(i))
        raise RuntimeError("the batch failed")
    with write_engine(engine).begin() as conn:
        ledger.append(conn, disclosure(9))
        ledger.append(conn, disclosure(10))
    ledger.append(None, disclosure(11))
    rows = ledger.records()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [r.body_sha256 for r in rows][5:] == [f"{i:064x}" for i in (9, 10, 11)]
    assert ledger.verify() == []


def test_a_commit_as_you_go_connection_never_reuses_a_rolled_back_head(engine: Engine) -> None:
    """Appends on a connection without an explicit begin (SQLAlchemy starts the transaction itself):
    after a rollback the next append reads the stored head again, so the chain has no gap."""
    ledger = SqlDisclosureLedger(engine)
    ledger.append(None, disclosure(1))
    conn = write_engine(engine).connect()
    try:
        ledger.append(conn, disclosure(2))
        conn.rollback()
        ledger.append(conn, disclosure(3))
        conn.commit()
    finally:
        conn.close()
    assert [r.seq for r in ledger.records()] == [1, 2]
    assert ledger.verify() == []


def test_report_reads_one_customers_records(ledger: SqlDisclosureLedger) -> None:
    """The SQL report counts one customer's records per channel, with first and last times."""
    ledger.append(None, disclosure(7, customer_id=2))
    ledger.append(None, disclosure(8, customer_id=1, channel=Channel.WHATSAPP))
    report = ledger.report(1)
    assert [(c.channel, c.messages) for c in report.channels] == [
        (Channel.MESSENGER, 6),
        (Channel.WHATSAPP, 1),
    ]
    (balance,) = report.channels[0].withheld
    assert (balance.category, balance.count) == (DataCategory.ACCOUNT_BALANCE, 6)
    assert balance.first_at == T0 + timedelta(minutes=1, microseconds=123_456)
    assert balance.last_at == T0 + timedelta(minutes=6, microseconds=123_456)
    assert [c.channel for c in ledger.report(1, Channel.WHATSAPP).channels] == [Channel.WHATSAPP]
    with ledger.engine.connect() as conn:
        assert conn.execute(select(disclosures.c.seq).where(disclosures.c.customer_id == 2)).scalar() == 7
