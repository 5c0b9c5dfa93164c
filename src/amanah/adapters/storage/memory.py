"""In-memory fakes of the storage ports, for unit tests. Same behaviour as the SQL adapters.

``tests/integration/test_storage_contract.py`` runs the same assertions against these fakes and the
SQL adapters, so the two cannot drift apart. The rules are listed in ``sql_core.py`` and
``sql_conversations.py``. Fill the fakes with the ``add_*`` methods, or with
:func:`amanah.adapters.core.demo.demo_in_memory`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from amanah.adapters.storage.passwords import dummy_hash, hash_password, verify_password
from amanah.adapters.storage.records import CardStatusChange, clean_reason, json_roundtrip, require_aware
from amanah.domain.banking import (
    Account,
    AccountBalance,
    AccountKind,
    Card,
    CardStatus,
    Customer,
    Payee,
    SpendingTotal,
    Transaction,
    TransactionQuery,
    TransactionStatus,
)
from amanah.domain.conversation import Channel, ConversationState, ConversationStatus, Turn
from amanah.domain.errors import CardBlocked, NotFound, UnknownCustomer
from amanah.domain.money import Currency, Money


def _utcnow() -> datetime:
    return datetime.now(UTC)


class InMemoryCoreBanking:
    """The ``CoreBanking`` port on Python dictionaries. Thread-safe."""

    def __init__(self, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._lock = threading.RLock()
        self._now = now
        self._customers: dict[int, Customer] = {}
        self._accounts: dict[int, Account] = {}
        self._cards: dict[int, Card] = {}
        self._payees: dict[int, Payee] = {}
        self._transactions: dict[int, Transaction] = {}
        self._history: list[CardStatusChange] = []
        self._last_ids: dict[str, int] = {}

    def _new_id(self, table: str) -> int:
        """Ids count up per table, as in the SQL adapter (so an account id is never a card id by luck)."""
        self._last_ids[table] = self._last_ids.get(table, 0) + 1
        return self._last_ids[table]

    # -- filling the fake --------------------------------------------------------------------------

    def add_customer(self, username: str, display_name: str, language: str = "en") -> Customer:
        with self._lock:
            name = username.strip().lower()
            if any(c.username == name for c in self._customers.values()):
                raise ValueError(f"username {name!r} is taken")
            customer = Customer(
                id=self._new_id("customers"), username=name, display_name=display_name, language=language
            )
            self._customers[customer.id] = customer
            return customer

    def add_account(
        self, customer_id: int, kind: AccountKind, name: str, iban: str, currency: Currency
    ) -> Account:
        with self._lock:
            self._require_customer(customer_id)
            if any(a.iban == iban for a in self._accounts.values()):
                raise ValueError("IBAN already used by another account")
            account = Account(
                id=self._new_id("accounts"),
                customer_id=customer_id,
                kind=AccountKind(kind),
                name=name,
                iban=iban,
                currency=currency,
            )
            self._accounts[account.id] = account
            return account

    def add_card(
        self,
        customer_id: int,
        account_id: int,
        token: str,
        last4: str,
        brand: str,
        status: CardStatus = CardStatus.ACTIVE,
    ) -> Card:
        with self._lock:
            if (
                self._accounts.get(account_id) is None
                or self._accounts[account_id].customer_id != customer_id
            ):
                raise NotFound("no such account for this customer")
            if len(last4) != 4 or not last4.isdigit():
                raise ValueError("last4 must be exactly four digits")
            card = Card(
                id=self._new_id("cards"),
                customer_id=customer_id,
                account_id=account_id,
                token=token,
                last4=last4,
                brand=brand,
                status=CardStatus(status),
            )
            self._cards[card.id] = card
            return card

    def add_payee(self, customer_id: int, name: str, iban: str, bank_name: str, bic: str) -> Payee:
        with self._lock:
            self._require_customer(customer_id)
            payee = Payee(
                id=self._new_id("payees"),
                customer_id=customer_id,
                name=name,
                iban=iban,
                bank_name=bank_name,
                bic=bic,
            )
            self._payees[payee.id] = payee
            return payee

    def add_transaction(
        self,
        account_id: int,
        booked_on: date,
        merchant: str,
        category: str,
        amount: Money,
        status: TransactionStatus = TransactionStatus.BOOKED,
    ) -> Transaction:
        with self._lock:
            account = self._accounts.get(account_id)
            if account is None:
                raise NotFound("no such account")
            if amount.currency is not account.currency:
                raise ValueError("transaction currency differs from the account's")
            tx = Transaction(
                id=self._new_id("transactions"),
                account_id=account_id,
                booked_on=booked_on,
                merchant=merchant,
                category=category,
                amount=amount,
                status=TransactionStatus(status),
            )
            self._transactions[tx.id] = tx
            return tx

    # -- the port ----------------------------------------------------------------------------------

    def _require_customer(self, customer_id: int) -> Customer:
        customer = self._customers.get(customer_id)
        if customer is None:
            raise UnknownCustomer(f"no customer with id {customer_id}")
        return customer

    def customer(self, customer_id: int) -> Customer:
        with self._lock:
            return self._require_customer(customer_id)

    def customer_by_username(self, username: str) -> Customer:
        name = username.strip().lower()
        with self._lock:
            for customer in self._customers.values():
                if customer.username == name:
                    return customer
        raise UnknownCustomer("no such customer")

    def accounts(self, customer_id: int) -> Sequence[Account]:
        with self._lock:
            self._require_customer(customer_id)
            return sorted(
                (a for a in self._accounts.values() if a.customer_id == customer_id), key=lambda a: a.id
            )

    def balances(self, customer_id: int) -> Sequence[AccountBalance]:
        with self._lock:
            result = []
            for account in self.accounts(customer_id):
                booked = Money.zero(account.currency)
                pending_debits = Money.zero(account.currency)
                for tx in self._transactions.values():
                    if tx.account_id != account.id:
                        continue
                    if tx.status is TransactionStatus.BOOKED:
                        booked += tx.amount
                    elif tx.amount.is_negative():
                        pending_debits += tx.amount
                result.append(
                    AccountBalance(account=account, booked=booked, available=booked + pending_debits)
                )
            return result

    def search_transactions(self, query: TransactionQuery) -> Sequence[Transaction]:
        with self._lock:
            hits = self._matching(query)
            hits.sort(key=lambda tx: (tx.booked_on, tx.id), reverse=True)
            return hits[: query.limit]

    def _matching(self, query: TransactionQuery) -> list[Transaction]:
        """Transactions matching ``query`` in no particular order; the caller holds the lock."""
        self._require_customer(query.customer_id)
        owned = {a.id for a in self._accounts.values() if a.customer_id == query.customer_id}
        if query.account_id is not None and query.account_id not in owned:
            raise NotFound(f"no account {query.account_id} for this customer")
        merchant = (query.merchant or "").strip().lower()
        category = (query.category or "").strip().lower()
        hits = [
            tx
            for tx in self._transactions.values()
            if tx.account_id in owned
            and (query.account_id is None or tx.account_id == query.account_id)
            and (not merchant or merchant in tx.merchant.lower())
            and (not category or tx.category.lower() == category)
            and (query.date_from is None or tx.booked_on >= query.date_from)
            and (query.date_to is None or tx.booked_on <= query.date_to)
            and (not query.debits_only or tx.amount.is_negative())
        ]
        return hits

    def spending(self, query: TransactionQuery) -> Sequence[SpendingTotal]:
        everything = replace(query, debits_only=True, limit=1)  # limit is ignored below
        with self._lock:
            hits = self._matching(everything)
        groups: dict[tuple[str, str], list[Transaction]] = {}
        for tx in hits:
            groups.setdefault((tx.category, tx.amount.currency.code), []).append(tx)
        return [
            SpendingTotal(cat, Money.of_minor(-sum(tx.amount.minor for tx in txs), cur), len(txs))
            for (cat, cur), txs in sorted(groups.items())
        ]

    def _owned_transactions(self, customer_id: int) -> list[Transaction]:
        self._require_customer(customer_id)
        owned = {a.id for a in self._accounts.values() if a.customer_id == customer_id}
        return [tx for tx in self._transactions.values() if tx.account_id in owned]

    def merchants(self, customer_id: int) -> Sequence[str]:
        with self._lock:
            return sorted({tx.merchant for tx in self._owned_transactions(customer_id)})

    def categories(self, customer_id: int) -> Sequence[str]:
        with self._lock:
            return sorted({tx.category for tx in self._owned_transactions(customer_id)})

    def cards(self, customer_id: int) -> Sequence[Card]:
        with self._lock:
            self._require_customer(customer_id)
            return sorted(
                (c for c in self._cards.values() if c.customer_id == customer_id), key=lambda c: c.id
            )

    def set_card_status(self, customer_id: int, card_id: int, status: CardStatus, reason: str) -> Card:
        status = CardStatus(status)
        with self._lock:
            self._require_customer(customer_id)
            card = self._cards.get(card_id)
            if card is None or card.customer_id != customer_id:
                raise NotFound(f"no card {card_id} for this customer")
            if card.status == status:
                return card
            if card.status.is_final:
                raise CardBlocked(f"card ending {card.last4} is {card.status.value}; its status is final")
            changed = replace(card, status=status)
            self._cards[card_id] = changed
            self._history.append(
                CardStatusChange(
                    card_id=card_id,
                    from_status=card.status,
                    to_status=status,
                    reason=clean_reason(reason),
                    at=require_aware(self._now(), "now"),
                )
            )
            return changed

    def card_status_history(self, customer_id: int, card_id: int) -> Sequence[CardStatusChange]:
        """The card's status changes, oldest first (not part of the port: for staff views and tests)."""
        with self._lock:
            card = self._cards.get(card_id)
            if card is None or card.customer_id != customer_id:
                raise NotFound(f"no card {card_id} for this customer")
            return [h for h in self._history if h.card_id == card_id]

    def payees(self, customer_id: int) -> Sequence[Payee]:
        with self._lock:
            self._require_customer(customer_id)
            return sorted(
                (p for p in self._payees.values() if p.customer_id == customer_id), key=lambda p: p.id
            )


