"""Pacing of the outbox sender (spec §2.8, §7.3 rule 9, §10 G11) against the fake Graph API.

The real outbox on the test database and the real sender; its token buckets read the harness's fixed
clock (``monotonic=``), so a second of pacing is ``clock.advance(1)``, not a sleep.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from amanah.adapters.channels.worker import OutboxSender, make_worker
from amanah.domain.conversation import Channel
from amanah.entrypoints.channels_cli import whatsapp_event
from tests.integration import test_webhooks as shared
from tests.integration.test_webhooks import PAGE, PHONE_ID, T0, Harness, message_item, messenger_body

fake_graph = shared.fake_graph  # the fixtures of the webhook tests, shared
harness = shared.harness

PASS = "/v23.0/me/pass_thread_control"


def paced(h: Harness, **kwargs: Any) -> OutboxSender:
    """A sender on the harness's outbox whose buckets follow the harness's clock."""
    runtime = h.container.channels
    assert runtime is not None
    options: dict[str, Any] = {"typing": False, "timeout_s": 2.0, "echo_wait_s": 5.0, **kwargs}
    return OutboxSender(
        outbox=runtime.outbox,
        adapters=runtime.adapters,
        endpoints=runtime.endpoints,
        clock=h.clock,
        monotonic=lambda: h.clock.now().timestamp(),
        **options,
    )


def drain(sender: OutboxSender) -> int:
    return asyncio.run(sender.drain())


def rows_of(h: Harness, user: str) -> list[dict[str, Any]]:
    return [r for r in h.outbox() if r["user_id"] == user]


def delivered_keys(h: Harness, user: str) -> list[str]:
    """The outbox keys of the messages the fake Graph API accepted for ``user``, in arrival order."""
    return [
        c["body"]["message"]["metadata"]
        for c in h.fake.calls()
        if c["recipient"] == user and c["status"] == 200 and "message" in c["body"]
    ]


def burst(h: Harness, user: str, n: int) -> list[dict[str, Any]]:
    """``user`` writes ``n`` messages at once; the worker queues one reply call for each."""
    for i in range(n):
        h.say(user, f"hi {i}")
    h.work()
    rows = rows_of(h, user)
    assert len(rows) == n, rows
    return rows


def wa_say(h: Harness, user: str, text: str = "hi") -> None:
    assert h.post(whatsapp_event(user, text, phone_number_id=PHONE_ID), channel="whatsapp").status_code == 200


def test_g11_burst_of_ten_replies_to_one_psid_is_paced_by_the_thread_bucket(harness: Harness) -> None:
    """G11: 10 replies queued for one PSID leave in order, 3 at once, then one a second; a row paced
    back is `pending` again with `next_attempt_at` at its token, no attempt counted, no error."""
    rows = burst(harness, "u-g11", 10)
    sender = paced(harness)  # the defaults: 1 a second, burst 3
    drain(sender)
    assert delivered_keys(harness, "u-g11") == [r["key"] for r in rows[:3]]
    fourth = rows_of(harness, "u-g11")[3]
    assert fourth["status"] == "pending" and fourth["next_attempt_at"] == T0 + timedelta(seconds=1)
    assert fourth["attempts"] == 0 and fourth["error_action"] is None and fourth["error_code"] is None
    assert fourth["lease_owner"] is None
    for second in range(1, 8):
        harness.clock.advance(1)
        drain(sender)
        assert len(delivered_keys(harness, "u-g11")) == 3 + second
    after = rows_of(harness, "u-g11")
    assert delivered_keys(harness, "u-g11") == [r["key"] for r in rows]
    assert [r["status"] for r in after] == ["sent"] * 10
    assert [r["attempts"] for r in after] == [1] * 10  # each deferral was not an attempt
    offsets = [(r["sent_at"] - T0).total_seconds() for r in after]
    assert offsets == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert sender.deferred == 7


def test_g11_paced_rows_wait_exactly_until_their_token(harness: Harness) -> None:
    """G11: half a second after the burst nothing more leaves; at the token's time the next one does."""
    burst(harness, "u-half", 4)
    sender = paced(harness)
    drain(sender)
    harness.clock.advance(0.5)
    drain(sender)
    assert len(delivered_keys(harness, "u-half")) == 3
    harness.clock.advance(0.5)
    drain(sender)
    assert len(delivered_keys(harness, "u-half")) == 4


