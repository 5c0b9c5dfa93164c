"""ConversationStore contract (in-memory fake and SQL on every backend), plus SQL atomicity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from amanah.adapters.storage.schema import conversations, turns
from amanah.adapters.storage.sql_conversations import SqlConversationStore
from amanah.app.ports import ConversationStore
from amanah.domain.conversation import Channel, ConversationState, ConversationStatus, Turn

T0 = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)


def _turn(n: int, text: str = "hello", **meta: Any) -> Turn:
    return Turn(
        at=T0 + timedelta(minutes=n),
        inbound_text=f"{text} {n}",
        intent="balance",
        confidence=0.875,
        reply_text=f"reply {n}",
        language="en",
        meta=meta,
    )


def test_unknown_user_gets_a_fresh_unsaved_state(conversation_store: ConversationStore) -> None:
    """load() for a new user returns defaults with no id, and stores nothing."""
    state = conversation_store.load(Channel.MESSENGER, "psid-1")
    assert (state.channel, state.user_id, state.id, state.customer_id) == (
        Channel.MESSENGER,
        "psid-1",
        None,
        None,
    )
    assert state.status is ConversationStatus.ACTIVE and state.pending is None and state.updated_at is None
    assert conversation_store.load(Channel.MESSENGER, "psid-1").id is None
    assert conversation_store.turns(Channel.MESSENGER, "psid-1") == []


def test_round_trip_with_arabic_text_and_pending_json(conversation_store: ConversationStore) -> None:
    """State with Arabic text and nested pending JSON comes back equal, updated_at in UTC."""
    pending = {
        "flow": "card_freeze",
        "card_id": 3,
        "prompt": "هل تريد تجميد البطاقة؟",
        "options": ["نعم", "لا"],
    }
    state = ConversationState(
        channel=Channel.WHATSAPP, user_id="9627900000", customer_id=None, language="ar", pending=pending
    )
    saved = conversation_store.save(state)
    assert saved.id is not None and saved.updated_at is not None
    loaded = conversation_store.load(Channel.WHATSAPP, "9627900000")
    assert loaded.id == saved.id
    assert loaded.language == "ar" and loaded.pending == pending
    assert loaded.updated_at is not None and loaded.updated_at.utcoffset() == timedelta(0)
    assert abs(loaded.updated_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_save_upserts_one_conversation_per_channel_user(conversation_store: ConversationStore) -> None:
    """Saving again updates the same conversation; pending can be cleared; the id stays."""
    first = conversation_store.save(
        ConversationState(channel=Channel.WEBCHAT, user_id="w1", pending={"flow": "x"})
    )
    second = conversation_store.save(
        ConversationState(
            channel=Channel.WEBCHAT,
            user_id="w1",
            customer_id=None,
            language="ar",
            status=ConversationStatus.WAITING_AGENT,
            pending=None,
        )
    )
    assert second.id == first.id
    loaded = conversation_store.load(Channel.WEBCHAT, "w1")
    assert (loaded.language, loaded.status, loaded.pending) == ("ar", ConversationStatus.WAITING_AGENT, None)


def test_same_user_id_on_two_channels_is_two_conversations(conversation_store: ConversationStore) -> None:
    """(channel, user_id) is the key: the same id on Messenger and WhatsApp are different people."""
    a = conversation_store.save(ConversationState(channel=Channel.MESSENGER, user_id="42"), _turn(1))
    b = conversation_store.save(ConversationState(channel=Channel.WHATSAPP, user_id="42"), _turn(2))
    assert a.id != b.id
    assert [t.inbound_text for t in conversation_store.turns(Channel.MESSENGER, "42")] == ["hello 1"]
    assert [t.inbound_text for t in conversation_store.turns(Channel.WHATSAPP, "42")] == ["hello 2"]


def test_turns_are_appended_and_the_latest_come_oldest_first(conversation_store: ConversationStore) -> None:
    """turns() returns the most recent ``limit`` turns in the order they happened."""
    state = ConversationState(channel=Channel.CLI, user_id="op")
    for n in range(1, 8):
        state = conversation_store.save(state, _turn(n))
    assert [t.inbound_text for t in conversation_store.turns(Channel.CLI, "op", limit=3)] == [
        "hello 5",
        "hello 6",
        "hello 7",
    ]
    assert len(conversation_store.turns(Channel.CLI, "op")) == 7
    assert conversation_store.turns(Channel.CLI, "op", limit=0) == []


def test_turn_fields_round_trip(conversation_store: ConversationStore) -> None:
    """A turn's Arabic text, intent, confidence, language, meta and UTC time come back unchanged."""
    turn = Turn(
        at=datetime(2026, 3, 15, 12, 0, tzinfo=timezone(timedelta(hours=3))),
        inbound_text="كم رصيدي؟ ١٢٣",
        intent="balance",
        confidence=0.6180339887,
        reply_text="رصيدك ٢٬٢٨٥٫٠٠٠ د.أ",
        language="ar",
        meta={"redacted": True, "blocks": [{"kind": "balance", "n": 2}], "note": "تم"},
    )
    conversation_store.save(ConversationState(channel=Channel.WEBCHAT, user_id="w2", language="ar"), turn)
    (got,) = conversation_store.turns(Channel.WEBCHAT, "w2")
    assert got == turn  # equal instants compare equal across time zones
    assert got.at.utcoffset() == timedelta(0)
    assert got.at == datetime(2026, 3, 15, 9, 0, tzinfo=UTC)


