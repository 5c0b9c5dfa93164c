"""The bank's own site: server-side web sessions and failed logins.

Revision ID: 0005_web
Revises: 0003_linking
Create Date: 2026-11-25

Types and names must match ``schema_web.py`` (``test_storage_migrations.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_web"
down_revision: str | Sequence[str] | None = "0003_linking"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Utc = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("customer_id", BigId, nullable=False),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("last_seen_at", Utc, nullable=False),
        sa.Column("expires_at", Utc, nullable=False),
        sa.Column("revoked_at", Utc, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_web_sessions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("length(id) = 64", name=op.f("ck_web_sessions_id_len")),
    )
    op.create_index(op.f("ix_web_sessions_customer_id"), "web_sessions", ["customer_id"])
    op.create_index(op.f("ix_web_sessions_expires_at"), "web_sessions", ["expires_at"])
    op.create_table(
        "login_failures",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("failed_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
        sa.CheckConstraint("kind IN ('user', 'address')", name=op.f("ck_login_failures_kind")),
    )
    op.create_index(op.f("ix_login_failures_failed_at"), "login_failures", ["failed_at"])
    op.create_index(op.f("ix_login_failures_subject_failed_at"), "login_failures", ["subject", "failed_at"])


def downgrade() -> None:
    op.drop_table("login_failures")
    op.drop_table("web_sessions")
