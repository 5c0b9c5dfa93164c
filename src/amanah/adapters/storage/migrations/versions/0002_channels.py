"""Durable Messenger/WhatsApp pipeline: inbox, threads (window, lease), outbox, agent notes.

Revision ID: 0002_channels
Revises: 0001_initial
Create Date: 2026-11-20

Types and names must match ``schema_channels.py`` (``test_storage_migrations.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_channels"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JsonDoc = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
Utc = sa.DateTime(timezone=True)

CHANNELS = "channel IN ('messenger', 'whatsapp')"


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def upgrade() -> None:
    op.create_table(
        "channel_inbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("event", JsonDoc, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", Utc, nullable=False),
        sa.Column("processed_at", Utc, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        _pk("channel_inbox"),
        sa.UniqueConstraint("channel", "dedup_key", name=op.f("uq_channel_inbox_channel_dedup_key")),
        sa.CheckConstraint(CHANNELS, name=op.f("ck_channel_inbox_channel")),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f("ck_channel_inbox_status")),
    )
    op.create_index(op.f("ix_channel_inbox_status_id"), "channel_inbox", ["status", "id"])
    op.create_index(
        op.f("ix_channel_inbox_channel_user_id_status"), "channel_inbox", ["channel", "user_id", "status"]
    )
    op.create_table(
        "channel_threads",
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("last_user_message_at", Utc, nullable=True),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("unreachable_at", Utc, nullable=True),
        sa.Column("read_watermark_ms", sa.BigInteger(), nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", Utc, nullable=True),
        sa.Column("updated_at", Utc, nullable=False),
        sa.PrimaryKeyConstraint("channel", "user_id", name=op.f("pk_channel_threads")),
        sa.CheckConstraint(CHANNELS, name=op.f("ck_channel_threads_channel")),
    )
    op.create_table(
        "channel_outbox",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("inbox_id", BigId, nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Utc, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", Utc, nullable=True),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("sent_at", Utc, nullable=True),
        sa.Column("delivered_at", Utc, nullable=True),
        sa.Column("message_id", sa.String(200), nullable=True),
        sa.Column("error_action", sa.String(32), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error_subcode", sa.Integer(), nullable=True),
        sa.Column("error_message", sa.String(500), nullable=True),
        sa.Column("trace_id", sa.String(100), nullable=True),
        _pk("channel_outbox"),
        sa.UniqueConstraint("key", name=op.f("uq_channel_outbox_key")),
        sa.CheckConstraint(CHANNELS, name=op.f("ck_channel_outbox_channel")),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'delivered', 'unconfirmed', 'held', 'failed')",
            name=op.f("ck_channel_outbox_status"),
        ),
    )
    op.create_index(
        op.f("ix_channel_outbox_status_next_attempt_at"), "channel_outbox", ["status", "next_attempt_at"]
    )
    op.create_index(
        op.f("ix_channel_outbox_channel_user_id_status_id"),
        "channel_outbox",
        ["channel", "user_id", "status", "id"],
    )
    op.create_index(op.f("ix_channel_outbox_message_id"), "channel_outbox", ["message_id"])
    op.create_table(
        "agent_notes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("outbox_id", BigId, nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", Utc, nullable=False),
        sa.Column("resolved_at", Utc, nullable=True),
        _pk("agent_notes"),
    )
    op.create_index(op.f("ix_agent_notes_resolved_at_id"), "agent_notes", ["resolved_at", "id"])


def downgrade() -> None:
    for table in ("agent_notes", "channel_outbox", "channel_threads", "channel_inbox"):
        op.drop_table(table)
