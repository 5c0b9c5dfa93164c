"""Contract of CoreBanking and Authenticator: the same assertions on the in-memory fake and on SQL.

Every test runs on ``memory``, ``sqlite`` and (with AMANAH_TEST_POSTGRES_URL) ``postgresql``, all
holding the demo bank at DEMO_ANCHOR, so the fake cannot drift from the real adapter. Expected
values are computed independently from the pure ``demo_bank`` data.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Protocol

import pytest

from amanah.adapters.core.demo import DemoAccount, DemoBank
from amanah.adapters.storage.memory import InMemoryCoreBanking
from amanah.adapters.storage.sql_core import SqlCoreBanking
from amanah.app.ports import Authenticator, CoreBanking
from amanah.domain.banking import AccountKind, CardStatus, TransactionQuery, TransactionStatus
from amanah.domain.errors import CardBlocked, NotFound, UnknownCustomer

DEMO_ANCHOR = date(2026, 3, 15)  # as in conftest.py


class DemoBanking(Protocol):
    """What the ``demo_banking`` fixture gives (see conftest.py)."""

    kind: str
    core: CoreBanking
    auth: Authenticator
    bank: DemoBank


def _customer_id(db: DemoBanking, username: str) -> int:
    return db.core.customer_by_username(username).id


def _account_ids(db: DemoBanking, username: str) -> dict[str, int]:
    """Demo account key -> id in this implementation (matched by IBAN)."""
    by_iban = {a.iban: a.id for a in db.core.accounts(_customer_id(db, username))}
    return {a.key: by_iban[a.iban] for a in db.bank.accounts if a.username == username}


def _own_accounts(db: DemoBanking, username: str) -> list[DemoAccount]:
    return [a for a in db.bank.accounts if a.username == username]


def _expected(db: DemoBanking, username: str, **where: object) -> list[tuple[date, str, int]]:
    keys = {a.key for a in _own_accounts(db, username)}
    rows = []
    for t in db.bank.transactions:
        if t.account_key not in keys:
            continue
        if "merchant" in where and str(where["merchant"]).lower() not in t.merchant.lower():
            continue
        if "category" in where and str(where["category"]).lower() != t.category.lower():
            continue
        rows.append((t.booked_on, t.merchant, t.amount.minor))
    return sorted(rows)


def _got(db: DemoBanking, query: TransactionQuery) -> list[tuple[date, str, int]]:
    return sorted((t.booked_on, t.merchant, t.amount.minor) for t in db.core.search_transactions(query))


def _history_capable(db: DemoBanking) -> SqlCoreBanking | InMemoryCoreBanking:
    assert isinstance(db.core, SqlCoreBanking | InMemoryCoreBanking)
    return db.core


# -- customers and accounts ---------------------------------------------------------------------------


def test_customer_lookup(demo_banking: DemoBanking) -> None:
    """Customers are found by id and by username, case-insensitively."""
    layla = demo_banking.core.customer_by_username("  Layla ")
    assert (layla.username, layla.display_name, layla.language) == ("layla", "Layla Haddad", "en")
    assert demo_banking.core.customer(layla.id) == layla


def test_unknown_customers_raise(demo_banking: DemoBanking) -> None:
    """An unknown username or customer id raises UnknownCustomer, whatever is asked."""
    core = demo_banking.core
    with pytest.raises(UnknownCustomer):
        core.customer_by_username("mallory")
    for call in (core.customer, core.accounts, core.balances, core.cards, core.payees, core.merchants):
        with pytest.raises(UnknownCustomer):
            call(987654)
    with pytest.raises(UnknownCustomer):
        core.search_transactions(TransactionQuery(customer_id=987654))


def test_accounts_are_the_customers_own(demo_banking: DemoBanking) -> None:
    """Each customer sees their current then savings account, with the demo IBANs and currencies."""
    for customer in demo_banking.bank.customers:
        got = demo_banking.core.accounts(_customer_id(demo_banking, customer.username))
        want = _own_accounts(demo_banking, customer.username)
        assert [(a.kind, a.iban, a.currency) for a in got] == [(a.kind, a.iban, a.currency) for a in want]
        assert got[0].kind is AccountKind.CURRENT


def test_balances_count_booked_and_pending_debits(demo_banking: DemoBanking) -> None:
    """Booked = booked transactions; available = booked + pending debits; pending credits wait."""
    for customer in demo_banking.bank.customers:
        balances = demo_banking.core.balances(_customer_id(demo_banking, customer.username))
        want = _own_accounts(demo_banking, customer.username)
        assert [b.account.iban for b in balances] == [a.iban for a in want]
        for balance, account in zip(balances, want, strict=True):
            txs = [t for t in demo_banking.bank.transactions if t.account_key == account.key]
            booked = sum(t.amount.minor for t in txs if t.status is TransactionStatus.BOOKED)
            pending_debits = sum(
                t.amount.minor for t in txs if t.status is TransactionStatus.PENDING and t.amount.minor < 0
            )
            assert balance.booked.minor == booked
            assert balance.available.minor == booked + pending_debits
            assert balance.booked.currency is balance.available.currency is account.currency


def test_pending_credit_is_not_available(demo_banking: DemoBanking) -> None:
    """Layla's pending refund does not raise her available balance."""
    layla_current = demo_banking.core.balances(_customer_id(demo_banking, "layla"))[0]
    pending = [
        t
        for t in demo_banking.bank.transactions
        if t.account_key == "layla.current" and t.status is TransactionStatus.PENDING
    ]
    assert any(t.amount.minor > 0 for t in pending) and any(t.amount.minor < 0 for t in pending)
    all_pending = sum(t.amount.minor for t in pending)
    assert layla_current.available.minor < layla_current.booked.minor + all_pending
    assert layla_current.available < layla_current.booked


