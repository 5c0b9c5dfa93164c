"""Slot extraction in English and Arabic: periods, counts, accounts, merchants, categories."""

from __future__ import annotations

from datetime import date

import pytest

from amanah.app.slots import (
    extract_account_kind,
    extract_count,
    extract_period,
    find_last4,
    match_category,
    match_merchant,
)
from amanah.domain.banking import AccountKind

TODAY = date(2026, 11, 29)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("what did I spend last month", date(2026, 10, 1), date(2026, 10, 31)),
        ("كم صرفت الشهر اللي فات", date(2026, 10, 1), date(2026, 10, 31)),
        ("how much on groceries in October", date(2026, 10, 1), date(2026, 10, 31)),
        ("في تشرين الأول", date(2026, 10, 1), date(2026, 10, 31)),
        ("spending in December", date(2025, 12, 1), date(2025, 12, 31)),
        ("this month", date(2026, 11, 1), TODAY),
        ("هالشهر", date(2026, 11, 1), TODAY),
        ("yesterday", date(2026, 11, 28), date(2026, 11, 28)),
        ("امبارح", date(2026, 11, 28), date(2026, 11, 28)),
        ("last 10 days", date(2026, 11, 20), TODAY),
        ("اخر ٧ ايام", date(2026, 11, 23), TODAY),
        ("since 3 October", date(2026, 10, 3), TODAY),
        ("منذ ١ أكتوبر", date(2026, 10, 1), TODAY),
        ("from 1/10 to 15/10", date(2026, 10, 1), date(2026, 10, 15)),
        ("what did I buy on 5 November", date(2026, 11, 5), date(2026, 11, 5)),
    ],
)
def test_periods(text: str, start: date, end: date) -> None:
    """Relative, named-month and explicit periods resolve to inclusive date ranges."""
    period = extract_period(text, TODAY)
    assert period is not None
    assert (period.start, period.end) == (start, end)


@pytest.mark.parametrize(
    "text", ["what's my balance", "may I see my card", "transfer from my savings", "من كارفور"]
)
def test_no_period(text: str) -> None:
    """Messages that name no period give none ("may" and "from my savings" are not dates)."""
    assert extract_period(text, TODAY) is None


@pytest.mark.parametrize(
    ("text", "count"),
    [("show my last 5 transactions", 5), ("آخر ٣ عمليات", 3), ("last five payments", 5), ("last 900", 20)],
)
def test_counts(text: str, count: int) -> None:
    """Counts are read from digits, Eastern digits and words, and capped."""
    assert extract_count(text) == count


def test_days_are_not_a_count() -> None:
    """ "last 10 days" is a period, not a number of transactions."""
    assert extract_count("last 10 days") is None


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("what's in my savings?", AccountKind.SAVINGS),
        ("رصيد حساب التوفير", AccountKind.SAVINGS),
        ("current account balance", AccountKind.CURRENT),
        ("الحساب الجاري", AccountKind.CURRENT),
        ("balance", None),
    ],
)
def test_account_kind(text: str, kind: AccountKind | None) -> None:
    """Account kinds are recognised in both languages."""
    assert extract_account_kind(text) is kind


def test_merchants_in_english_and_arabic_spelling() -> None:
    """A merchant is found by its English name or its Arabic spelling, longest first."""
    merchants = ["Carrefour", "Carrefour Market", "Lulu Hypermarket", "Noon"]
    assert match_merchant("what did I spend at Carrefour Market", merchants) == "Carrefour Market"
    assert match_merchant("كم دفعت في كارفور", merchants) in {"Carrefour", "Carrefour Market"}
    assert match_merchant("spent at lulu", merchants) == "Lulu Hypermarket"
    assert match_merchant("good afternoon", merchants) is None


def test_categories_by_synonym() -> None:
    """Categories are matched by synonyms in both languages, among the customer's own."""
    cats = ["groceries", "dining", "transport"]
    assert match_category("how much on supermarkets", cats) == "groceries"
    assert match_category("كم صرفت على المطاعم", cats) == "dining"
    assert match_category("how much on travel", cats) is None


def test_last4() -> None:
    """The last four digits of a card are found in ASCII or Eastern digits."""
    assert find_last4("the card ending 5556") == "5556"
    assert find_last4("البطاقة المنتهية بـ ٨٢١٠") == "8210"
