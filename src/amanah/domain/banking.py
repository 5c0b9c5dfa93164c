"""Value objects of the bank's core: customers, accounts, cards, payees, transactions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from amanah.domain.money import Currency, Money


class AccountKind(StrEnum):
    CURRENT = "current"
    SAVINGS = "savings"


class CardStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    LOST = "lost"
    STOLEN = "stolen"

    @property
    def is_final(self) -> bool:
        """A card reported lost or stolen is blocked for good; it can never be unfrozen."""
        return self in (CardStatus.LOST, CardStatus.STOLEN)


class TransactionStatus(StrEnum):
    PENDING = "pending"
    BOOKED = "booked"


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    username: str
    display_name: str
    language: str  # "en" or "ar": preferred language


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    customer_id: int
    kind: AccountKind
    name: str
    iban: str
    currency: Currency


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account: Account
    booked: Money  # settled transactions only
    available: Money  # booked minus pending debits


@dataclass(frozen=True, slots=True)
class Card:
    id: int
    customer_id: int
    account_id: int
    token: str  # opaque token from the card processor; Amanah never holds the PAN
    last4: str
    brand: str
    status: CardStatus


@dataclass(frozen=True, slots=True)
class Payee:
    id: int
    customer_id: int
    name: str
    iban: str
    bank_name: str
    bic: str


@dataclass(frozen=True, slots=True)
class Transaction:
    id: int
    account_id: int
    booked_on: date
    merchant: str
    category: str
    amount: Money  # negative = money out
    status: TransactionStatus


@dataclass(frozen=True, slots=True)
class TransactionQuery:
    """A search over one customer's transactions. All filters are optional and combine with AND."""

    customer_id: int
    account_id: int | None = None
    merchant: str | None = None
    category: str | None = None
    date_from: date | None = None  # inclusive
    date_to: date | None = None  # inclusive
    debits_only: bool = False
    limit: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= 500:
            raise ValueError("limit must be between 1 and 500")


@dataclass(frozen=True, slots=True)
class SpendingTotal:
    """Debits of one category in one currency: ``total`` is positive, ``count`` how many."""

    category: str
    total: Money
    count: int