# -- transaction search -------------------------------------------------------------------------------


def test_search_is_newest_first_and_limited(demo_banking: DemoBanking) -> None:
    """Results are newest first (date, then entry order), at most ``limit``, pending included."""
    customer_id = _customer_id(demo_banking, "layla")
    result = demo_banking.core.search_transactions(TransactionQuery(customer_id=customer_id, limit=15))
    assert len(result) == 15
    keys = [(t.booked_on, t.id) for t in result]
    assert keys == sorted(keys, reverse=True)
    assert result[0].booked_on == DEMO_ANCHOR
    assert any(t.status is TransactionStatus.PENDING for t in result)
    assert {t.account_id for t in result} <= set(_account_ids(demo_banking, "layla").values())


def test_search_all_returns_every_transaction(demo_banking: DemoBanking) -> None:
    """Without filters and with a large limit, the customer's whole history comes back."""
    customer_id = _customer_id(demo_banking, "omar")
    got = _got(demo_banking, TransactionQuery(customer_id=customer_id, limit=500))
    assert got == _expected(demo_banking, "omar")


@pytest.mark.parametrize("merchant", ["carre", "CARREFOUR", "Careem", "  amazon ", "transfer to"])
def test_search_merchant_is_a_case_insensitive_substring(demo_banking: DemoBanking, merchant: str) -> None:
    """A merchant filter matches the exact name or any part of it, ignoring case."""
    customer_id = _customer_id(demo_banking, "layla")
    got = _got(demo_banking, TransactionQuery(customer_id=customer_id, merchant=merchant, limit=500))
    assert got == _expected(demo_banking, "layla", merchant=merchant.strip())
    assert got  # the demo has all of these


@pytest.mark.parametrize("merchant", ["%", "_", "Carre%", "\\"])
def test_search_merchant_wildcards_are_literal(demo_banking: DemoBanking, merchant: str) -> None:
    """LIKE wildcards in a merchant filter match themselves, not everything."""
    customer_id = _customer_id(demo_banking, "layla")
    assert (
        demo_banking.core.search_transactions(TransactionQuery(customer_id=customer_id, merchant=merchant))
        == []
    )


def test_search_category_is_exact_and_case_insensitive(demo_banking: DemoBanking) -> None:
    """A category filter matches the whole category name in any case, not a part of it."""
    customer_id = _customer_id(demo_banking, "sara")
    got = _got(demo_banking, TransactionQuery(customer_id=customer_id, category="Groceries", limit=500))
    assert got == _expected(demo_banking, "sara", category="groceries") and got
    assert (
        demo_banking.core.search_transactions(TransactionQuery(customer_id=customer_id, category="grocer"))
        == []
    )


