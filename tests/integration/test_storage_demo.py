"""The demo bank: deterministic, realistic, valid identifiers, no card numbers, idempotent seeding."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import stdnum.bic
import stdnum.iban
from sqlalchemy import Engine, MetaData, func, select

from amanah.adapters.core import demo
from amanah.adapters.core.demo import HISTORY_DAYS, DemoBank, demo_bank, demo_in_memory, seed_demo
from amanah.adapters.storage.schema import (
    accounts,
    card_status_changes,
    cards,
    core_transactions,
    customers,
    payees,
)
from amanah.adapters.storage.sql_conversations import SqlConversationStore
from amanah.adapters.storage.sql_core import SqlCoreBanking
from amanah.domain.banking import AccountKind, CardStatus, TransactionStatus
from amanah.domain.conversation import Channel, ConversationState
from amanah.domain.money import Currency, Money

ANCHOR = date(2026, 3, 15)
IBAN_LENGTHS = {"JO": 30, "SA": 24, "AE": 23}


def _fresh(anchor: date) -> DemoBank:
    return demo_bank.__wrapped__(anchor)  # bypass the cache: build it again from scratch


def _mod97(iban: str) -> int:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97


def test_demo_bank_is_deterministic() -> None:
    """Building the demo bank twice for the same anchor gives identical data."""
    assert _fresh(ANCHOR) == _fresh(ANCHOR)


def test_another_anchor_only_shifts_the_dates() -> None:
    """A later anchor gives the same merchants, amounts and sequence, every date shifted by the gap."""
    a, b = _fresh(ANCHOR), _fresh(ANCHOR + timedelta(days=40))
    assert a.customers == b.customers and a.accounts == b.accounts and a.payees == b.payees
    assert [(c.token, c.last4) for c in a.cards] == [(c.token, c.last4) for c in b.cards]
    assert len(a.transactions) == len(b.transactions)
    for x, y in zip(a.transactions, b.transactions, strict=True):
        assert (x.account_key, x.merchant, x.category, x.amount, x.status, x.reference) == (
            y.account_key,
            y.merchant,
            y.category,
            y.amount,
            y.status,
            y.reference,
        )
        assert y.booked_on - x.booked_on == timedelta(days=40)


def test_history_covers_six_months_ending_at_the_anchor() -> None:
    """Every customer's history starts about six months back and ends on the anchor day."""
    bank = _fresh(ANCHOR)
    for customer in bank.customers:
        days = [t.booked_on for t in bank.transactions if t.account_key.startswith(customer.username + ".")]
        assert max(days) == ANCHOR
        assert min(days) == ANCHOR - timedelta(days=HISTORY_DAYS - 1)


def test_customers_accounts_cards_and_payees() -> None:
    """Three customers, each with a current and a savings account, a debit card and 2-3 payees."""
    bank = _fresh(ANCHOR)
    assert bank.usernames == ("layla", "omar", "sara")
    assert {c.username: c.language for c in bank.customers} == {"layla": "en", "omar": "ar", "sara": "en"}
    allowed = {Currency.JOD, Currency.SAR, Currency.AED, Currency.USD}
    for customer in bank.customers:
        assert customer.password == f"demo-{customer.username}-2026"
        own = [a for a in bank.accounts if a.username == customer.username]
        assert sorted(a.kind for a in own) == [AccountKind.CURRENT, AccountKind.SAVINGS]
        assert {a.currency for a in own} <= allowed
        assert len([c for c in bank.cards if c.username == customer.username]) == 1
        assert 2 <= len([p for p in bank.payees if p.username == customer.username]) <= 3
    assert len({c.token for c in bank.cards}) == len(bank.cards)


def test_ibans_pass_mod97_and_country_formats() -> None:
    """Every account and payee IBAN has its country's length and passes the mod-97 check."""
    bank = _fresh(ANCHOR)
    ibans = [a.iban for a in bank.accounts] + [p.iban for p in bank.payees]
    assert len(set(a.iban for a in bank.accounts)) == len(bank.accounts)
    for iban in ibans:
        assert len(iban) == IBAN_LENGTHS[iban[:2]], iban
        assert _mod97(iban) == 1, iban
        assert stdnum.iban.is_valid(iban), iban
    for payee in bank.payees:
        assert stdnum.bic.is_valid(payee.bic)
        assert payee.bic[4:6] == payee.iban[:2]  # the bank is in the IBAN's country


