"""Conversation state and turns on Amanah's database: the ``ConversationStore`` port.

One row per (channel, user) in ``conversations``, upserted on every save; ``turns`` is append-only.
``save`` writes both in one transaction: either the state and its turn are stored, or neither.
``pending`` and ``meta`` must be JSON-serialisable; they come back as plain JSON values (tuples as
lists). Timestamps are timezone-aware UTC; a naive ``Turn.at`` is refused with ``ValueError``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from amanah.adapters.storage.db import write_engine
from amanah.adapters.storage.records import json_roundtrip, require_aware
from amanah.adapters.storage.schema import conversations, turns
from amanah.domain.conversation import Channel, ConversationState, ConversationStatus, Turn


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _state(row: Row[Any]) -> ConversationState:
    return ConversationState(
        channel=Channel(row.channel),
        user_id=row.user_id,
        customer_id=row.customer_id,
        language=row.language,
        status=ConversationStatus(row.status),
        pending=row.pending,
        id=row.id,
        updated_at=row.updated_at,
    )


class SqlConversationStore:
    """The ``ConversationStore`` port on the ``conversations`` and ``turns`` tables."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        self._now = now

    def load(self, channel: Channel, user_id: str) -> ConversationState:
        channel = Channel(channel)
        with self._engine.connect() as conn:
            row = conn.execute(_LOAD, {"channel": channel.value, "user_id": user_id}).first()
        if row is None:
            return ConversationState(channel=channel, user_id=user_id)
        return _state(row)

    def save(self, state: ConversationState, turn: Turn | None = None) -> ConversationState:
        now = require_aware(self._now(), "now")
        pending = json_roundtrip(state.pending)  # fails before the transaction if not JSON
        turn_at = require_aware(turn.at, "Turn.at") if turn is not None else None
        turn_meta = json_roundtrip(dict(turn.meta)) if turn is not None else None
        values = {
            "channel": Channel(state.channel).value,
            "user_id": state.user_id,
            "customer_id": state.customer_id,
            "language": state.language,
            "status": ConversationStatus(state.status).value,
            "pending": pending,
            "updated_at": now,
        }
        with self._writer.begin() as conn:
            conversation_id = self._upsert(conn, values, created_at=now)
            if turn is not None:
                conn.execute(
                    _INSERT_TURN,
                    {
                        "conversation_id": conversation_id,
                        "at": turn_at,
                        "inbound_text": turn.inbound_text,
                        "intent": turn.intent,
                        "confidence": float(turn.confidence),
                        "reply_text": turn.reply_text,
                        "language": turn.language,
                        "meta": turn_meta,
                    },
                )
        return replace(state, id=conversation_id, updated_at=now, pending=pending)

    @staticmethod
    def _upsert(conn: Connection, values: dict[str, Any], *, created_at: datetime) -> int:
        stmt = _upsert_statement(conn.dialect.name)
        return int(conn.execute(stmt, {**values, "created_at": created_at}).scalar_one())

    def turns(self, channel: Channel, user_id: str, limit: int = 50) -> Sequence[Turn]:
        if limit < 1:
            return []
        stmt = (
            select(turns)
            .join(conversations, conversations.c.id == turns.c.conversation_id)
            .where(conversations.c.channel == Channel(channel).value, conversations.c.user_id == user_id)
            .order_by(turns.c.id.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            Turn(
                at=r.at,
                inbound_text=r.inbound_text,
                intent=r.intent,
                confidence=r.confidence,
                reply_text=r.reply_text,
                language=r.language,
                meta=r.meta if r.meta is not None else {},
            )
            for r in reversed(rows)
        ]

    def waiting_for_agent(self) -> Sequence[ConversationState]:
        """Conversations handed to a human agent, longest-waiting first."""
        stmt = (
            select(conversations)
            .where(conversations.c.status == ConversationStatus.WAITING_AGENT.value)
            .order_by(conversations.c.updated_at, conversations.c.id)
        )
        with self._engine.connect() as conn:
            return [_state(r) for r in conn.execute(stmt).all()]


_LOAD = select(conversations).where(
    conversations.c.channel == bindparam("channel"), conversations.c.user_id == bindparam("user_id")
)
_INSERT_TURN = turns.insert()
_UPDATED_ON_CONFLICT = ("customer_id", "language", "status", "pending", "updated_at")


@functools.cache
def _upsert_statement(dialect: str) -> Any:
    """The conversation upsert, built once per dialect (values are bound at execution)."""
    if dialect == "postgresql":
        insert_stmt: Any = postgresql.insert(conversations)
    elif dialect == "sqlite":
        insert_stmt = sqlite.insert(conversations)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise NotImplementedError(f"unsupported database {dialect!r}")
    return insert_stmt.on_conflict_do_update(
        index_elements=["channel", "user_id"],
        set_={k: insert_stmt.excluded[k] for k in _UPDATED_ON_CONFLICT},
    ).returning(conversations.c.id)
