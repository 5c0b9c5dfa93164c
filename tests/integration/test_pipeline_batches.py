"""The inbox worker writes the events it handles in batches: one transaction for many events' turns,
replies, disclosure records, inbox rows and leases, with the same exactly-once answers as one by one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from amanah.adapters.storage.schema import turns
from amanah.adapters.storage.schema_guard import disclosures, secure_links
from amanah.domain.banking import CardStatus
from amanah.domain.conversation import Channel
from tests.integration import test_webhooks as shared
from tests.integration.test_webhooks import PAGE, Harness, messenger_body

fake_graph = shared.fake_graph  # the fixtures of the webhook tests, shared
harness = shared.harness


def _count(h: Harness, table: Any) -> int:
    with h.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _link(h: Harness, user: str, username: str) -> int:
    linking = h.container.linking
    assert linking is not None
    customer = h.container.core.customer_by_username(username)
    linking.link_operator(Channel.MESSENGER, user, customer.id)
    return customer.id


class FailsOnce:
    """The egress guard, except that recording a disclosure for ``user`` fails the first time."""

    def __init__(self, inner: Any, user: str) -> None:
        self.inner = inner
        self.user = user
        self.failed = False

    def record(self, conn: Any, *, user_id: str, **kw: Any) -> Any:
        if user_id == self.user and not self.failed:
            self.failed = True
            raise RuntimeError("disk full (injected)")
        return self.inner.record(conn, user_id=user_id, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_events_of_many_conversations_are_written_in_one_batch(harness: Harness) -> None:
    """Ten users' messages handled in one run: every event is done, every reply queued and recorded."""
    for n in range(10):
        harness.say(f"u-batch-{n}", "what are your opening hours?")
    assert harness.pipeline.run_once("test-worker") == 10
    assert {r["status"] for r in harness.inbox()} == {"done"}
    assert len(harness.outbox()) == 10
    assert _count(harness, turns) == 10
    assert _count(harness, disclosures) == 10
    assert harness.pipeline.stats.replies == 10


def test_a_later_event_in_the_batch_sees_the_earlier_ones_state(harness: Harness) -> None:
    """A confirmation asked and answered within one batch acts: the second event reads the state the
    first one left, before either is written to the database."""
    customer_id = _link(harness, "u-freeze", "sara")
    harness.say("u-freeze", "please freeze my card")
    harness.clock.advance(1)
    harness.say("u-freeze", "yes")
    assert harness.pipeline.run_once("test-worker") == 2
    assert harness.container.core.cards(customer_id)[0].status is CardStatus.FROZEN
    harness.send()
    first, second = harness.texts_to("u-freeze")
    assert "freeze" in first.lower() and "frozen" in second.lower()


def test_a_failed_batch_stores_nothing_and_every_event_is_answered_once_later(harness: Harness) -> None:
    """A batch whose transaction fails leaves no turn, reply or disclosure behind; its events run again
    and each gets exactly one reply and one turn."""
    users = ["u-fa", "u-boom", "u-fc"]
    for user in users:
        harness.say(user, "hi")
    harness.pipeline.guard = FailsOnce(harness.pipeline.guard, "u-boom")  # type: ignore[assignment]
    assert harness.pipeline.run_once("test-worker") == 0
    assert harness.outbox() == [] and _count(harness, turns) == 0 and _count(harness, disclosures) == 0
    assert {r["status"] for r in harness.inbox()} == {"pending"}
    harness.work_and_send()
    assert [len(harness.texts_to(u)) for u in users] == [1, 1, 1]
    assert _count(harness, turns) == 3
    assert {r["status"] for r in harness.inbox()} == {"done"}


def test_a_takeover_inside_the_batch_silences_the_messages_after_it(harness: Harness) -> None:
    """An event that changes the thread (a Page Inbox echo) is written after the batch before it and
    applies to the messages after it in the same run: answered before, silent after."""
    harness.say("u-mid", "hi")
    harness.clock.advance(1)
    echo = {
        "sender": {"id": PAGE},
        "recipient": {"id": "u-mid"},
        "timestamp": harness.now_ms(),
        "message": {"mid": "m_sam", "is_echo": True, "app_id": 263902037430900, "text": "Hi, I'm Sam"},
    }
    harness.post(messenger_body([echo]))
    harness.clock.advance(1)
    harness.say("u-mid", "thanks Sam")
    harness.say("u-next", "hi")
    harness.work_and_send()
    assert len(harness.texts_to("u-mid")) == 1
    assert len(harness.texts_to("u-next")) == 1
    assert [r["outcome"] for r in harness.inbox() if r["user_id"] == "u-mid"] == [
        "replied",
        "human_takeover",
        "muted",
    ]


