"""Money as an integer count of minor units in one ISO 4217 currency. Never a float.

Every amount that enters Amanah goes through :func:`Money.parse` or :meth:`Money.of_minor`;
arithmetic keeps the currency and refuses to mix currencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum

from amanah.domain.errors import InvalidAmount
from amanah.domain.text import to_ascii_digits

MAX_DIGITS = 15  # whole-unit digits: 10**15 is more money than any account holds


class Currency(Enum):
    """Currencies the demo bank holds, with their ISO 4217 minor-unit exponent."""

    JOD = ("JOD", 3)
    SAR = ("SAR", 2)
    AED = ("AED", 2)
    USD = ("USD", 2)
    EUR = ("EUR", 2)
    GBP = ("GBP", 2)

    def __init__(self, code: str, exponent: int) -> None:
        self.code = code
        self.exponent = exponent

    @classmethod
    def of(cls, code: str) -> Currency:
        try:
            return cls[code.strip().upper()]
        except KeyError:
            raise InvalidAmount(f"unsupported currency {code!r}") from None


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An exact amount: ``minor`` units of ``currency`` (e.g. 1250 USD minor = 12.50 USD)."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise InvalidAmount("minor units must be an int")

    @classmethod
    def of_minor(cls, minor: int, currency: Currency | str) -> Money:
        cur = currency if isinstance(currency, Currency) else Currency.of(currency)
        return cls(minor, cur)

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str, currency: Currency | str) -> Money:
        """Parse ``"1,250.5"`` or ``"١٢٥٠٫٥"`` into Money; reject NaN, infinities and excess precision."""
        cur = currency if isinstance(currency, Currency) else Currency.of(currency)
        cleaned = to_ascii_digits(text).replace(",", "").replace("\u066c", "").replace("\u066b", ".").strip()
        if not cleaned or len(cleaned) > 32:
            raise InvalidAmount(f"not an amount: {text!r}")
        try:
            value = Decimal(cleaned)
        except InvalidOperation:
            raise InvalidAmount(f"not an amount: {text!r}") from None
        if not value.is_finite():
            raise InvalidAmount(f"not an amount: {text!r}")
        if value.adjusted() >= MAX_DIGITS:
            raise InvalidAmount(f"{text!r} is larger than any amount Amanah handles")
        scaled = value.scaleb(cur.exponent)
        if scaled != scaled.to_integral_value():
            raise InvalidAmount(f"{text!r} has more decimals than {cur.code} allows")
        return cls(int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN)), cur)

    @property
    def decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-self.currency.exponent)

    def _same(self, other: Money) -> None:
        if other.currency is not self.currency:
            raise InvalidAmount(f"cannot combine {self.currency.code} with {other.currency.code}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def is_negative(self) -> bool:
        return self.minor < 0

    def __str__(self) -> str:
        return f"{self.decimal:.{self.currency.exponent}f} {self.currency.code}"
