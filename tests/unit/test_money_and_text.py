"""Money is exact and currency-safe; text helpers fold digits and scripts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amanah.app.i18n import format_day, format_money
from amanah.domain.errors import InvalidAmount
from amanah.domain.money import Currency, Money
from amanah.domain.text import detect_language, normalize, to_ascii_digits, to_eastern_digits


def test_parse_respects_the_currency_exponent() -> None:
    """JOD has three decimals, SAR two; extra precision is refused, never rounded."""
    assert Money.parse("1,250.125", "JOD").minor == 1_250_125
    assert Money.parse("١٢٥٠٫٥", "SAR").minor == 125_050
    with pytest.raises(InvalidAmount):
        Money.parse("1.001", "SAR")


@pytest.mark.parametrize("bad", ["", "abc", "NaN", "Infinity", "1e999999", "--1", "1" * 40])
def test_nonsense_amounts_are_refused(bad: str) -> None:
    """Empty, non-numeric, infinite and absurd amounts raise InvalidAmount."""
    with pytest.raises(InvalidAmount):
        Money.parse(bad, "USD")


def test_currencies_never_mix() -> None:
    """Adding two currencies raises instead of guessing a rate."""
    with pytest.raises(InvalidAmount):
        _ = Money.of_minor(1, "USD") + Money.of_minor(1, "JOD")


def test_unknown_currency() -> None:
    """An unsupported currency code is refused."""
    with pytest.raises(InvalidAmount):
        Currency.of("XXX")


def test_floats_are_refused() -> None:
    """Money never holds a float."""
    with pytest.raises(InvalidAmount):
        Money(1.5, Currency.USD)  # type: ignore[arg-type]


@given(st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(list(Currency)))
def test_parse_round_trips_str(minor: int, currency: Currency) -> None:
    """Parsing the decimal text of any amount gives the same amount back."""
    m = Money(minor, currency)
    assert Money.parse(str(m.decimal), currency) == m
    assert m.decimal == Decimal(minor).scaleb(-currency.exponent)


def test_arabic_formatting_uses_eastern_digits() -> None:
    """Arabic amounts and dates are written with Eastern Arabic digits."""
    from datetime import date

    text = format_money(Money.parse("1234.5", "SAR"), "ar")
    assert "١٬٢٣٤٫٥٠" in text and "1" not in text
    assert format_money(Money.parse("1234.5", "JOD"), "en") == "1,234.500 JOD"
    assert format_day(date(2026, 10, 3), "ar") == "٣ أكتوبر ٢٠٢٦"
    assert format_day(date(2026, 10, 3), "en") == "3 Oct 2026"


def test_digit_folding_and_language_detection() -> None:
    """Eastern digits fold to ASCII and back; Arabic script is detected."""
    assert to_ascii_digits("٠١٢٣٤٥٦٧٨٩ ۴") == "0123456789 4"
    assert to_eastern_digits("2026") == "٢٠٢٦"
    assert detect_language("كم رصيدي") == "ar"
    assert detect_language("what's my balance") == "en"
    assert detect_language("١٢٣", default="ar") == "ar"
    assert normalize("أَهْلاً  بِكَ") == "اهلا بك"