def test_one_event_per_transaction_when_batches_are_off(harness: Harness) -> None:
    """With a batch size of one event the answers are the same (the setting's lower bound)."""
    harness.pipeline.batch_events = 1
    for n in range(3):
        harness.say(f"u-solo-{n}", "hi")
    assert harness.work() == 3
    harness.send()
    assert [len(harness.texts_to(f"u-solo-{n}")) for n in range(3)] == [1, 1, 1]


def test_a_long_conversation_is_written_in_several_batches_in_order(harness: Harness) -> None:
    """One user's many queued messages are written every few events (not held until the end), in order."""
    harness.pipeline.batch_events = 2
    for n in range(5):
        harness.say("u-long", f"hi {n}")
        harness.clock.advance(1)
    assert harness.pipeline.run_once("test-worker") == 5
    rows = [r for r in harness.outbox() if r["user_id"] == "u-long"]
    assert [r["inbox_id"] for r in rows] == sorted(r["inbox_id"] for r in rows) and len(rows) == 5
    assert {r["status"] for r in harness.inbox()} == {"done"}


def test_a_failed_write_in_a_long_conversation_stops_it_until_redone(harness: Harness) -> None:
    """If a batch fails in the middle of a conversation, its later events wait: the failed ones are
    redone first, so every message is answered once and in order."""
    harness.pipeline.batch_events = 2
    for n in range(5):
        harness.say("u-stop", f"hi {n}")
        harness.clock.advance(1)
    harness.pipeline.guard = FailsOnce(harness.pipeline.guard, "u-stop")  # type: ignore[assignment]
    assert harness.pipeline.run_once("test-worker") == 0
    assert harness.outbox() == []
    harness.work()
    rows = [r for r in harness.outbox() if r["user_id"] == "u-stop"]
    assert len(rows) == 5 and [r["inbox_id"] for r in rows] == sorted(r["inbox_id"] for r in rows)
    assert [r["outcome"] for r in harness.inbox()] == ["replied"] * 5


def test_secure_links_are_stored_with_their_reply_or_not_at_all(harness: Harness) -> None:
    """A balance withheld from Messenger is a secure link; it is written in the reply's batch, so a
    failed batch leaves no link behind, and the redone event mints exactly one."""
    _link(harness, "u-link", "layla")
    harness.say("u-link", "what is my balance")
    harness.pipeline.guard = FailsOnce(harness.pipeline.guard, "u-link")  # type: ignore[assignment]
    assert harness.pipeline.run_once("test-worker") == 0
    assert _count(harness, secure_links) == 0
    harness.work()
    assert _count(harness, secure_links) == 1
    (row,) = harness.outbox()
    assert b"/s/" in row["body"] or b"https://bank.example" in row["body"]


class RenderFailsOnce:
    """The Messenger adapter, except that rendering a reply to ``user`` fails the first time."""

    def __init__(self, inner: Any, user: str) -> None:
        self.inner, self.user, self.failed = inner, user, False

    def render(self, out: Any) -> Any:
        if out.user_id == self.user and not self.failed:
            self.failed = True
            raise RuntimeError("render bug (injected)")
        return self.inner.render(out)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _fail_render_once(h: Harness, user: str) -> None:
    adapters = h.pipeline.adapters
    adapters[Channel.MESSENGER] = RenderFailsOnce(adapters[Channel.MESSENGER], user)  # type: ignore[assignment]


def test_an_event_failing_after_its_turn_leaves_nothing_in_the_batch(harness: Harness) -> None:
    """An event that fails after the assistant saved its turn and the guard minted a link: neither is
    written with the rest of the batch; once redone, one turn, one link and one reply."""
    _link(harness, "u-bad", "layla")
    harness.say("u-ok", "hi")
    harness.say("u-bad", "what is my balance")
    _fail_render_once(harness, "u-bad")
    harness.pipeline.run_once("test-worker")
    assert _count(harness, turns) == 1 and _count(harness, secure_links) == 0
    harness.work()
    assert len([r for r in harness.outbox() if r["user_id"] == "u-bad"]) == 1
    assert _count(harness, turns) == 2 and _count(harness, secure_links) == 1