def test_waiting_for_agent_lists_only_waiting_conversations(conversation_store: ConversationStore) -> None:
    """waiting_for_agent() returns the conversations handed to a human, and only those."""
    conversation_store.save(ConversationState(channel=Channel.WEBCHAT, user_id="a"))
    conversation_store.save(
        ConversationState(channel=Channel.MESSENGER, user_id="b", status=ConversationStatus.WAITING_AGENT)
    )
    conversation_store.save(
        ConversationState(channel=Channel.WHATSAPP, user_id="c", status=ConversationStatus.WAITING_AGENT)
    )
    waiting = conversation_store.waiting_for_agent()
    assert [(s.channel, s.user_id) for s in waiting] == [(Channel.MESSENGER, "b"), (Channel.WHATSAPP, "c")]
    conversation_store.save(ConversationState(channel=Channel.MESSENGER, user_id="b"))
    assert [s.user_id for s in conversation_store.waiting_for_agent()] == ["c"]


def test_pending_comes_back_as_plain_json(conversation_store: ConversationStore) -> None:
    """Pending values are stored as JSON: tuples come back as lists, on the fake as on SQL."""
    saved = conversation_store.save(
        ConversationState(channel=Channel.WEBCHAT, user_id="j", pending={"pair": (1, 2)})
    )
    assert saved.pending == {"pair": [1, 2]}
    assert conversation_store.load(Channel.WEBCHAT, "j").pending == {"pair": [1, 2]}


def test_non_json_pending_is_refused_and_nothing_saved(conversation_store: ConversationStore) -> None:
    """A pending value that is not JSON raises TypeError before anything is stored."""
    with pytest.raises(TypeError):
        conversation_store.save(
            ConversationState(channel=Channel.WEBCHAT, user_id="bad", pending={"when": datetime.now(UTC)}),
            _turn(1),
        )
    assert conversation_store.load(Channel.WEBCHAT, "bad").id is None


def test_naive_turn_time_is_refused_and_nothing_saved(conversation_store: ConversationStore) -> None:
    """A turn with a naive datetime raises ValueError; neither state nor turn is stored."""
    naive = Turn(
        at=datetime(2026, 3, 15, 9, 0),
        inbound_text="x",
        intent="x",
        confidence=1.0,
        reply_text="y",
        language="en",
    )
    with pytest.raises(ValueError, match="timezone"):
        conversation_store.save(ConversationState(channel=Channel.WEBCHAT, user_id="naive"), naive)
    assert conversation_store.load(Channel.WEBCHAT, "naive").id is None
    assert conversation_store.turns(Channel.WEBCHAT, "naive") == []


def test_sql_save_is_atomic(engine: Engine) -> None:
    """If the turn cannot be stored, the conversation upsert is rolled back with it."""
    store = SqlConversationStore(engine)
    broken = Turn(
        at=T0,
        inbound_text=None,  # type: ignore[arg-type]  # violates NOT NULL inside the transaction
        intent="x",
        confidence=1.0,
        reply_text="y",
        language="en",
    )
    with pytest.raises(IntegrityError):
        store.save(ConversationState(channel=Channel.WEBCHAT, user_id="atomic", language="ar"), broken)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(conversations)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(turns)).scalar() == 0


def test_sql_updated_at_is_stored_in_utc(engine: Engine) -> None:
    """updated_at from a clock in another zone is stored and returned as the same UTC instant."""
    riyadh = timezone(timedelta(hours=3))
    store = SqlConversationStore(engine, now=lambda: datetime(2026, 3, 15, 12, 0, tzinfo=riyadh))
    store.save(ConversationState(channel=Channel.WEBCHAT, user_id="tz"))
    loaded = store.load(Channel.WEBCHAT, "tz")
    assert loaded.updated_at == datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
    assert loaded.updated_at is not None and loaded.updated_at.tzinfo is not None
    assert loaded.updated_at.utcoffset() == timedelta(0)
