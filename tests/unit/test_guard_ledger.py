"""The disclosure ledger's hash chain and report, on the in-memory ledger (tampered with by hand)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from amanah.adapters.privacy.ledger import (
    GENESIS,
    Anchor,
    Disclosure,
    InMemoryDisclosureLedger,
    LedgerRecord,
    Problem,
    ProblemKind,
    verify_chain,
)
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
P, B, S, M = (
    DataCategory.PUBLIC,
    DataCategory.ACCOUNT_BALANCE,
    DataCategory.CARD_STATUS,
    DataCategory.CARD_NUMBER,
)


def disclosure(
    i: int, channel: Channel = Channel.MESSENGER, customer: int | None = 1, **cats: Treatment
) -> Disclosure:
    categories = {P: Treatment.ALLOW, **{DataCategory(k.replace("_", ".")): v for k, v in cats.items()}}
    return Disclosure(
        at=T0 + timedelta(minutes=i),
        channel=channel,
        customer_id=customer,
        user_id=f"user-{customer}",
        categories=categories,
        agreement_id="meta-messenger" if channel is Channel.MESSENGER else "meta-whatsapp",
        agreement_version="2026-11-01",
        body_sha256=f"{i:064x}",
    )


@pytest.fixture
def ledger() -> InMemoryDisclosureLedger:
    ledger = InMemoryDisclosureLedger()
    for i in range(1, 7):
        ledger.append(None, disclosure(i, account_balance=Treatment.SECURE_LINK))
    return ledger


def kinds(problems: list[Problem]) -> set[tuple[ProblemKind, int]]:
    return {(p.kind, p.seq) for p in problems}


def rehash(record: LedgerRecord, **changes: object) -> LedgerRecord:
    changed = dataclasses.replace(record, **changes)  # type: ignore[arg-type]
    return dataclasses.replace(changed, hash=changed.computed_hash())


def test_an_untouched_chain_verifies(ledger: InMemoryDisclosureLedger) -> None:
    """Six appended records link to each other from GENESIS and verify clean."""
    rows = ledger.records()
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert ledger.verify() == []
    assert verify_chain([]) == []


def test_a_changed_record_is_named(ledger: InMemoryDisclosureLedger) -> None:
    """Editing a record's categories (hiding that a balance left) is reported as changed, at that record."""
    ledger.rows[2] = dataclasses.replace(ledger.rows[2], categories={"public": "allow"})
    assert kinds(ledger.verify()) == {(ProblemKind.CHANGED, 3)}


def test_a_changed_and_rehashed_record_breaks_the_next_link(ledger: InMemoryDisclosureLedger) -> None:
    """Re-hashing an edited record does not help: the next record no longer links to it."""
    ledger.rows[2] = rehash(ledger.rows[2], customer_id=99)
    problems = ledger.verify()
    assert kinds(problems) == {(ProblemKind.DELETED, 4)}
    assert "#3 was replaced" in problems[0].message


def test_a_deleted_record_is_named(ledger: InMemoryDisclosureLedger) -> None:
    """Deleting record #3 is reported as #3 missing."""
    del ledger.rows[2]
    problems = ledger.verify()
    assert kinds(problems) == {(ProblemKind.DELETED, 4)}
    assert "#3" in problems[0].message


def test_deleting_the_first_records_is_noticed(ledger: InMemoryDisclosureLedger) -> None:
    """The chain must start at GENESIS: cutting off its head shows."""
    del ledger.rows[0:2]
    problems = ledger.verify()
    assert kinds(problems) == {(ProblemKind.DELETED, 3)}
    assert "#1–#2" in problems[0].message


def test_an_inserted_record_is_named(ledger: InMemoryDisclosureLedger) -> None:
    """A forged record slipped in after #2 (later ones renumbered) is reported as inserted, alone."""
    rows = ledger.records()
    forged = rehash(rows[2], seq=3, categories={"public": "allow"}, prev_hash=rows[1].hash)
    shifted = [dataclasses.replace(r, seq=r.seq + 1) for r in rows[2:]]
    ledger.rows = [*rows[:2], forged, *shifted]
    assert kinds(ledger.verify()) == {(ProblemKind.INSERTED, 3)}


