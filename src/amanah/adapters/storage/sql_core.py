"""The built-in core bank on Amanah's own database (SQLite or PostgreSQL).

:class:`SqlCoreBanking` implements :class:`~amanah.app.ports.CoreBanking`; :class:`SqlAuthenticator`
implements :class:`~amanah.app.ports.Authenticator`. Every read is scoped to one customer: another
customer's card or account is reported as :class:`~amanah.domain.errors.NotFound`.

Rules (shared with the in-memory fake in ``memory.py``; ``tests/integration/test_storage_contract.py``
holds both to them):

* Balances: ``booked`` is the sum of booked transactions; ``available`` is ``booked`` plus pending
  debits (pending credits are not available until they are booked).
* Transaction search: all filters of :class:`~amanah.domain.banking.TransactionQuery` combine with
  AND; ``merchant`` matches case-insensitively as a substring (so an exact name matches too),
  ``category`` matches exactly, case-insensitively; blank filters are ignored; newest first
  (``booked_on`` then id, descending); pending transactions are included.
* Card status: setting the current status again changes nothing and records nothing; any change
  away from a final status (LOST/STOLEN) raises :class:`~amanah.domain.errors.CardBlocked`; every
  change appends a row to ``card_status_changes``.
* Unknown customer ids raise :class:`~amanah.domain.errors.UnknownCustomer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, bindparam, case, func, select

from amanah.adapters.storage.db import write_engine
from amanah.adapters.storage.passwords import dummy_hash, verify_password
from amanah.adapters.storage.records import CardStatusChange, clean_reason, escape_like
from amanah.adapters.storage.schema import (
    accounts,
    card_status_changes,
    cards,
    core_transactions,
    customers,
    payees,
)
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
from amanah.domain.errors import CardBlocked, NotFound, UnknownCustomer
from amanah.domain.money import Currency, Money


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _customer(row: Row[Any]) -> Customer:
    return Customer(id=row.id, username=row.username, display_name=row.display_name, language=row.language)


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        customer_id=row.customer_id,
        kind=AccountKind(row.kind),
        name=row.name,
        iban=row.iban,
        currency=Currency.of(row.currency),
    )


def _card(row: Row[Any]) -> Card:
    return Card(
        id=row.id,
        customer_id=row.customer_id,
        account_id=row.account_id,
        token=row.token,
        last4=row.last4,
        brand=row.brand,
        status=CardStatus(row.status),
    )


def _transaction(row: Row[Any]) -> Transaction:
    return Transaction(
        id=row.id,
        account_id=row.account_id,
        booked_on=row.booked_on,
        merchant=row.merchant,
        category=row.category,
        amount=Money.of_minor(int(row.amount_minor), row.currency),
        status=TransactionStatus(row.status),
    )


class SqlCoreBanking:
    """The ``CoreBanking`` port on the ``customers``/``accounts``/``cards``/... tables."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        self._now = now

    # -- customers ---------------------------------------------------------------------------------

    def customer(self, customer_id: int) -> Customer:
        with self._engine.connect() as conn:
            return self._require_customer(conn, customer_id)

    def customer_by_username(self, username: str) -> Customer:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(customers).where(customers.c.username == username.strip().lower())
            ).first()
        if row is None:
            raise UnknownCustomer("no such customer")
        return _customer(row)

    @staticmethod
    def _require_customer(conn: Connection, customer_id: int) -> Customer:
        row = conn.execute(_CUSTOMER_BY_ID, {"customer_id": customer_id}).first()
        if row is None:
            raise UnknownCustomer(f"no customer with id {customer_id}")
        return _customer(row)

    # -- accounts and balances ---------------------------------------------------------------------

    def accounts(self, customer_id: int) -> Sequence[Account]:
        with self._engine.connect() as conn:
            self._require_customer(conn, customer_id)
            rows = conn.execute(
                select(accounts).where(accounts.c.customer_id == customer_id).order_by(accounts.c.id)
            ).all()
        return [_account(r) for r in rows]

    def balances(self, customer_id: int) -> Sequence[AccountBalance]:
        t = core_transactions
        booked = func.coalesce(func.sum(case((t.c.status == "booked", t.c.amount_minor), else_=0)), 0)
        pending_debits = func.coalesce(
            func.sum(case((and_(t.c.status == "pending", t.c.amount_minor < 0), t.c.amount_minor), else_=0)),
            0,
        )
        stmt = (
            select(accounts, booked.label("booked_minor"), pending_debits.label("pending_debits_minor"))
            .select_from(accounts.outerjoin(t, t.c.account_id == accounts.c.id))
            .where(accounts.c.customer_id == customer_id)
            .group_by(*accounts.c)
            .order_by(accounts.c.id)
        )
        with self._engine.connect() as conn:
            self._require_customer(conn, customer_id)
            rows = conn.execute(stmt).all()
        result = []
        for row in rows:
            account = _account(row)
            booked_money = Money(int(row.booked_minor), account.currency)
            available = booked_money + Money(int(row.pending_debits_minor), account.currency)
            result.append(AccountBalance(account=account, booked=booked_money, available=available))
        return result

    # -- transactions ------------------------------------------------------------------------------

    def search_transactions(self, query: TransactionQuery) -> Sequence[Transaction]:
        t = core_transactions
        stmt = self._filtered(select(t), query)
        stmt = stmt.order_by(t.c.booked_on.desc(), t.c.id.desc()).limit(query.limit)
        with self._engine.connect() as conn:
            self._require_customer(conn, query.customer_id)
            if query.account_id is not None:
                self._require_account(conn, query.customer_id, query.account_id)
            rows = conn.execute(stmt).all()
        return [_transaction(r) for r in rows]

    def spending(self, query: TransactionQuery) -> Sequence[SpendingTotal]:
        t = core_transactions
        stmt = self._filtered(
            select(t.c.category, t.c.currency, func.sum(t.c.amount_minor), func.count()).where(
                t.c.amount_minor < 0
            ),
            query,
        ).group_by(t.c.category, t.c.currency)
        with self._engine.connect() as conn:
            self._require_customer(conn, query.customer_id)
            if query.account_id is not None:
                self._require_account(conn, query.customer_id, query.account_id)
            rows = conn.execute(stmt).all()
        return [
            SpendingTotal(str(cat), Money.of_minor(-int(total), str(cur)), int(n))
            for cat, cur, total, n in sorted(rows, key=lambda r: (str(r[0]), str(r[1])))
        ]

    @staticmethod
    def _filtered(stmt: Any, query: TransactionQuery) -> Any:
        t = core_transactions
        stmt = stmt.select_from(t.join(accounts, accounts.c.id == t.c.account_id)).where(
            accounts.c.customer_id == query.customer_id
        )
        if query.account_id is not None:
            stmt = stmt.where(t.c.account_id == query.account_id)
        merchant = (query.merchant or "").strip()
        if merchant:
            pattern = f"%{escape_like(merchant.lower())}%"
            stmt = stmt.where(func.lower(t.c.merchant).like(pattern, escape="\\"))
        category = (query.category or "").strip()
        if category:
            stmt = stmt.where(func.lower(t.c.category) == category.lower())
        if query.date_from is not None:
            stmt = stmt.where(t.c.booked_on >= query.date_from)
        if query.date_to is not None:
            stmt = stmt.where(t.c.booked_on <= query.date_to)
        if query.debits_only:
            stmt = stmt.where(t.c.amount_minor < 0)
        return stmt

    @staticmethod
    def _require_account(conn: Connection, customer_id: int, account_id: int) -> None:
        owned = conn.execute(
            select(accounts.c.id).where(accounts.c.id == account_id, accounts.c.customer_id == customer_id)
        ).first()
        if owned is None:
            raise NotFound(f"no account {account_id} for this customer")

    def _distinct(self, customer_id: int, column: Any) -> Sequence[str]:
        stmt = _DISTINCT[column.name]
        with self._engine.connect() as conn:
            self._require_customer(conn, customer_id)
            values = {str(v) for v in conn.execute(stmt, {"customer_id": customer_id}).scalars()}
        return sorted(values)  # code-point order on every backend, whatever the collation

    def merchants(self, customer_id: int) -> Sequence[str]:
        return self._distinct(customer_id, core_transactions.c.merchant)

    def categories(self, customer_id: int) -> Sequence[str]:
        return self._distinct(customer_id, core_transactions.c.category)

    # -- cards -------------------------------------------------------------------------------------

    def cards(self, customer_id: int) -> Sequence[Card]:
        with self._engine.connect() as conn:
            self._require_customer(conn, customer_id)
            rows = conn.execute(
                select(cards).where(cards.c.customer_id == customer_id).order_by(cards.c.id)
            ).all()
        return [_card(r) for r in rows]

    def set_card_status(self, customer_id: int, card_id: int, status: CardStatus, reason: str) -> Card:
        status = CardStatus(status)
        with self._writer.begin() as conn:
            self._require_customer(conn, customer_id)
            row = conn.execute(
                select(cards)
                .where(cards.c.id == card_id, cards.c.customer_id == customer_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no card {card_id} for this customer")
            card = _card(row)
            if card.status == status:
                return card
            if card.status.is_final:
                raise CardBlocked(f"card ending {card.last4} is {card.status.value}; its status is final")
            conn.execute(cards.update().where(cards.c.id == card_id).values(status=status.value))
            conn.execute(
                card_status_changes.insert().values(
                    card_id=card_id,
                    from_status=card.status.value,
                    to_status=status.value,
                    reason=clean_reason(reason),
                    at=self._now(),
                )
            )
        return Card(
            id=card.id,
            customer_id=card.customer_id,
            account_id=card.account_id,
            token=card.token,
            last4=card.last4,
            brand=card.brand,
            status=status,
        )

    def card_status_history(self, customer_id: int, card_id: int) -> Sequence[CardStatusChange]:
        """The card's status changes, oldest first (not part of the port: for staff views and tests)."""
        c = card_status_changes
        with self._engine.connect() as conn:
            owned = conn.execute(
                select(cards.c.id).where(cards.c.id == card_id, cards.c.customer_id == customer_id)
            ).first()
            if owned is None:
                raise NotFound(f"no card {card_id} for this customer")
            rows = conn.execute(select(c).where(c.c.card_id == card_id).order_by(c.c.id)).all()
        return [
            CardStatusChange(
                card_id=r.card_id,
                from_status=CardStatus(r.from_status),
                to_status=CardStatus(r.to_status),
                reason=r.reason,
                at=r.at,
            )
            for r in rows
        ]

    # -- payees ------------------------------------------------------------------------------------

    def payees(self, customer_id: int) -> Sequence[Payee]:
        with self._engine.connect() as conn:
            self._require_customer(conn, customer_id)
            rows = conn.execute(
                select(payees).where(payees.c.customer_id == customer_id).order_by(payees.c.id)
            ).all()
        return [
            Payee(
                id=r.id, customer_id=r.customer_id, name=r.name, iban=r.iban, bank_name=r.bank_name, bic=r.bic
            )
            for r in rows
        ]


class SqlAuthenticator:
    """The ``Authenticator`` port on ``customers.password_hash`` (format in ``passwords.py``).

    Usernames match case-insensitively. An unknown username costs the same scrypt work as a wrong
    password, so response time does not reveal which usernames exist.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def authenticate(self, username: str, password: str) -> Customer | None:
        name = username.strip().lower()
        row = None
        if 0 < len(name) <= 64:
            with self._engine.connect() as conn:
                row = conn.execute(select(customers).where(customers.c.username == name)).first()
        if row is None:
            verify_password(password, dummy_hash())
            return None
        if not verify_password(password, row.password_hash):
            return None
        return _customer(row)


# Built once (values bound at execution): a statement built per call costs SQLAlchemy a cache-key
# walk every time, and these run on every message that names a merchant, a category or an account.
_CUSTOMER_BY_ID = select(customers).where(customers.c.id == bindparam("customer_id"))
_DISTINCT = {
    column.name: select(column)
    .distinct()
    .join(accounts, accounts.c.id == core_transactions.c.account_id)
    .where(accounts.c.customer_id == bindparam("customer_id"))
    for column in (core_transactions.c.merchant, core_transactions.c.category)
}