def test_search_dates_are_inclusive_and_debits_only_drops_credits(demo_banking: DemoBanking) -> None:
    """date_from and date_to include their days; debits_only keeps money out only."""
    customer_id = _customer_id(demo_banking, "layla")
    days = sorted({row[0] for row in _expected(demo_banking, "layla")})
    start, end = days[-40], days[-5]  # days that have transactions, so the bounds are exercised
    query = TransactionQuery(customer_id=customer_id, date_from=start, date_to=end, limit=500)
    got = demo_banking.core.search_transactions(query)
    want = [row for row in _expected(demo_banking, "layla") if start <= row[0] <= end]
    assert sorted((t.booked_on, t.merchant, t.amount.minor) for t in got) == want
    assert {start, end} <= {t.booked_on for t in got}
    debits = demo_banking.core.search_transactions(
        TransactionQuery(customer_id=customer_id, date_from=start, date_to=end, debits_only=True, limit=500)
    )
    assert debits and all(t.amount.is_negative() for t in debits)
    assert len(debits) == len([row for row in want if row[2] < 0])


def test_search_by_account_and_not_anothers_account(demo_banking: DemoBanking) -> None:
    """An account filter keeps that account; another customer's account raises NotFound."""
    layla_id = _customer_id(demo_banking, "layla")
    savings_id = _account_ids(demo_banking, "layla")["layla.savings"]
    result = demo_banking.core.search_transactions(
        TransactionQuery(customer_id=layla_id, account_id=savings_id, limit=500)
    )
    assert result and {t.account_id for t in result} == {savings_id}
    omar_account = _account_ids(demo_banking, "omar")["omar.current"]
    with pytest.raises(NotFound):
        demo_banking.core.search_transactions(TransactionQuery(customer_id=layla_id, account_id=omar_account))


def test_search_never_crosses_customers(demo_banking: DemoBanking) -> None:
    """Searching one customer never returns another's transactions, even by their merchants."""
    omar_id = _customer_id(demo_banking, "omar")
    query = TransactionQuery(customer_id=omar_id, merchant="Petra Digital")  # Layla's employer
    assert demo_banking.core.search_transactions(query) == []


def test_merchants_and_categories_are_distinct_sorted_and_own(demo_banking: DemoBanking) -> None:
    """merchants() and categories() list each name once, sorted, from the customer's history only."""
    for customer in demo_banking.bank.customers:
        customer_id = _customer_id(demo_banking, customer.username)
        keys = {a.key for a in _own_accounts(demo_banking, customer.username)}
        own = [t for t in demo_banking.bank.transactions if t.account_key in keys]
        assert list(demo_banking.core.merchants(customer_id)) == sorted({t.merchant for t in own})
        assert list(demo_banking.core.categories(customer_id)) == sorted({t.category for t in own})
    assert "Al Baik" not in demo_banking.core.merchants(_customer_id(demo_banking, "layla"))


# -- cards --------------------------------------------------------------------------------------------


def test_cards_are_tokenised_and_own(demo_banking: DemoBanking) -> None:
    """Each customer has one active debit card with the demo token and last four digits."""
    for want in demo_banking.bank.cards:
        customer_id = _customer_id(demo_banking, want.username)
        (card,) = demo_banking.core.cards(customer_id)
        assert (card.token, card.last4, card.brand, card.status) == (
            want.token,
            want.last4,
            want.brand,
            want.status,
        )
        assert card.customer_id == customer_id
        assert card.account_id == _account_ids(demo_banking, want.username)[want.account_key]


def test_freeze_and_unfreeze_record_history(demo_banking: DemoBanking) -> None:
    """Freezing then unfreezing changes the status and appends one history row per change."""
    core = _history_capable(demo_banking)
    customer_id = _customer_id(demo_banking, "sara")
    card = core.cards(customer_id)[0]
    frozen = core.set_card_status(customer_id, card.id, CardStatus.FROZEN, "customer asked in chat")
    assert frozen.status is CardStatus.FROZEN and frozen.id == card.id
    assert core.cards(customer_id)[0].status is CardStatus.FROZEN
    core.set_card_status(customer_id, card.id, CardStatus.ACTIVE, "found it")
    history = core.card_status_history(customer_id, card.id)
    assert [(h.from_status, h.to_status, h.reason) for h in history] == [
        (CardStatus.ACTIVE, CardStatus.FROZEN, "customer asked in chat"),
        (CardStatus.FROZEN, CardStatus.ACTIVE, "found it"),
    ]
    assert all(h.at.utcoffset() == timedelta(0) for h in history)