def test_a_failed_yes_keeps_the_question_for_its_retry(harness: Harness) -> None:
    """The customer's "yes" fails while being answered: the pending confirmation is not used up, so the
    retry freezes the card and says so (not "nothing waiting for a yes or no")."""
    customer_id = _link(harness, "u-yes", "sara")
    harness.say("u-yes", "please freeze my card")
    harness.work()
    harness.clock.advance(1)
    harness.say("u-yes", "yes")
    _fail_render_once(harness, "u-yes")
    assert harness.pipeline.run_once("test-worker") == 0  # the failure is counted against the event
    harness.work()
    harness.send()
    assert harness.container.core.cards(customer_id)[0].status is CardStatus.FROZEN
    assert "frozen" in harness.texts_to("u-yes")[-1].lower()


class RecordFails:
    """The egress guard, except that recording a disclosure for ``user`` fails ``times`` times."""

    def __init__(self, inner: Any, user: str, times: int) -> None:
        self.inner, self.user, self.left = inner, user, times

    def record(self, conn: Any, *, user_id: str, **kw: Any) -> Any:
        if user_id == self.user and self.left > 0:
            self.left -= 1
            raise RuntimeError("disk full (injected)")
        return self.inner.record(conn, user_id=user_id, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_message_after_a_receipt_is_still_stored_with_its_reply(harness: Harness) -> None:
    """A read receipt writes the batch and itself first; the message after it still gets its turn and
    reply in one transaction: a failed write leaves no turn behind, the redo exactly one."""
    harness.say("u-rd", "hi")
    harness.work()
    harness.clock.advance(1)
    wm = harness.now_ms()
    read = {"sender": {"id": "u-rd"}, "recipient": {"id": PAGE}, "timestamp": wm, "read": {"watermark": wm}}
    harness.post(messenger_body([read]))
    harness.clock.advance(1)
    harness.say("u-rd", "what are your opening hours?")
    inner = harness.pipeline.guard
    harness.pipeline.guard = RecordFails(inner, "u-rd", 1)  # type: ignore[assignment]
    harness.pipeline.run_once("test-worker")
    assert _count(harness, turns) == 1
    harness.pipeline.guard = inner
    harness.work()
    assert _count(harness, turns) == 2 and len(harness.outbox()) == 2


def test_after_a_failed_batch_each_event_still_stores_its_turn_with_its_reply(harness: Harness) -> None:
    """In the runs that write one event at a time after a failed batch, a turn is still stored only
    with its reply: the "yes" whose writes failed twice is answered right when redone."""
    customer_id = _link(harness, "u-fz", "sara")
    harness.say("u-fz", "please freeze my card")
    harness.work()
    harness.clock.advance(1)
    harness.say("u-fz", "yes")
    inner = harness.pipeline.guard
    harness.pipeline.guard = RecordFails(inner, "u-fz", 2)  # type: ignore[assignment]
    harness.pipeline.run_once("test-worker")  # the batch fails
    harness.pipeline.run_once("test-worker")  # the event alone fails too
    harness.pipeline.guard = inner
    harness.work()
    harness.send()
    assert _count(harness, turns) == 2
    assert harness.container.core.cards(customer_id)[0].status is CardStatus.FROZEN
    assert "frozen" in harness.texts_to("u-fz")[-1].lower()


def test_unlink_then_balance_in_one_run_discloses_nothing(harness: Harness) -> None:
    """ "unlink" then "what is my balance" handled in the same run: the second message already finds no
    binding, so no secure link and no disclosure for the customer who just unlinked."""
    _link(harness, "u-ul", "layla")
    harness.say("u-ul", "unlink")
    harness.clock.advance(1)
    harness.say("u-ul", "what is my balance")
    harness.pipeline.run_once("test-worker")
    assert _count(harness, secure_links) == 0
    with harness.engine.connect() as conn:
        customers = (
            conn.execute(select(disclosures.c.customer_id).order_by(disclosures.c.seq)).scalars().all()
        )
    assert len(customers) == 2 and customers[-1] is None  # the balance reply is about nobody