def test_reordered_records_are_named(ledger: InMemoryDisclosureLedger) -> None:
    """Swapping the positions of #3 and #4 is reported as those two being out of order."""
    rows = ledger.records()
    ledger.rows = [
        *rows[:2],
        dataclasses.replace(rows[3], seq=3),
        dataclasses.replace(rows[2], seq=4),
        *rows[4:],
    ]
    assert kinds(ledger.verify()) == {(ProblemKind.REORDERED, 3), (ProblemKind.REORDERED, 4)}


def test_an_anchor_catches_records_cut_off_the_end(ledger: InMemoryDisclosureLedger) -> None:
    """Deleting the newest records is invisible to the chain alone, but not to a kept anchor."""
    head = ledger.head()
    assert head is not None
    anchor = Anchor.parse(f"{head.seq}:{head.hash}")
    assert ledger.verify(anchor) == []
    del ledger.rows[-1]
    assert ledger.verify() == []
    assert kinds(ledger.verify(anchor)) == {(ProblemKind.ANCHOR, 6)}


def test_a_rewritten_history_does_not_match_its_anchor(ledger: InMemoryDisclosureLedger) -> None:
    """Rebuilding the whole chain after an edit fools the links, not the anchor."""
    anchor = Anchor(6, ledger.rows[-1].hash)
    prev = GENESIS
    rebuilt = []
    for r in ledger.records():
        r2 = rehash(r, prev_hash=prev, customer_id=2 if r.seq == 2 else r.customer_id)
        rebuilt.append(r2)
        prev = r2.hash
    ledger.rows = rebuilt
    assert kinds(ledger.verify(anchor)) == {(ProblemKind.ANCHOR, 6)}


@pytest.mark.parametrize("text", ["", "6", "x:abc", "6:" + "z" * 64, "6:" + "a" * 63])
def test_malformed_anchors_are_refused(text: str) -> None:
    """An anchor must be SEQ:64-hex-digits."""
    with pytest.raises(ValueError, match="SEQ:HASH"):
        Anchor.parse(text)


def test_report_counts_categories_per_platform_with_first_and_last() -> None:
    """The report groups one customer's records per channel and category/treatment, with times."""
    fresh = InMemoryDisclosureLedger()
    fresh.append(None, disclosure(1, card_status=Treatment.ALLOW, card_number=Treatment.MASK))
    fresh.append(None, disclosure(2, account_balance=Treatment.SECURE_LINK))
    fresh.append(None, disclosure(3, card_status=Treatment.ALLOW))
    fresh.append(None, disclosure(4, Channel.WHATSAPP, account_balance=Treatment.SECURE_LINK))
    fresh.append(None, disclosure(5, customer=2, account_balance=Treatment.ALLOW))
    report = fresh.report(1)
    messenger, whatsapp = report.channels
    assert (messenger.channel, messenger.messages, whatsapp.messages) == (Channel.MESSENGER, 3, 1)
    status = next(u for u in messenger.received if u.category is S)
    assert (status.count, status.first_at, status.last_at) == (
        2,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=3),
    )
    assert [(u.category, u.treatment) for u in messenger.received] == [
        (M, Treatment.MASK),
        (S, Treatment.ALLOW),
    ]
    assert [(u.category, u.treatment) for u in messenger.withheld] == [(B, Treatment.SECURE_LINK)]
    assert messenger.agreements == ("meta-messenger@2026-11-01",)
    only = fresh.report(1, Channel.WHATSAPP)
    assert [c.channel for c in only.channels] == [Channel.WHATSAPP]
    assert fresh.report(3).channels == ()
    assert report.to_dict()["channels"][0]["received"][0]["category"] == "card.number"