def test_setting_the_same_status_changes_nothing(demo_banking: DemoBanking) -> None:
    """Asking for the status a card already has returns it unchanged and records nothing."""
    core = _history_capable(demo_banking)
    customer_id = _customer_id(demo_banking, "sara")
    card = core.cards(customer_id)[0]
    assert core.set_card_status(customer_id, card.id, CardStatus.ACTIVE, "again") == card
    assert core.card_status_history(customer_id, card.id) == []


@pytest.mark.parametrize("final", [CardStatus.LOST, CardStatus.STOLEN])
@pytest.mark.parametrize("then", [CardStatus.ACTIVE, CardStatus.FROZEN, CardStatus.LOST, CardStatus.STOLEN])
def test_lost_and_stolen_are_final(demo_banking: DemoBanking, final: CardStatus, then: CardStatus) -> None:
    """Once a card is reported lost or stolen, no other status can be set."""
    core = _history_capable(demo_banking)
    customer_id = _customer_id(demo_banking, "omar")
    card = core.cards(customer_id)[0]
    assert core.set_card_status(customer_id, card.id, final, "reported").status is final
    if then is final:
        assert core.set_card_status(customer_id, card.id, then, "again").status is final
    else:
        with pytest.raises(CardBlocked):
            core.set_card_status(customer_id, card.id, then, "undo")
    assert core.cards(customer_id)[0].status is final
    assert len(core.card_status_history(customer_id, card.id)) == 1


def test_another_customers_card_is_not_found(demo_banking: DemoBanking) -> None:
    """Changing or reading another customer's card raises NotFound and leaves the card alone."""
    core = _history_capable(demo_banking)
    layla_id, omar_id = _customer_id(demo_banking, "layla"), _customer_id(demo_banking, "omar")
    omar_card = core.cards(omar_id)[0]
    with pytest.raises(NotFound):
        core.set_card_status(layla_id, omar_card.id, CardStatus.LOST, "not mine")
    with pytest.raises(NotFound):
        core.card_status_history(layla_id, omar_card.id)
    with pytest.raises(NotFound):
        core.set_card_status(layla_id, 987654, CardStatus.FROZEN, "no such card")
    assert core.cards(omar_id)[0].status is CardStatus.ACTIVE


def test_card_errors_are_domain_errors(demo_banking: DemoBanking) -> None:
    """CardBlocked is a Forbidden, so entrypoints can answer politely without special cases."""
    from amanah.domain.errors import Forbidden

    core = demo_banking.core
    customer_id = _customer_id(demo_banking, "layla")
    card = core.cards(customer_id)[0]
    core.set_card_status(customer_id, card.id, CardStatus.STOLEN, "reported")
    with pytest.raises(Forbidden):
        core.set_card_status(customer_id, card.id, CardStatus.ACTIVE, "undo")


# -- payees -------------------------------------------------------------------------------------------


def test_payees_are_the_customers_own(demo_banking: DemoBanking) -> None:
    """Each customer sees exactly their demo payees, in order."""
    for customer in demo_banking.bank.customers:
        got = demo_banking.core.payees(_customer_id(demo_banking, customer.username))
        want = [p for p in demo_banking.bank.payees if p.username == customer.username]
        assert [(p.name, p.iban, p.bank_name, p.bic) for p in got] == [
            (p.name, p.iban, p.bank_name, p.bic) for p in want
        ]


# -- authentication -----------------------------------------------------------------------------------


def test_authenticate_with_the_demo_password(demo_banking: DemoBanking) -> None:
    """The demo password logs the customer in; the username is case-insensitive."""
    customer = demo_banking.auth.authenticate("Omar", "demo-omar-2026")
    assert customer is not None and customer.username == "omar"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("omar", "demo-omar-2025"),
        ("omar", "DEMO-OMAR-2026"),
        ("omar", ""),
        ("omar", "x" * 5000),
        ("layla", "demo-omar-2026"),
        ("mallory", "demo-omar-2026"),
        ("", "demo-omar-2026"),
    ],
)
def test_authenticate_refuses_wrong_credentials(
    demo_banking: DemoBanking, username: str, password: str
) -> None:
    """A wrong, empty or oversized password, or an unknown user, gets None."""
    assert demo_banking.auth.authenticate(username, password) is None


def test_fixture_anchor_is_the_one_assumed_here(demo_banking: DemoBanking) -> None:
    """The demo data under test ends on DEMO_ANCHOR, which the date assertions above rely on."""
    assert demo_banking.bank.anchor == DEMO_ANCHOR
