"""Tables of the durable Messenger/WhatsApp pipeline (migration ``0002_channels``).

* ``channel_inbox``: every webhook event, written before the webhook is acknowledged. Unique on
  ``(channel, dedup_key)``: a platform retry is acknowledged and ignored. ``event`` holds the
  normalized event until it is processed, then it is cleared (the raw text is not kept; the
  conversation store keeps the redacted turn). ``status``: ``pending`` -> ``done`` | ``failed``.
* ``channel_threads``: one row per (channel, user): the messaging window (the user's last message),
  the human-takeover flag (``muted``), reachability, the read watermark, and the per-conversation
  lease that lets one worker at a time handle a conversation's events, in order.
* ``channel_outbox``: every platform call to make, with the exact JSON bytes to POST. ``key`` is
  unique and derived from the inbox row (``in<inbox id>#<sequence>``): re-processing an event can
  never queue its reply twice. Messenger echoes the key back as ``message.metadata``. ``status``:
  ``pending`` -> ``sending`` -> ``sent`` (accepted by the platform) -> ``delivered`` (echo, delivery
  receipt or WhatsApp status); ``unconfirmed`` (maybe sent: wait for the echo before re-sending);
  ``held`` (outside the messaging window: waits for the user's next message); ``failed``
  (permanent error or retries exhausted: shown to operators).
* ``agent_notes``: what a human agent should see, e.g. a reply held outside the messaging window, or
  a conversation handed to a person (``ticket``: the opaque id that travels in the handover metadata).

Migration ``0006_handover`` adds ``channel_outbox.agent`` (the bank agent who wrote the message; NULL
for the assistant), ``channel_threads.control_app_id`` (the Meta app that owns the thread when it is
not ours) and ``agent_notes.ticket``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from amanah.adapters.storage.schema import BigId, JsonDoc, UtcDateTime, id_column, metadata


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


CHANNELS = ("messenger", "whatsapp")
INBOX_STATUSES = ("pending", "done", "failed")
OUTBOX_STATUSES = ("pending", "sending", "sent", "delivered", "unconfirmed", "held", "failed")
OPEN_OUTBOX_STATUSES = ("pending", "sending", "unconfirmed", "held")
"""Rows that keep the later rows of their conversation waiting (per-conversation order)."""

channel_inbox = Table(
    "channel_inbox",
    metadata,
    id_column(),
    Column("channel", String(16), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("event", JsonDoc, nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("processed_at", UtcDateTime(), nullable=True),
    Column("outcome", String(32), nullable=True),
    Column("error", String(500), nullable=True),
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
    CheckConstraint(_in("status", INBOX_STATUSES), name="status"),
    UniqueConstraint("channel", "dedup_key"),
    Index("ix_channel_inbox_status_id", "status", "id"),
    Index("ix_channel_inbox_channel_user_id_status", "channel", "user_id", "status"),
)

channel_threads = Table(
    "channel_threads",
    metadata,
    Column("channel", String(16), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("last_user_message_at", UtcDateTime(), nullable=True),
    Column("muted", Boolean, nullable=False),
    Column("unreachable_at", UtcDateTime(), nullable=True),
    Column("read_watermark_ms", BigInteger, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("control_app_id", String(32), nullable=True),  # 0006: another app owns the thread
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
)

channel_outbox = Table(
    "channel_outbox",
    metadata,
    id_column(),
    Column("key", String(100), nullable=False, unique=True),
    Column("inbox_id", BigId, nullable=True),
    Column("channel", String(16), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(200), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Column("message_id", String(200), nullable=True),
    Column("error_action", String(32), nullable=True),
    Column("error_code", Integer, nullable=True),
    Column("error_subcode", Integer, nullable=True),
    Column("error_message", String(500), nullable=True),
    Column("trace_id", String(100), nullable=True),
    Column("agent", String(100), nullable=True),  # 0006: the bank agent who wrote it (NULL: the bot)
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
    CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
    Index("ix_channel_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_channel_outbox_channel_user_id_status_id", "channel", "user_id", "status", "id"),
    Index("ix_channel_outbox_message_id", "message_id"),
)

agent_notes = Table(
    "agent_notes",
    metadata,
    id_column(),
    Column("channel", String(16), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("outbox_id", BigId, nullable=True),
    Column("reason", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("ticket", String(64), nullable=True),  # 0006: the handover's opaque ticket id
    Index("ix_agent_notes_resolved_at_id", "resolved_at", "id"),
    Index("ix_agent_notes_channel_user_id", "channel", "user_id"),
)

CHANNEL_TABLES = (channel_inbox, channel_threads, channel_outbox, agent_notes)
