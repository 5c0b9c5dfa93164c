"""Egress guard: secure links and the hash-chained disclosure ledger.

Revision ID: 0004_guard
Revises: 0001_initial
Create Date: 2026-11-01

Types and names match ``schema_guard.py`` (``test_storage_migrations.py`` compares them).
``disclosures`` refuses ``UPDATE`` through a trigger, like the other append-only tables; the hash
chain detects whatever gets past it (``amanah audit verify``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_guard"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
Utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "secure_links",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("content", JsonDoc, nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("expires_at", Utc, nullable=False),
        sa.Column("used_at", Utc, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secure_links")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_secure_links_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_secure_links_token_sha256")),
        sa.CheckConstraint("purpose IN ('withheld', 'privacy_report')", name=op.f("ck_secure_links_purpose")),
    )
    op.create_index(op.f("ix_secure_links_customer_id"), "secure_links", ["customer_id"])
    op.create_index(op.f("ix_secure_links_expires_at"), "secure_links", ["expires_at"])
    op.create_table(
        "disclosures",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", Utc, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("categories", JsonDoc, nullable=False),
        sa.Column("agreement_id", sa.String(100), nullable=False),
        sa.Column("agreement_version", sa.String(50), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_disclosures")),
        sa.UniqueConstraint("hash", name=op.f("uq_disclosures_hash")),
    )
    op.create_index(
        op.f("ix_disclosures_customer_id_channel_seq"), "disclosures", ["customer_id", "channel", "seq"]
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # amanah_refuse_update() comes with 0001_initial.
        op.execute(
            "CREATE TRIGGER trg_disclosures_no_update BEFORE UPDATE ON disclosures "
            "FOR EACH ROW EXECUTE FUNCTION amanah_refuse_update()"
        )
    elif dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER trg_disclosures_no_update BEFORE UPDATE ON disclosures "
            "BEGIN SELECT RAISE(ABORT, 'disclosures is append-only'); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trg_disclosures_no_update ON disclosures")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS trg_disclosures_no_update")
    op.drop_table("disclosures")
    op.drop_table("secure_links")