def test_cards_hold_only_the_last_four_digits() -> None:
    """Cards carry a token, four digits and an MM/YY expiry: never a full card number."""
    for card in _fresh(ANCHOR).cards:
        assert re.fullmatch(r"\d{4}", card.last4)
        assert re.fullmatch(r"(0[1-9]|1[0-2])/\d\d", card.expires)
        assert not re.search(r"\d", card.token)
        assert card.status is CardStatus.ACTIVE


def test_transactions_are_realistic() -> None:
    """Salaries, groceries, dining, transport, utilities, shopping, cash and transfers all occur."""
    bank = _fresh(ANCHOR)
    for customer in bank.customers:
        own = [t for t in bank.transactions if t.account_key.startswith(customer.username + ".")]
        categories = Counter(t.category for t in own)
        for category in ("salary", "groceries", "dining", "transport", "utilities", "shopping", "cash"):
            assert categories[category] >= 1, (customer.username, category)
        assert categories["transfers"] + categories["savings"] >= 6
        assert all(t.amount.minor > 0 for t in own if t.category == "salary")
        assert all(t.amount.minor < 0 for t in own if t.category in ("groceries", "dining", "cash"))
    merchants = {t.merchant for t in bank.transactions}
    assert {"Carrefour", "Lulu", "Tamimi Markets", "Careem", "Uber", "Amazon", "Noon"} <= merchants


def test_pending_transactions_only_at_the_end() -> None:
    """A few transactions are pending, all within the last days; one of them is a pending credit."""
    bank = _fresh(ANCHOR)
    pending = [t for t in bank.transactions if t.status is TransactionStatus.PENDING]
    assert 3 <= len(pending) <= 20
    assert all(t.booked_on >= ANCHOR - timedelta(days=1) for t in pending)
    assert any(t.amount.minor > 0 for t in pending)
    assert {t.account_key.split(".")[0] for t in pending if t.amount.minor < 0} == {"layla", "omar", "sara"}


def test_balances_never_go_negative() -> None:
    """Running booked balances stay at or above zero on every account, every day."""
    bank = _fresh(ANCHOR)
    for account in bank.accounts:
        running = 0
        for t in bank.transactions:
            if t.account_key == account.key and t.status is TransactionStatus.BOOKED:
                assert t.amount.currency is account.currency
                running += t.amount.minor
                assert running >= 0, (account.key, t.booked_on)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (customers, accounts, cards, payees, core_transactions, card_status_changes)
        }


def test_seed_loads_the_whole_demo_bank(seeded_engine: Engine) -> None:
    """Seeding writes exactly the demo bank's customers, accounts, cards, payees and transactions."""
    bank = demo_bank(ANCHOR)
    assert _counts(seeded_engine) == {
        "customers": 3,
        "accounts": len(bank.accounts),
        "cards": len(bank.cards),
        "payees": len(bank.payees),
        "core_transactions": len(bank.transactions),
        "card_status_changes": 0,
    }
    core = SqlCoreBanking(seeded_engine)
    omar = core.customer_by_username("omar")
    assert omar.display_name == "عمر الراشد" and omar.language == "ar"


def test_seeding_twice_does_not_duplicate(seeded_engine: Engine) -> None:
    """A second seed finds the demo customers and writes nothing."""
    before = _counts(seeded_engine)
    assert seed_demo(seeded_engine, ANCHOR) is False
    assert _counts(seeded_engine) == before


def test_seed_is_deterministic_across_databases(engine: Engine, seeded_engine: Engine) -> None:
    """Seeding a second database with the same anchor stores the same rows (ids aside)."""
    assert seed_demo(engine, ANCHOR) is True

    def rows(eng: Engine) -> list[tuple[object, ...]]:
        t = core_transactions
        with eng.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    select(t.c.reference, t.c.booked_on, t.c.merchant, t.c.amount_minor, t.c.status).order_by(
                        t.c.reference
                    )
                )
            ]

    assert rows(engine) == rows(seeded_engine)