class InMemoryAuthenticator:
    """The ``Authenticator`` port over an :class:`InMemoryCoreBanking`'s customers.

    Passwords are kept as scrypt hashes like the SQL adapter's, with a low cost (``n``) by default
    so unit tests stay fast.
    """

    def __init__(self, core: InMemoryCoreBanking, *, n: int = 2**10) -> None:
        self._core = core
        self._n = n
        self._hashes: dict[str, str] = {}
        self._lock = threading.Lock()

    def set_password(self, username: str, password: str) -> None:
        customer = self._core.customer_by_username(username)
        encoded = hash_password(password, n=self._n)
        with self._lock:
            self._hashes[customer.username] = encoded

    def authenticate(self, username: str, password: str) -> Customer | None:
        name = username.strip().lower()
        with self._lock:
            encoded = self._hashes.get(name)
        if encoded is None:
            verify_password(password, dummy_hash())
            return None
        if not verify_password(password, encoded):
            return None
        try:
            return self._core.customer_by_username(name)
        except UnknownCustomer:
            return None


@dataclass(slots=True)
class _StoredConversation:
    state: ConversationState
    created_at: datetime
    turns: list[Turn]


class InMemoryConversationStore:
    """The ``ConversationStore`` port on a dictionary. Values are JSON round-tripped like the SQL one."""

    def __init__(self, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._rows: dict[tuple[Channel, str], _StoredConversation] = {}
        self._next_id = 0

    @staticmethod
    def _copy(state: ConversationState) -> ConversationState:
        return replace(state, pending=json_roundtrip(state.pending))

    def load(self, channel: Channel, user_id: str) -> ConversationState:
        channel = Channel(channel)
        with self._lock:
            stored = self._rows.get((channel, user_id))
            if stored is None:
                return ConversationState(channel=channel, user_id=user_id)
            return self._copy(stored.state)

    def save(self, state: ConversationState, turn: Turn | None = None) -> ConversationState:
        now = require_aware(self._now(), "now")
        pending = json_roundtrip(state.pending)
        stored_turn = None
        if turn is not None:
            stored_turn = replace(
                turn,
                at=require_aware(turn.at, "Turn.at"),
                confidence=float(turn.confidence),
                meta=json_roundtrip(dict(turn.meta)),
            )
        channel = Channel(state.channel)
        key = (channel, state.user_id)
        with self._lock:
            existing = self._rows.get(key)
            if existing is None:
                self._next_id += 1
                conversation_id = self._next_id
                existing = _StoredConversation(state=state, created_at=now, turns=[])
                self._rows[key] = existing
            else:
                assert existing.state.id is not None
                conversation_id = existing.state.id
            saved = replace(
                state,
                channel=channel,
                status=ConversationStatus(state.status),
                pending=pending,
                id=conversation_id,
                updated_at=now,
            )
            existing.state = saved
            if stored_turn is not None:
                existing.turns.append(stored_turn)
            return self._copy(saved)

    def turns(self, channel: Channel, user_id: str, limit: int = 50) -> Sequence[Turn]:
        if limit < 1:
            return []
        with self._lock:
            stored = self._rows.get((Channel(channel), user_id))
            if stored is None:
                return []
            return [replace(t, meta=json_roundtrip(t.meta)) for t in stored.turns[-limit:]]

    def waiting_for_agent(self) -> Sequence[ConversationState]:
        """Conversations handed to a human agent, longest-waiting first."""
        with self._lock:
            waiting = [
                s.state for s in self._rows.values() if s.state.status is ConversationStatus.WAITING_AGENT
            ]
            waiting.sort(key=lambda s: (s.updated_at or datetime.min.replace(tzinfo=UTC), s.id or 0))
            return [self._copy(s) for s in waiting]