def test_a_busy_thread_does_not_delay_other_threads(harness: Harness) -> None:
    """Per-thread pacing: while one PSID's burst is paced, other users' replies leave at once."""
    burst(harness, "u-busy", 10)
    harness.say("u-calm-1", "hi")
    harness.say("u-calm-2", "hi")
    harness.work()
    sender = paced(harness)
    drain(sender)
    assert len(delivered_keys(harness, "u-busy")) == 3
    assert [r["sent_at"] for r in rows_of(harness, "u-calm-1") + rows_of(harness, "u-calm-2")] == [T0, T0]
    harness.clock.advance(0.5)
    harness.say("u-calm-3", "hi")
    harness.work()
    drain(sender)
    assert rows_of(harness, "u-calm-3")[0]["sent_at"] == T0 + timedelta(seconds=0.5)
    assert len(delivered_keys(harness, "u-busy")) == 3


def test_channel_bucket_paces_messenger_without_touching_whatsapp(harness: Harness) -> None:
    """Per-Page pacing: with Messenger's bucket empty its rows wait (deferred or not claimed, never an
    attempt, never a channel pause) while WhatsApp replies keep leaving."""
    for n in range(3):
        harness.say(f"u-page-{n}", "hi")
    wa_say(harness, "15550001001")
    wa_say(harness, "15550001002")
    harness.work()
    sender = paced(harness, channel_rate_per_s={Channel.MESSENGER: 2.0})  # 2 a second, burst 1
    drain(sender)
    messenger = [r for n in range(3) for r in rows_of(harness, f"u-page-{n}")]
    assert [r["status"] for r in messenger] == ["sent", "pending", "pending"]
    assert [r["next_attempt_at"] for r in messenger[1:]] == [T0 + timedelta(seconds=0.5)] * 2
    assert [r["attempts"] for r in messenger[1:]] == [0, 0]
    assert [r["status"] for u in ("15550001001", "15550001002") for r in rows_of(harness, u)] == ["sent"] * 2
    assert sender.paused == {}
    # The bucket still empty: a new Messenger reply is not even claimed, a new WhatsApp one leaves.
    harness.say("u-page-3", "hi")
    wa_say(harness, "15550001003")
    harness.work()
    drain(sender)
    late = rows_of(harness, "u-page-3")[0]
    assert late["status"] == "pending" and late["next_attempt_at"] == T0 and late["attempts"] == 0
    assert rows_of(harness, "15550001003")[0]["status"] == "sent"
    # Then one Messenger call every half second.
    sent = []
    for _ in range(3):
        harness.clock.advance(0.5)
        drain(sender)
        sent.append(sum(1 for c in harness.fake.calls() if c["channel"] == "messenger"))
    assert sent == [2, 3, 4]


def test_channel_bucket_caps_a_claim_at_its_tokens(harness: Harness) -> None:
    """Per-Page pacing at 250/s (burst 25): 30 users' replies at once -> 25 leave now, 5 at the next
    tokens (4 ms apart), none counted as an attempt."""
    for n in range(30):
        harness.say(f"u-many-{n:02d}", "hi")
    harness.work()
    sender = paced(harness, channel_rate_per_s={Channel.MESSENGER: 250.0})
    drain(sender)
    rows = [r for r in harness.outbox() if r["user_id"].startswith("u-many-")]
    assert sum(r["status"] == "sent" for r in rows) == 25
    assert all(r["attempts"] == 0 for r in rows if r["status"] == "pending")
    harness.clock.advance(5 / 250)
    drain(sender)
    assert all(r["status"] == "sent" for r in harness.outbox() if r["user_id"].startswith("u-many-"))


def test_disabled_buckets_change_nothing(harness: Harness) -> None:
    """Rates of 0 turn pacing off: 10 replies to one PSID all leave at once, nothing deferred."""
    rows = burst(harness, "u-free", 10)
    sender = paced(
        harness,
        thread_rate_per_s=0,
        channel_rate_per_s={Channel.MESSENGER: 0, Channel.WHATSAPP: 0},
    )
    drain(sender)
    assert delivered_keys(harness, "u-free") == [r["key"] for r in rows]
    assert [r["attempts"] for r in rows_of(harness, "u-free")] == [1] * 10
    assert sender.deferred == 0


