"""The database schema of the built-in core bank and the conversation store (SQLAlchemy Core).

There is one :data:`metadata`; other modules (``schema_channels.py``, ...) add their tables to it.
Tables are created by the Alembic migrations in ``migrations/``, never by ``metadata.create_all``
in production; ``tests/integration/test_storage_migrations.py`` checks the two agree.

Conventions:
* Ids are 64-bit on PostgreSQL and SQLite's rowid integer on SQLite (:func:`id_column`).
* Timestamps are :class:`UtcDateTime`: timezone-aware UTC in and out, on both backends.
* Money is ``amount_minor`` (signed BIGINT, minor units) plus a ``currency`` code: never a float.
* ``core_transactions`` and ``card_status_changes`` are append-only; the migration installs
  triggers that refuse ``UPDATE`` on them.
* No column holds a card number (PAN), CVV, PIN or a password: cards keep the processor's token
  and the last four digits; customers keep a salted scrypt hash (see ``passwords.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""Primary/foreign key type: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite."""

JsonDoc = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
"""A JSON document: JSONB on PostgreSQL, JSON text on SQLite. Python ``None`` is SQL NULL."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend. Naive datetimes are refused, not guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def id_column() -> Column[Any]:
    return Column("id", BigId, primary_key=True, autoincrement=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


ACCOUNT_KINDS = ("current", "savings")
CARD_STATUSES = ("active", "frozen", "lost", "stolen")
TRANSACTION_STATUSES = ("pending", "booked")
CONVERSATION_STATUSES = ("active", "waiting_agent")

customers = Table(
    "customers",
    metadata,
    id_column(),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("language", String(8), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    id_column(),
    Column("customer_id", BigId, ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(100), nullable=False),
    Column("iban", String(34), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    CheckConstraint(_in("kind", ACCOUNT_KINDS), name="kind"),
)

cards = Table(
    "cards",
    metadata,
    id_column(),
    Column("customer_id", BigId, ForeignKey("customers.id"), nullable=False, index=True),
    Column("account_id", BigId, ForeignKey("accounts.id"), nullable=False, index=True),
    Column("token", String(64), nullable=False, unique=True),
    Column("last4", String(4), nullable=False),
    Column("brand", String(20), nullable=False),
    Column("status", String(16), nullable=False),
    Column("expires", String(5), nullable=False),  # "MM/YY"
    CheckConstraint("length(last4) = 4", name="last4_len"),
    CheckConstraint("length(expires) = 5", name="expires_len"),
    CheckConstraint(_in("status", CARD_STATUSES), name="status"),
)

card_status_changes = Table(
    "card_status_changes",
    metadata,
    id_column(),
    Column("card_id", BigId, ForeignKey("cards.id"), nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Index("ix_card_status_changes_card_id_id", "card_id", "id"),
)

payees = Table(
    "payees",
    metadata,
    id_column(),
    Column("customer_id", BigId, ForeignKey("customers.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("iban", String(34), nullable=False),
    Column("bank_name", String(200), nullable=False),
    Column("bic", String(11), nullable=False),
    UniqueConstraint("customer_id", "iban"),
)

core_transactions = Table(
    "core_transactions",
    metadata,
    id_column(),
    Column("account_id", BigId, ForeignKey("accounts.id"), nullable=False),
    Column("booked_on", Date, nullable=False),
    Column("merchant", String(200), nullable=False),
    Column("category", String(50), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),  # signed: negative = money out
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reference", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    CheckConstraint(_in("status", TRANSACTION_STATUSES), name="status"),
    # Newest-first search within an account, and the balance aggregation.
    Index("ix_core_transactions_account_id_booked_on", "account_id", "booked_on", "id"),
)

conversations = Table(
    "conversations",
    metadata,
    id_column(),
    Column("channel", String(16), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("customer_id", BigId, ForeignKey("customers.id", ondelete="SET NULL"), nullable=True, index=True),
    Column("language", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pending", JsonDoc, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("channel", "user_id"),
    CheckConstraint(_in("status", CONVERSATION_STATUSES), name="status"),
    Index("ix_conversations_status_updated_at", "status", "updated_at"),
)

turns = Table(
    "turns",
    metadata,
    id_column(),
    Column("conversation_id", BigId, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("inbound_text", Text, nullable=False),
    Column("intent", String(64), nullable=False),
    Column("confidence", Float, nullable=False),  # a classifier score, not money
    Column("reply_text", Text, nullable=False),
    Column("language", String(8), nullable=False),
    Column("meta", JsonDoc, nullable=False),
    Index("ix_turns_conversation_id_id", "conversation_id", "id"),
)

APPEND_ONLY_TABLES = ("core_transactions", "card_status_changes")
