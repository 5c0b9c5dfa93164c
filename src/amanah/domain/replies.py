"""Replies built from typed values, each carrying its data category.

The assistant never writes a customer's balance or IBAN into a string. It composes a :class:`Reply`
from blocks; each block holds typed values (:class:`BalanceValue`, :class:`TransactionValue`, ...)
whose ``category`` is fixed by their type. A renderer turns a reply into channel text under a
mapping ``category -> Treatment``, so whoever renders knows exactly which categories each message
carries and can withhold what an agreement does not allow.

Free text that did not come from typed values (knowledge-base answers, human agents, templates)
is a :class:`FreeText` block: it is ``public`` by declaration and scanned by detectors before it
leaves for a third party.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import ClassVar

from amanah.domain.banking import AccountKind, CardStatus, TransactionStatus
from amanah.domain.categories import DataCategory
from amanah.domain.money import Money

# --- typed values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerNameValue:
    category: ClassVar[DataCategory] = DataCategory.CUSTOMER_NAME
    name: str


@dataclass(frozen=True, slots=True)
class AccountLabelValue:
    """The kind and product name of an account ("Current account"). Not an identifier: public."""

    category: ClassVar[DataCategory] = DataCategory.PUBLIC
    kind: AccountKind
    name: str


@dataclass(frozen=True, slots=True)
class AccountIdentifierValue:
    category: ClassVar[DataCategory] = DataCategory.ACCOUNT_IDENTIFIER
    iban: str

    @property
    def last4(self) -> str:
        return self.iban.replace(" ", "")[-4:]


@dataclass(frozen=True, slots=True)
class BalanceValue:
    category: ClassVar[DataCategory] = DataCategory.ACCOUNT_BALANCE
    booked: Money
    available: Money


@dataclass(frozen=True, slots=True)
class CardNumberValue:
    """Amanah only ever holds the last four digits of a card number."""

    category: ClassVar[DataCategory] = DataCategory.CARD_NUMBER
    last4: str
    brand: str


@dataclass(frozen=True, slots=True)
class CardStatusValue:
    category: ClassVar[DataCategory] = DataCategory.CARD_STATUS
    status: CardStatus


@dataclass(frozen=True, slots=True)
class TransactionValue:
    category: ClassVar[DataCategory] = DataCategory.TRANSACTION_DETAIL
    booked_on: date
    merchant: str
    amount: Money
    status: TransactionStatus


@dataclass(frozen=True, slots=True)
class TransactionFilterValue:
    """What a transaction search was about ("at Carrefour last month"): it echoes the customer's history."""

    category: ClassVar[DataCategory] = DataCategory.TRANSACTION_DETAIL
    label: str


@dataclass(frozen=True, slots=True)
class SpendingValue:
    """An aggregate of spending: the customer's habits. ``label`` says what it covers ("on groceries")."""

    category: ClassVar[DataCategory] = DataCategory.SPENDING_SUMMARY
    total: Money
    count: int
    label: str
    date_from: date | None
    date_to: date | None


@dataclass(frozen=True, slots=True)
class TransferValue:
    category: ClassVar[DataCategory] = DataCategory.TRANSFER_DETAIL
    payee_name: str
    amount: Money
    status: str


Value = (
    CustomerNameValue
    | AccountLabelValue
    | AccountIdentifierValue
    | BalanceValue
    | CardNumberValue
    | CardStatusValue
    | TransactionValue
    | TransactionFilterValue
    | SpendingValue
    | TransferValue
)


@dataclass(frozen=True, slots=True)
class TransactionCount:
    """A number of transactions, written with the language's plural rules. Public: it is a count."""

    n: int


Arg = Value | TransactionCount | str | int

# --- blocks -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    """A sentence from the message catalogue, ``key``, with arguments.

    Plain ``str``/``int`` arguments are public (labels, counts); anything else is a typed value.
    """

    key: str
    args: Mapping[str, Arg] = field(default_factory=dict)

    def values(self) -> Iterator[Value]:
        for arg in self.args.values():
            if not isinstance(arg, str | int | TransactionCount):
                yield arg


@dataclass(frozen=True, slots=True)
class BalanceLine:
    label: AccountLabelValue
    identifier: AccountIdentifierValue
    balance: BalanceValue

    def values(self) -> Iterator[Value]:
        yield from (self.label, self.identifier, self.balance)


@dataclass(frozen=True, slots=True)
class TransactionLine:
    transaction: TransactionValue

    def values(self) -> Iterator[Value]:
        yield self.transaction


@dataclass(frozen=True, slots=True)
class CardLine:
    label: str
    number: CardNumberValue
    status: CardStatusValue

    def values(self) -> Iterator[Value]:
        yield from (self.number, self.status)


@dataclass(frozen=True, slots=True)
class FreeText:
    """Text not built from typed values. ``origin`` says where it came from (kb:ID, agent, template)."""

    text: str
    origin: str

    def values(self) -> Iterator[Value]:
        return iter(())


Block = Say | BalanceLine | TransactionLine | CardLine | FreeText


@dataclass(frozen=True, slots=True)
class QuickReply:
    """A suggestion button. ``title`` is shown; ``payload`` is what comes back when tapped.

    When the title shows customer data (a card to choose), it is given as ``value`` instead and the
    renderer writes it under the channel's treatment, like any other typed value; ``title`` is then
    the fallback shown when the value is withheld.
    """

    title: str
    payload: str
    value: CardNumberValue | None = None


@dataclass(frozen=True, slots=True)
class LinkButton:
    """A URL button to the bank's own site (sign in, link an account, secure view)."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Reply:
    """What the assistant answers: blocks in order, then suggestions and link buttons.

    ``handoff``: the assistant hands the conversation to a person; after sending this reply a channel
    escalates (Messenger passes thread control to the human inbox, every channel opens a ticket and
    keeps the bot silent in that thread until an agent gives it back).
    """

    blocks: tuple[Block, ...]
    quick_replies: tuple[QuickReply, ...] = ()
    buttons: tuple[LinkButton, ...] = ()
    language: str = "en"
    handoff: bool = False

    def values(self) -> Iterator[Value]:
        for block in self.blocks:
            yield from block.values()
        for quick in self.quick_replies:
            if quick.value is not None:
                yield quick.value

    def categories(self) -> frozenset[DataCategory]:
        """Every category this reply carries; ``public`` always (sentences and free text)."""
        return frozenset({DataCategory.PUBLIC, *(v.category for v in self.values())})
