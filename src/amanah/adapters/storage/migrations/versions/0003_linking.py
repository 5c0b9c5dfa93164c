"""Linking Messenger/WhatsApp users to customers: consent records, bindings, one-time grants.

Revision ID: 0003_linking
Revises: 0001_initial
Create Date: 2026-11-20

Types and names must match ``schema_linking.py`` (``test_storage_migrations.py`` compares them).
A trigger keeps consent records as proof: the only change allowed is withdrawing an open one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_linking"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Utc = sa.DateTime(timezone=True)

CHANNELS = "channel IN ('messenger', 'whatsapp')"
_FROZEN = (
    "id",
    "customer_id",
    "channel",
    "user_id",
    "agreement_id",
    "agreement_version",
    "method",
    "given_at",
)
_TRIGGER = "trg_channel_consents_withdraw_only"
_MESSAGE = "channel_consents: a consent record can only be withdrawn, once"


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, referred: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=op.f(f"fk_{table}_{column}_{referred}"))


def upgrade() -> None:
    op.create_table(
        "channel_consents",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("agreement_id", sa.String(100), nullable=False),
        sa.Column("agreement_version", sa.String(50), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("given_at", Utc, nullable=False),
        sa.Column("withdrawn_at", Utc, nullable=True),
        sa.Column("withdrawn_how", sa.String(32), nullable=True),
        _pk("channel_consents"),
        _fk("channel_consents", "customer_id", "customers"),
        sa.CheckConstraint(CHANNELS, name=op.f("ck_channel_consents_channel")),
        sa.CheckConstraint(
            "method IN ('messenger_account_linking', 'whatsapp_link', 'operator_cli')",
            name=op.f("ck_channel_consents_method"),
        ),
        sa.CheckConstraint(
            "withdrawn_how IS NULL OR withdrawn_how IN "
            "('chat', 'platform_unlink', 'website', 'operator_cli', 'relinked')",
            name=op.f("ck_channel_consents_withdrawn_how"),
        ),
        sa.CheckConstraint(
            "(withdrawn_at IS NULL) = (withdrawn_how IS NULL)",
            name=op.f("ck_channel_consents_withdrawn_both"),
        ),
    )
    op.create_index(op.f("ix_channel_consents_customer_id_id"), "channel_consents", ["customer_id", "id"])
    op.create_table(
        "channel_bindings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("consent_id", BigId, nullable=False),
        sa.Column("linked_at", Utc, nullable=False),
        _pk("channel_bindings"),
        _fk("channel_bindings", "customer_id", "customers"),
        _fk("channel_bindings", "consent_id", "channel_consents"),
        sa.UniqueConstraint("channel", "user_id", name=op.f("uq_channel_bindings_channel_user_id")),
        sa.UniqueConstraint("consent_id", name=op.f("uq_channel_bindings_consent_id")),
        sa.CheckConstraint(CHANNELS, name=op.f("ck_channel_bindings_channel")),
    )
    op.create_index(op.f("ix_channel_bindings_customer_id"), "channel_bindings", ["customer_id"])
    op.create_table(
        "link_grants",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("customer_id", BigId, nullable=True),
        sa.Column("user_id", sa.String(200), nullable=True),
        sa.Column("context_hash", sa.String(64), nullable=True),
        sa.Column("agreement_id", sa.String(100), nullable=True),
        sa.Column("agreement_version", sa.String(50), nullable=True),
        sa.Column("issued_at", Utc, nullable=False),
        sa.Column("expires_at", Utc, nullable=False),
        sa.Column("used_at", Utc, nullable=True),
        _pk("link_grants"),
        _fk("link_grants", "customer_id", "customers"),
        sa.UniqueConstraint("token_hash", name=op.f("uq_link_grants_token_hash")),
        sa.CheckConstraint("kind IN ('messenger_code', 'whatsapp_token')", name=op.f("ck_link_grants_kind")),
        sa.CheckConstraint(CHANNELS, name=op.f("ck_link_grants_channel")),
        sa.CheckConstraint("length(token_hash) = 64", name=op.f("ck_link_grants_token_hash_len")),
    )
    op.create_index(op.f("ix_link_grants_expires_at"), "link_grants", ["expires_at"])
    _create_consent_trigger()


def _create_consent_trigger() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in _FROZEN)
        op.execute(
            "CREATE FUNCTION amanah_consent_withdraw_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF OLD.withdrawn_at IS NOT NULL OR {changed} THEN RAISE EXCEPTION '{_MESSAGE}'; END IF; "
            "RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {_TRIGGER} BEFORE UPDATE ON channel_consents "
            "FOR EACH ROW EXECUTE FUNCTION amanah_consent_withdraw_only()"
        )
    elif dialect == "sqlite":
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _FROZEN)
        op.execute(
            f"CREATE TRIGGER {_TRIGGER} BEFORE UPDATE ON channel_consents "
            f"WHEN OLD.withdrawn_at IS NOT NULL OR {changed} "
            f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER} ON channel_consents")
        op.execute("DROP FUNCTION IF EXISTS amanah_consent_withdraw_only()")
    elif dialect == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {_TRIGGER}")
    op.drop_table("link_grants")
    op.drop_table("channel_bindings")
    op.drop_table("channel_consents")
