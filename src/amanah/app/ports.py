"""Ports: the Protocols the use cases need from the outside world. Adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from amanah.domain.banking import (
    Account,
    AccountBalance,
    Card,
    CardStatus,
    Customer,
    Payee,
    SpendingTotal,
    Transaction,
    TransactionQuery,
)
from amanah.domain.conversation import Channel, ConversationState, Turn
from amanah.domain.intents import Classification
from amanah.domain.linking import (
    Binding,
    ConsentMethod,
    ConsentRecord,
    GrantKind,
    LinkGrant,
    WithdrawalMethod,
)


class CoreBanking(Protocol):
    """The bank's core system. The built-in one lives on Amanah's database; a real bank swaps it.

    Every method is scoped to one customer: asking for another customer's card or account raises
    :class:`~amanah.domain.errors.NotFound`, never returns it.
    """

    def customer(self, customer_id: int) -> Customer: ...

    def customer_by_username(self, username: str) -> Customer: ...

    def accounts(self, customer_id: int) -> Sequence[Account]: ...

    def balances(self, customer_id: int) -> Sequence[AccountBalance]: ...

    def search_transactions(self, query: TransactionQuery) -> Sequence[Transaction]: ...

    def spending(self, query: TransactionQuery) -> Sequence[SpendingTotal]:
        """All debits matching ``query`` (its ``limit`` ignored) summed per (category, currency)."""
        ...

    def merchants(self, customer_id: int) -> Sequence[str]:
        """Distinct merchant names in the customer's history, for recognising them in messages."""
        ...

    def categories(self, customer_id: int) -> Sequence[str]:
        """Distinct spending categories in the customer's history."""
        ...

    def cards(self, customer_id: int) -> Sequence[Card]: ...

    def set_card_status(self, customer_id: int, card_id: int, status: CardStatus, reason: str) -> Card:
        """Change a card's status and record why; LOST/STOLEN are final and cannot be undone."""
        ...

    def payees(self, customer_id: int) -> Sequence[Payee]: ...


class Authenticator(Protocol):
    """Checks a customer's bank credentials on the bank's own site. Never used on a third party."""

    def authenticate(self, username: str, password: str) -> Customer | None: ...


class ConversationStore(Protocol):
    """Keeps conversation state per (channel, user) and an append-only list of turns."""

    def load(self, channel: Channel, user_id: str) -> ConversationState:
        """The stored state, or a fresh one (not yet saved) for a new user."""
        ...

    def save(self, state: ConversationState, turn: Turn | None = None) -> ConversationState:
        """Persist ``state`` and append ``turn`` atomically; returns the state with its id set."""
        ...

    def turns(self, channel: Channel, user_id: str, limit: int = 50) -> Sequence[Turn]:
        """The most recent turns, oldest first."""
        ...

    def waiting_for_agent(self) -> Sequence[ConversationState]: ...


class Classifier(Protocol):
    """Maps a message to an intent. Pluggable: rules, a trained model, or an embedding model."""

    def classify(self, text: str, language: str) -> Classification: ...


@dataclass(frozen=True, slots=True)
class KbEntry:
    """One knowledge-base article, in both languages."""

    id: str
    topic: str
    questions: dict[str, tuple[str, ...]]  # language -> ways customers ask
    answers: dict[str, str]  # language -> answer


@dataclass(frozen=True, slots=True)
class KbHit:
    entry: KbEntry
    score: float  # in [0, 1]


class KnowledgeBase(Protocol):
    """The bank's FAQ, edited by the bank in one file."""

    def search(self, text: str, language: str, limit: int = 3) -> Sequence[KbHit]: ...

    def entries(self) -> Sequence[KbEntry]: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        ...

    def today(self) -> date: ...


@dataclass(frozen=True, slots=True)
class Screening:
    """What an inbound message contains that must not be kept, and its redacted form."""

    redacted: str  # safe to store and log
    credential: bool  # a PIN, CVV, OTP or password was typed
    card_last4s: tuple[str, ...] = ()  # last 4 digits of each full card number typed
    identifiers: bool = False  # card numbers, IBANs or account numbers were typed


class InboundScreen(Protocol):
    """Finds credentials and identifiers in what a customer typed, before anything is stored."""

    def screen(self, text: str) -> Screening: ...


class LinkStore(Protocol):
    """Bindings of platform users to customers, their consent records, and one-time link secrets.

    Consent records are never deleted: withdrawing sets ``withdrawn_at``/``withdrawn_how`` and removes
    the binding in the same transaction. At most one binding exists per (channel, user_id).
    """

    def binding(self, channel: Channel, user_id: str) -> Binding | None: ...

    def bindings_of(self, customer_id: int) -> Sequence[Binding]:
        """The customer's live bindings, oldest first."""
        ...

    def bind(
        self,
        *,
        channel: Channel,
        user_id: str,
        customer_id: int,
        agreement_id: str,
        agreement_version: str,
        method: ConsentMethod,
        given_at: datetime,
        at: datetime,
    ) -> Binding:
        """Record the consent and create the binding atomically; an existing binding of the same
        (channel, user_id) is replaced and its consent withdrawn as ``relinked``."""
        ...

    def unbind(self, channel: Channel, user_id: str, how: WithdrawalMethod, at: datetime) -> Binding | None:
        """Remove the binding and withdraw its consent atomically; the removed binding, or None."""
        ...

    def unbind_consent(
        self, consent_id: int, customer_id: int, how: WithdrawalMethod, at: datetime
    ) -> Binding | None:
        """Like :meth:`unbind`, but only the binding made under consent ``consent_id`` of
        ``customer_id``; None (changing nothing) if that binding no longer exists."""
        ...

    def consents(self, customer_id: int) -> Sequence[ConsentRecord]:
        """Every consent record of the customer, withdrawn ones too, newest first."""
        ...

    def add_grant(self, grant: LinkGrant) -> None: ...

    def grant(self, kind: GrantKind, token_hash: str) -> LinkGrant | None:
        """The grant as stored (used or not), without changing it."""
        ...

    def redeem_grant(self, kind: GrantKind, token_hash: str, at: datetime) -> LinkGrant | None:
        """Atomically mark an unused, unexpired grant used at ``at``; the grant, or None if not usable."""
        ...

    def purge_grants(self, before: datetime) -> int:
        """Delete grants that expired before ``before``; returns how many."""
        ...
