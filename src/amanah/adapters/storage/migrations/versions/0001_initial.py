"""Initial schema: the built-in core bank and the conversation store.

Revision ID: 0001_initial
Revises:
Create Date: 2026-01-01

Later migrations from other modules may branch from this one (``down_revision = "0001_initial"``);
``migrate()`` upgrades to all heads. Types and names here must match ``schema.py``: the test
``test_storage_migrations.py`` compares them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
Utc = sa.DateTime(timezone=True)

APPEND_ONLY = ("core_transactions", "card_status_changes")


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, referred: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{referred}.id"], name=op.f(f"fk_{table}_{column}_{referred}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", Utc, nullable=False),
        _pk("customers"),
        sa.UniqueConstraint("username", name=op.f("uq_customers_username")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("iban", sa.String(34), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        _pk("accounts"),
        _fk("accounts", "customer_id", "customers"),
        sa.UniqueConstraint("iban", name=op.f("uq_accounts_iban")),
        sa.CheckConstraint("kind IN ('current', 'savings')", name=op.f("ck_accounts_kind")),
    )
    op.create_index(op.f("ix_accounts_customer_id"), "accounts", ["customer_id"])
    op.create_table(
        "cards",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("last4", sa.String(4), nullable=False),
        sa.Column("brand", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expires", sa.String(5), nullable=False),
        _pk("cards"),
        _fk("cards", "customer_id", "customers"),
        _fk("cards", "account_id", "accounts"),
        sa.UniqueConstraint("token", name=op.f("uq_cards_token")),
        sa.CheckConstraint("length(last4) = 4", name=op.f("ck_cards_last4_len")),
        sa.CheckConstraint("length(expires) = 5", name=op.f("ck_cards_expires_len")),
        sa.CheckConstraint("status IN ('active', 'frozen', 'lost', 'stolen')", name=op.f("ck_cards_status")),
    )
    op.create_index(op.f("ix_cards_customer_id"), "cards", ["customer_id"])
    op.create_index(op.f("ix_cards_account_id"), "cards", ["account_id"])
    op.create_table(
        "card_status_changes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("card_id", BigId, nullable=False),
        sa.Column("from_status", sa.String(16), nullable=False),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("at", Utc, nullable=False),
        _pk("card_status_changes"),
        _fk("card_status_changes", "card_id", "cards"),
    )
    op.create_index(op.f("ix_card_status_changes_card_id_id"), "card_status_changes", ["card_id", "id"])
    op.create_table(
        "payees",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("iban", sa.String(34), nullable=False),
        sa.Column("bank_name", sa.String(200), nullable=False),
        sa.Column("bic", sa.String(11), nullable=False),
        _pk("payees"),
        _fk("payees", "customer_id", "customers"),
        sa.UniqueConstraint("customer_id", "iban", name=op.f("uq_payees_customer_id_iban")),
    )
    op.create_table(
        "core_transactions",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("merchant", sa.String(200), nullable=False),
        sa.Column("category", sa.String(50), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("created_at", Utc, nullable=False),
        _pk("core_transactions"),
        _fk("core_transactions", "account_id", "accounts"),
        sa.UniqueConstraint("reference", name=op.f("uq_core_transactions_reference")),
        sa.CheckConstraint("status IN ('pending', 'booked')", name=op.f("ck_core_transactions_status")),
    )
    op.create_index(
        op.f("ix_core_transactions_account_id_booked_on"),
        "core_transactions",
        ["account_id", "booked_on", "id"],
    )
    op.create_table(
        "conversations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("customer_id", BigId, nullable=True),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pending", JsonDoc, nullable=True),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("updated_at", Utc, nullable=False),
        _pk("conversations"),
        _fk("conversations", "customer_id", "customers", ondelete="SET NULL"),
        sa.UniqueConstraint("channel", "user_id", name=op.f("uq_conversations_channel_user_id")),
        sa.CheckConstraint("status IN ('active', 'waiting_agent')", name=op.f("ck_conversations_status")),
    )
    op.create_index(op.f("ix_conversations_customer_id"), "conversations", ["customer_id"])
    op.create_index(op.f("ix_conversations_status_updated_at"), "conversations", ["status", "updated_at"])
    op.create_table(
        "turns",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("conversation_id", BigId, nullable=False),
        sa.Column("at", Utc, nullable=False),
        sa.Column("inbound_text", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reply_text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("meta", JsonDoc, nullable=False),
        _pk("turns"),
        _fk("turns", "conversation_id", "conversations", ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_turns_conversation_id_id"), "turns", ["conversation_id", "id"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    """Refuse UPDATE on the append-only tables, whoever issues it."""
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION amanah_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER trg_{table}_no_update BEFORE UPDATE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION amanah_refuse_update()"
            )
    elif dialect == "sqlite":
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER trg_{table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_no_update ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_no_update")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS amanah_refuse_update()")
    for table in ("turns", "conversations", "core_transactions", "payees", "card_status_changes", "cards"):
        op.drop_table(table)
    op.drop_table("accounts")
    op.drop_table("customers")