def test_reset_rebuilds_and_keeps_customer_ids(seeded_engine: Engine) -> None:
    """reset=True restores the demo data (card active again) and keeps customers and conversations."""
    core = SqlCoreBanking(seeded_engine)
    layla = core.customer_by_username("layla")
    card = core.cards(layla.id)[0]
    core.set_card_status(layla.id, card.id, CardStatus.LOST, "test")
    store = SqlConversationStore(seeded_engine)
    store.save(ConversationState(channel=Channel.WEBCHAT, user_id="w1", customer_id=layla.id))
    before = _counts(seeded_engine)

    assert seed_demo(seeded_engine, ANCHOR, reset=True) is True

    assert core.customer_by_username("layla").id == layla.id
    assert [c.status for c in core.cards(layla.id)] == [CardStatus.ACTIVE]
    assert _counts(seeded_engine) == {**before, "card_status_changes": 0}
    assert store.load(Channel.WEBCHAT, "w1").customer_id == layla.id


def test_reset_with_a_new_anchor_moves_the_history(seeded_engine: Engine) -> None:
    """Re-seeding with reset=True and a later anchor ends the history on the new anchor."""
    later = ANCHOR + timedelta(days=30)
    seed_demo(seeded_engine, later, reset=True)
    with seeded_engine.connect() as conn:
        assert conn.execute(select(func.max(core_transactions.c.booked_on))).scalar() == later
        assert conn.execute(select(func.min(core_transactions.c.booked_on))).scalar() == later - timedelta(
            days=HISTORY_DAYS - 1
        )


def test_no_column_holds_a_card_number_or_password(seeded_engine: Engine) -> None:
    """No card column holds more than 4 digits; no PAN or demo password appears in any table."""
    with seeded_engine.connect() as conn:
        for row in conn.execute(select(cards)).mappings():
            for column, value in row.items():
                if isinstance(value, str):
                    assert not re.search(r"\d{5,}", value), column
        secrets = list(demo._TEST_PANS.values()) + [c.password for c in demo_bank(ANCHOR).customers]
        everything = MetaData()
        everything.reflect(conn)
        for table in everything.sorted_tables:
            for values in conn.execute(select(table)):
                blob = " ".join(str(v) for v in values)
                for secret in secrets:
                    assert secret not in blob, table.name
                    assert secret[-8:] not in blob, table.name


def test_password_hashes_are_stored(seeded_engine: Engine) -> None:
    """Demo customers are stored with salted scrypt hashes, all different."""
    with seeded_engine.connect() as conn:
        hashes = list(conn.execute(select(customers.c.password_hash)).scalars())
    assert len(set(hashes)) == 3
    assert all(h.startswith("scrypt$") for h in hashes)


def test_demo_in_memory_matches_the_demo_bank() -> None:
    """The in-memory fakes hold the same demo customers, accounts and transactions."""
    core, auth = demo_in_memory(ANCHOR)
    bank = demo_bank(ANCHOR)
    layla = core.customer_by_username("layla")
    assert [a.iban for a in core.accounts(layla.id)] == [
        a.iban for a in bank.accounts if a.username == "layla"
    ]
    assert auth.authenticate("layla", "demo-layla-2026") == layla


def test_docs_describe_the_generated_demo_bank() -> None:
    """docs/demo.md lists exactly the IBANs, BICs, card digits and balances the generator makes."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "demo.md").read_text(encoding="utf-8")
    bank = _fresh(ANCHOR)
    documented_ibans = set(re.findall(r"`((?:JO|SA|AE)\d\d[A-Z0-9]+)`", doc))
    assert documented_ibans == {a.iban for a in bank.accounts} | {p.iban for p in bank.payees}
    for payee in bank.payees:
        assert f"`{payee.bic}`" in doc
    for card in bank.cards:
        assert f"| {card.last4} " in doc
    for customer in bank.customers:
        assert f"`{customer.password}`" in doc and customer.display_name_ar in doc
    for account in bank.accounts:
        booked = sum(
            t.amount.minor
            for t in bank.transactions
            if t.account_key == account.key and t.status is TransactionStatus.BOOKED
        )
        assert f"{Money(booked, account.currency).decimal:,}" in doc
