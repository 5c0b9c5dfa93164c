"""Locale formatting for amounts and dates, English and Arabic as equals.

Arabic uses Eastern Arabic digits (٠١٢٣) and Arabic separators, as customers in the region read
them; English uses grouped Western digits with the ISO code.
"""

from __future__ import annotations

from datetime import date

from babel.dates import format_date as _babel_date
from babel.numbers import format_currency as _babel_currency
from babel.numbers import format_decimal as _babel_decimal

from amanah.domain.money import Money
from amanah.domain.text import to_eastern_digits

LANGUAGES = ("en", "ar")
_RLM = "\u200f"


def lang_of(language: str) -> str:
    return language if language in LANGUAGES else "en"


def format_money(amount: Money, language: str) -> str:
    """``1,234.500 JOD`` in English, ``‏-١٬٢٣٤٫٥٠٠ د.أ.‏`` in Arabic."""
    if lang_of(language) == "ar":
        text = _babel_currency(amount.decimal, amount.currency.code, locale="ar", numbering_system="arab")
        return to_eastern_digits(text)
    return str(_babel_currency(amount.decimal, amount.currency.code, locale="en", format="#,##0.00 ¤¤"))


def format_day(day: date, language: str) -> str:
    """``3 Oct 2026`` in English, ``٣ أكتوبر ٢٠٢٦`` in Arabic."""
    if lang_of(language) == "ar":
        return to_eastern_digits(_babel_date(day, "d MMMM y", locale="ar"))
    return str(_babel_date(day, "d MMM y", locale="en"))


def format_count(n: int, language: str) -> str:
    if lang_of(language) == "ar":
        return to_eastern_digits(str(n))
    return str(_babel_decimal(n, locale="en"))


def text_direction(language: str) -> str:
    return "rtl" if lang_of(language) == "ar" else "ltr"


def count_transactions(n: int, language: str) -> str:
    """ "1 transaction", "5 transactions"; Arabic: عملية واحدة، عمليتان، ٣ عمليات، ١١ عملية."""
    if lang_of(language) == "ar":
        if n == 1:
            return "عملية واحدة"
        if n == 2:
            return "عمليتان"
        noun = "عمليات" if 3 <= n % 100 <= 10 else "عملية"
        return f"{format_count(n, 'ar')} {noun}"
    return "1 transaction" if n == 1 else f"{format_count(n, 'en')} transactions"