def test_pacing_settings_reach_the_worker_sender(seeded_url: str, fake_graph: Any) -> None:
    """AMANAH_OUTBOX_THREAD_RATE_PER_S / _THREAD_BURST / _{MESSENGER,WHATSAPP}_RATE_PER_S configure the
    sender `make_worker` builds; 0 leaves that bucket out."""
    for h in shared._harness(
        seeded_url,
        fake_graph,
        outbox_thread_rate_per_s=0.5,
        outbox_thread_burst=2,
        outbox_messenger_rate_per_s=100,
        outbox_whatsapp_rate_per_s=0,
    ):
        sender = make_worker(h.container).sender
        assert sender.thread_bucket is not None
        assert (sender.thread_bucket.rate_per_s, sender.thread_bucket.burst) == (0.5, 2)
        assert {c: (b.rate_per_s, b.burst) for c, b in sender.channel_buckets.items()} == {
            Channel.MESSENGER: (100.0, 10)
        }
    for h in shared._harness(
        seeded_url,
        fake_graph,
        outbox_thread_rate_per_s=0,
        outbox_messenger_rate_per_s=0,
        outbox_whatsapp_rate_per_s=0,
    ):
        sender = make_worker(h.container).sender
        assert sender.thread_bucket is None and sender.channel_buckets == {}
        rows = burst(h, "u-off", 5)
        asyncio.run(sender.drain())
        assert delivered_keys(h, "u-off") == [r["key"] for r in rows]


def test_typing_takes_no_thread_token_and_is_skipped_when_the_page_bucket_is_short(harness: Harness) -> None:
    """Typing indicators never delay a reply: with a Page bucket of one token the reply takes it and
    the typing_on is dropped, not waited for."""
    sender = paced(harness, typing=True, channel_rate_per_s={Channel.MESSENGER: 2.0})  # burst 1
    harness.say("u-typing", "hi")
    harness.work()
    drain(sender)
    calls = [c for c in harness.fake.calls(messages_only=False) if c["recipient"] == "u-typing"]
    assert [("sender_action" in c["body"], c["status"]) for c in calls] == [(False, 200)]


def test_thread_control_calls_take_no_thread_token(harness: Harness) -> None:
    """A handoff's pass_thread_control is not a message: it follows the reply without waiting for the
    thread's next token (thread burst 1)."""
    sender = paced(harness, thread_burst=1)
    item = message_item(
        "u-person", "I want to talk to a person", ts=harness.now_ms(), payload="intent:human_agent"
    )
    assert harness.post(messenger_body([item])).status_code == 200
    harness.work()
    drain(sender)
    paths = [c["path"] for c in harness.fake.calls() if c["recipient"] == "u-person" and c["status"] == 200]
    assert paths == ["/v23.0/me/messages", PASS]
    assert sender.deferred == 0


def test_a_paced_unconfirmed_row_stays_unconfirmed_and_its_echo_still_counts(harness: Harness) -> None:
    """A re-send that waits for the thread's token keeps waiting as `unconfirmed`: the echo arriving
    meanwhile confirms it and it is never sent twice."""
    sender = paced(harness, thread_burst=1, echo_wait_s=0.0)
    harness.say("u-unc", "hi")
    harness.work()
    drain(sender)  # the first reply takes the thread's only token
    harness.say("u-unc", "hi again")
    harness.work()
    outbox = harness.container.channels.outbox  # type: ignore[union-attr]
    assert len(outbox.claim("dead-sender", now=harness.clock.now(), lease_s=0, limit=10)) == 1
    harness.clock.advance(0.1)
    drain(sender)  # the dead sender's row comes back unconfirmed, and the bucket is still empty
    row = rows_of(harness, "u-unc")[1]
    assert row["status"] == "unconfirmed" and row["attempts"] == 0
    assert row["next_attempt_at"] == T0 + timedelta(seconds=1)
    echo = {
        "sender": {"id": PAGE},
        "recipient": {"id": "u-unc"},
        "timestamp": harness.now_ms(),
        "message": {"mid": "m_echo_unc", "is_echo": True, "app_id": 555000111, "metadata": row["key"]},
    }
    assert harness.post(messenger_body([echo])).status_code == 200
    harness.work()
    harness.clock.advance(1)
    drain(sender)
    assert rows_of(harness, "u-unc")[1]["status"] == "delivered"
    assert len(delivered_keys(harness, "u-unc")) == 1


def test_order_is_kept_when_a_paced_thread_also_retries(harness: Harness) -> None:
    """A 5xx on a paced thread's head: the retry and the pacing both hold the later rows back, and
    everything arrives in queue order."""
    rows = burst(harness, "u-mixed", 5)
    harness.fake.fault("5xx", 1, recipient="u-mixed")
    sender = paced(harness)
    drain(sender)
    for _ in range(10):
        harness.clock.advance(2)
        drain(sender)
    assert delivered_keys(harness, "u-mixed") == [r["key"] for r in rows]
    after = rows_of(harness, "u-mixed")
    assert [r["attempts"] for r in after] == [2, 1, 1, 1, 1]  # the 5xx counted, the pacing did not
    assert all(r["lease_owner"] is None for r in after)
