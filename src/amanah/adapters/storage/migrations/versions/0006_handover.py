"""Handover and the human-agent path: who wrote a message, who controls a thread, ticket ids.

Revision ID: 0006_handover
Revises: 0002_channels
Create Date: 2026-12-01

* ``channel_outbox.agent``: the bank agent who wrote the message (NULL: the assistant). The sender
  lets only these rows carry Messenger's ``HUMAN_AGENT`` tag.
* ``channel_threads.control_app_id``: the Meta app that owns the thread when it is not ours (the Page
  Inbox after a handover), NULL when we own it or the channel has no handover protocol.
* ``agent_notes.ticket``: the opaque ticket id of a handover (the only thing the handover
  ``metadata`` carries through Meta), and an index to find a thread's open notes.

Types and names must match ``schema_channels.py`` (``test_storage_migrations.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_handover"
down_revision: str | Sequence[str] | None = "0002_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("channel_outbox", sa.Column("agent", sa.String(100), nullable=True))
    op.add_column("channel_threads", sa.Column("control_app_id", sa.String(32), nullable=True))
    op.add_column("agent_notes", sa.Column("ticket", sa.String(64), nullable=True))
    op.create_index(op.f("ix_agent_notes_channel_user_id"), "agent_notes", ["channel", "user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_agent_notes_channel_user_id"), table_name="agent_notes")
    # SQLite drops columns by copying the table: batch mode does that (plain ALTER on PostgreSQL).
    with op.batch_alter_table("agent_notes") as batch:
        batch.drop_column("ticket")
    with op.batch_alter_table("channel_threads") as batch:
        batch.drop_column("control_app_id")
    with op.batch_alter_table("channel_outbox") as batch:
        batch.drop_column("agent")
