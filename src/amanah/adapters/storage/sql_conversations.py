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

from amanah.adapters.storage.db import defer_write, write_engine
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
        values, turn_values = _values(state, turn, now)  # fails before the transaction if not JSON
        with self._writer.begin() as conn:
            conversation_id = self._write(conn, values, turn_values, now)
        return replace(state, id=conversation_id, updated_at=now, pending=values["pending"])

    def save_in(self, conn: Connection, state: ConversationState, turn: Turn | None = None) -> int:
        """Write ``state`` and ``turn`` in the caller's transaction (a write transaction); their id."""
        now = require_aware(self._now(), "now")
        values, turn_values = _values(state, turn, now)
        return self._write(conn, values, turn_values, now)

    def _write(
        self, conn: Connection, values: dict[str, Any], turn_values: dict[str, Any] | None, now: datetime
    ) -> int:
        conversation_id = self._upsert(conn, values, created_at=now)
        if turn_values is not None:
            conn.execute(_INSERT_TURN, {**turn_values, "conversation_id": conversation_id})
        return conversation_id

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


def _values(
    state: ConversationState, turn: Turn | None, now: datetime
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The conversation row and the turn row for ``state`` and ``turn`` (validated, JSON round-tripped)."""
    values = {
        "channel": Channel(state.channel).value,
        "user_id": state.user_id,
        "customer_id": state.customer_id,
        "language": state.language,
        "status": ConversationStatus(state.status).value,
        "pending": json_roundtrip(state.pending),
        "updated_at": now,
    }
    if turn is None:
        return values, None
    return values, {
        "at": require_aware(turn.at, "Turn.at"),
        "inbound_text": turn.inbound_text,
        "intent": turn.intent,
        "confidence": float(turn.confidence),
        "reply_text": turn.reply_text,
        "language": turn.language,
        "meta": json_roundtrip(dict(turn.meta)),
    }


class WriteBehindConversations:
    """The ``ConversationStore`` port for a channel worker that writes a batch of events at once.

    While the worker has a batch open (``db.defer_write`` takes writes), :meth:`save` keeps the state
    in memory (so the conversation's next event in the batch reads it back) and hands the write to it,
    which runs it in the same transaction as the replies, the disclosure records and the inbox rows:
    a turn and its reply are stored together or not at all. The worker calls :meth:`settle` after the
    batch's commit or rollback. Without a batch, :meth:`save` writes at once like the SQL store.
    """

    def __init__(self, inner: SqlConversationStore) -> None:
        self._inner = inner
        self._pending: dict[tuple[str, str], ConversationState] = {}

    def load(self, channel: Channel, user_id: str) -> ConversationState:
        held = self._pending.get((Channel(channel).value, user_id))
        if held is not None:
            return replace(held, pending=json_roundtrip(held.pending))
        return self._inner.load(channel, user_id)

    def save(self, state: ConversationState, turn: Turn | None = None) -> ConversationState:
        snapshot = replace(state, pending=json_roundtrip(state.pending))
        if turn is not None:
            require_aware(turn.at, "Turn.at")
        inner = self._inner
        if defer_write(lambda conn: inner.save_in(conn, snapshot, turn)):
            self._pending[(Channel(state.channel).value, state.user_id)] = snapshot
            return snapshot
        return inner.save(state, turn)

    def held(self, channel: Channel, user_id: str) -> ConversationState | None:
        """The state held for this conversation in the open batch (None: read from the database)."""
        return self._pending.get((Channel(channel).value, user_id))

    def put_back(self, channel: Channel, user_id: str, state: ConversationState | None) -> None:
        """Hold ``state`` again (an event's writes were taken back out of the batch)."""
        key = (Channel(channel).value, user_id)
        if state is None:
            self._pending.pop(key, None)
        else:
            self._pending[key] = state

    def settle(self) -> None:
        """The batch was committed or rolled back: read from the database again."""
        self._pending.clear()

    def turns(self, channel: Channel, user_id: str, limit: int = 50) -> Sequence[Turn]:
        return self._inner.turns(channel, user_id, limit)

    def waiting_for_agent(self) -> Sequence[ConversationState]:
        return self._inner.waiting_for_agent()


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
