"""The outbox sender against the fake Graph API: order, window, retries, errors, reconciliation (§10 F, G)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from amanah.adapters.channels.worker import OutboxSender
from amanah.adapters.storage.schema_channels import channel_outbox
from amanah.domain.conversation import Channel
from tests.integration import test_webhooks as shared
from tests.integration.test_webhooks import PAGE, Harness, messenger_body

fake_graph = shared.fake_graph  # the fixtures of the webhook tests, shared
harness = shared.harness

LONG = "\n\n".join(f"Paragraph {n}: " + "words " * 150 for n in range(5))  # about 4,600 characters


def _rows(h: Harness, user: str) -> list[dict[str, Any]]:
    return [r for r in h.outbox() if r["user_id"] == user]


def _only(h: Harness, user: str) -> dict[str, Any]:
    rows = _rows(h, user)
    assert len(rows) == 1, rows
    return rows[0]


def test_reply_is_one_response_call_with_metadata_preceded_by_typing(harness: Harness) -> None:
    """F1 / F6: a reply is a RESPONSE call to the PSID carrying its outbox key as metadata; a typing_on
    request (recipient + sender_action only) goes first."""
    harness.sender.typing = True
    harness.say("u-f1", "hi")
    harness.work_and_send()
    calls = harness.fake.calls(messages_only=False)
    assert [c["body"].get("sender_action") for c in calls] == ["typing_on", None]
    assert set(calls[0]["body"]) == {"recipient", "sender_action"}
    body = calls[1]["body"]
    assert body["messaging_type"] == "RESPONSE"
    assert body["recipient"] == {"id": "u-f1"}
    assert body["message"]["metadata"] == _only(harness, "u-f1")["key"]
    assert calls[1]["auth"] == "bearer" and calls[1]["appsecret_proof"]


def test_typing_is_sent_at_most_once_per_user_in_a_burst(harness: Harness) -> None:
    """F6 / G11: a burst of replies to one user gets one typing indicator, not one per reply, and the
    indicator takes none of the thread's tokens (3 replies leave at once, the 4th a second later)."""
    harness.sender.typing = True
    for n in range(4):
        harness.clock.advance(1)
        harness.say("u-burst", f"hi {n}")
    harness.work_and_send()
    calls = [c for c in harness.fake.calls(messages_only=False) if c["recipient"] == "u-burst"]
    assert [("sender_action" in c["body"]) for c in calls] == [True, False, False, False]
    harness.clock.advance(1)
    harness.send()
    calls = [c for c in harness.fake.calls(messages_only=False) if c["recipient"] == "u-burst"]
    assert sum(1 for c in calls if "sender_action" in c["body"]) == 1
    assert sum(1 for c in calls if "message" in c["body"]) == 4


def test_parts_of_a_long_reply_and_later_replies_keep_their_order(harness: Harness) -> None:
    """Ordering: while reply n waits for a retry, reply n+1 to the same user is not sent."""
    harness.say("u-order", "hi")
    harness.clock.advance(1)
    harness.say("u-order", "what are your opening hours?")
    harness.work()
    rows = _rows(harness, "u-order")
    assert len(rows) == 2
    harness.fake.fault("5xx", 1, recipient="u-order")  # the first call fails once
    harness.send()
    assert [r["status"] for r in _rows(harness, "u-order")] == ["pending", "pending"]
    assert [c for c in harness.fake.calls() if c["status"] == 200] == []  # the second waited
    harness.clock.advance(400)
    harness.send()
    keys = [c["body"]["message"]["metadata"] for c in harness.fake.calls() if c["status"] == 200]
    assert keys == [r["key"] for r in rows]


def test_long_text_is_split_and_sent_in_sequence(harness: Harness) -> None:
    """F2: a reply longer than 2,000 UTF-16 units goes as several calls, each at most 2,000, in order."""
    from amanah.domain.replies import FreeText, Reply

    class Long:
        def handle(self, msg: object) -> Reply:
            return Reply((FreeText(LONG, "test"),))

    harness.pipeline.assistant = Long()
    harness.say("u-long", "tell me everything")
    harness.work_and_send()
    texts = harness.texts_to("u-long")
    assert len(texts) == 3 and all(len(t) <= 2000 for t in texts)
    assert texts[0].startswith("Paragraph 0") and "Paragraph 4" in texts[-1]


def test_window_closed_error_holds_the_message_and_notes_it_for_an_agent(harness: Harness) -> None:
    """G1: 10/2018278 -> not retried, the call is held, an agent note is written, no tag is added."""
    harness.say("u-g1", "hi")
    harness.work()
    harness.fake.fault("window_closed", 1, recipient="u-g1")
    harness.send()
    row = _only(harness, "u-g1")
    assert row["status"] == "held" and row["error_code"] == 10 and row["error_subcode"] == 2018278
    harness.clock.advance(3600)
    assert harness.send() == 0  # not retried
    notes = harness.container.channels.outbox.notes()  # type: ignore[union-attr]
    assert [n["user_id"] for n in notes] == ["u-g1"] and notes[0]["text"]
    assert all("tag" not in c["body"] for c in harness.fake.calls())


def test_reply_outside_the_window_is_blocked_before_any_call_and_released_by_the_next_message(
    harness: Harness,
) -> None:
    """G2: a bot reply due more than 24 h after the user's last message is held without a Graph call;
    the user's next message reopens the window and the held reply goes first."""
    harness.say("u-g2", "hi")
    harness.work()
    harness.clock.advance(25 * 3600)
    harness.send()
    assert _only(harness, "u-g2")["status"] == "held"
    assert harness.fake.calls(messages_only=False) == []
    harness.say("u-g2", "hello?")
    harness.work_and_send()
    rows = _rows(harness, "u-g2")
    assert [r["status"] for r in rows] == ["sent", "sent"]
    keys = [c["body"]["message"]["metadata"] for c in harness.fake.calls()]
    assert keys == [r["key"] for r in rows]


def test_rate_limit_is_retried_with_backoff_and_pauses_only_that_channel(harness: Harness) -> None:
    """G4: 613 -> retried later with exponential backoff and jitter, at least the platform's hint;
    the throttled channel pauses while WhatsApp keeps sending."""
    from amanah.entrypoints.channels_cli import whatsapp_event

    harness.say("u-g4", "hi")
    harness.post(whatsapp_event("15550009999", "hi", phone_number_id="400000000000004"), channel="whatsapp")
    harness.work()
    harness.fake.fault("rate_limit", 1, channel="messenger", regain_minutes=1)
    harness.send()
    row = _only(harness, "u-g4")
    assert row["status"] == "pending" and row["error_code"] == 613 and row["attempts"] == 1
    wait = (row["next_attempt_at"] - harness.clock.now()).total_seconds()
    assert 60 <= wait <= 61  # the X-Business-Use-Case-Usage hint (1 minute) beats the 0-1 s backoff
    assert _only(harness, "15550009999")["status"] == "sent"
    assert Channel.MESSENGER in harness.sender.paused
    harness.sender.paused.clear()
    harness.clock.advance(61)
    harness.send()
    assert _only(harness, "u-g4")["status"] == "sent"


def test_transient_errors_are_retried_a_bounded_number_of_times_then_dead_lettered(harness: Harness) -> None:
    """G6: 1200 / 2 / 5xx are retried with growing delays, at most 6 attempts, then `failed`."""
    harness.say("u-g6", "hi")
    harness.work()
    harness.fake.fault("5xx", 10, recipient="u-g6")
    delays = []
    for _ in range(8):
        harness.send()
        row = _only(harness, "u-g6")
        if row["status"] == "failed":
            break
        delays.append((row["next_attempt_at"] - harness.clock.now()).total_seconds())
        harness.clock.advance(400)
    row = _only(harness, "u-g6")
    assert row["status"] == "failed" and row["attempts"] == 6 and row["error_action"] == "transient"
    assert len(delays) == 5 and all(0 <= d <= 2**n for n, d in enumerate(delays))
    assert [c["fault"] for c in harness.fake.calls()] == ["5xx"] * 6


def test_timeout_after_sending_waits_for_the_echo_and_never_sends_twice(
    harness: Harness, fake_graph: Any
) -> None:
    """G7: a read timeout leaves the call `unconfirmed`; the echo carrying its key arrives, so it is
    not sent again. Without an echo it is re-sent only after the echo wait."""
    harness.say("u-g7", "hi")
    harness.say("u-g7b", "hi")
    harness.work()
    harness.fake.fault("timeout", 1, recipient="u-g7", delay_s=3.0)
    harness.fake.fault("timeout", 1, recipient="u-g7b", delay_s=3.0)
    harness.send()
    assert _only(harness, "u-g7")["status"] == "unconfirmed"
    assert _only(harness, "u-g7b")["status"] == "unconfirmed"
    # Meta echoes the first one (the request did reach it) ...
    row = _only(harness, "u-g7")
    echo = {
        "sender": {"id": PAGE},
        "recipient": {"id": "u-g7"},
        "timestamp": harness.now_ms(),
        "message": {
            "mid": "m_echo_g7",
            "is_echo": True,
            "app_id": 555000111,
            "metadata": row["key"],
            "text": "x",
        },
    }
    assert harness.post(messenger_body([echo])).status_code == 200
    harness.work()
    harness.clock.advance(1)
    harness.send()
    assert _only(harness, "u-g7b")["status"] == "unconfirmed"  # still inside the echo wait
    harness.clock.advance(10)
    harness.send()
    assert _only(harness, "u-g7")["status"] == "delivered"
    assert _only(harness, "u-g7b")["status"] == "sent"
    sent_to = [c["recipient"] for c in harness.fake.calls()]
    assert sent_to.count("u-g7") == 1  # recorded once by the fake: never re-sent
    assert sent_to.count("u-g7b") == 2  # no echo: re-sent after the wait


@pytest.mark.parametrize(
    ("mode", "code", "action"),
    [
        ("permanent_551", 551, "recipient_unreachable"),
        ("bad_token", 190, "bad_token"),
        ("invalid_param", 100, "invalid_request"),
    ],
)
def test_permanent_errors_are_not_retried_and_are_listed_for_operators(
    harness: Harness, mode: str, code: int, action: str
) -> None:
    """G8 / G9 / G10: 551, 190 and 100 are recorded with the fbtrace_id, never retried, and listed."""
    harness.say("u-perm", "hi")
    harness.work()
    harness.fake.fault(mode, 1, recipient="u-perm")
    harness.send()
    row = _only(harness, "u-perm")
    assert row["status"] == "failed" and row["error_code"] == code and row["error_action"] == action
    assert row["trace_id"] and row["trace_id"].startswith("FakeTrace")
    if mode == "bad_token":
        assert Channel.MESSENGER in harness.sender.paused  # the Page's circuit is open
    harness.sender.paused.clear()
    harness.clock.advance(3600)
    harness.send()
    assert len([c for c in harness.fake.calls() if c["recipient"] == "u-perm"]) == 1
    listed = harness.container.channels.outbox.rows(["failed"])  # type: ignore[union-attr]
    assert [r["key"] for r in listed] == [row["key"]]
    if mode == "permanent_551":
        thread = harness.thread("u-perm")
        assert thread is not None and thread["unreachable_at"] is not None


def test_admin_endpoint_needs_the_token(harness: Harness, seeded_url: str, fake_graph: Any) -> None:
    """Failed calls are shown to operators at /admin/outbox, only with the admin token."""
    from fastapi.testclient import TestClient

    from amanah.bootstrap import build
    from amanah.entrypoints.asgi import create_app
    from tests.integration.test_webhooks import harness_settings

    harness.say("u-admin", "hi")
    harness.work()
    harness.fake.fault("permanent_551", 1, recipient="u-admin")
    harness.send()
    assert harness.client.get("/admin/outbox").status_code == 404  # no token configured: no endpoint
    container = build(harness_settings(seeded_url, fake_graph.base, admin_token="admin-secret-1"))
    with TestClient(create_app(container)) as client:
        assert client.get("/admin/outbox").status_code == 401
        assert client.get("/admin/outbox", headers={"Authorization": "Bearer wrong"}).status_code == 401
        doc = client.get("/admin/outbox", headers={"Authorization": "Bearer admin-secret-1"}).json()
    assert doc["counts"]["messenger"]["failed"] == 1
    assert [r["error_code"] for r in doc["rows"]] == [551]


def test_crashed_sender_rows_become_unconfirmed_and_are_resent_only_after_the_echo_wait(
    harness: Harness,
) -> None:
    """A row left `sending` by a dead sender is re-sent after its lease and the echo wait, not before."""
    harness.say("u-crash", "hi")
    harness.work()
    outbox = harness.container.channels.outbox  # type: ignore[union-attr]
    claimed = outbox.claim("dead-sender", now=harness.clock.now(), lease_s=30, limit=10)
    assert [r.user_id for r in claimed] == ["u-crash"]
    harness.send()
    assert _only(harness, "u-crash")["status"] == "sending"  # leased by the dead sender
    harness.clock.advance(31)
    harness.send()
    assert _only(harness, "u-crash")["status"] == "unconfirmed"
    assert harness.fake.calls() == []
    harness.clock.advance(6)
    harness.send()
    assert _only(harness, "u-crash")["status"] == "sent"
    assert len(harness.fake.calls()) == 1


def test_two_senders_never_send_the_same_row(harness: Harness) -> None:
    """Several senders share the outbox: each row is claimed by one of them only."""
    for n in range(12):
        harness.say(f"u-share-{n}", "hi")
    harness.work()
    runtime = harness.container.channels
    assert runtime is not None

    def sender(name: str) -> OutboxSender:
        return OutboxSender(
            outbox=runtime.outbox,
            adapters=runtime.adapters,
            endpoints=runtime.endpoints,
            clock=harness.clock,
            owner=name,
            max_inflight=4,
            typing=False,
        )

    async def both() -> list[int]:
        return list(await asyncio.gather(sender("s1").drain(), sender("s2").drain()))

    counts = asyncio.run(both())
    assert sum(counts) == 12
    recipients = [c["recipient"] for c in harness.fake.calls()]
    assert sorted(recipients) == sorted(f"u-share-{n}" for n in range(12))


def test_two_workers_never_handle_the_same_event(harness: Harness) -> None:
    """Two inbox workers claim disjoint conversations; each event is answered once."""
    for n in range(10):
        harness.say(f"u-two-{n % 5}", f"hi {n}")
        harness.clock.advance(1)
    runtime = harness.container.channels
    assert runtime is not None
    first = runtime.inbox.claim("w1", now=harness.clock.now(), lease_s=30, conversations=3)
    second = runtime.inbox.claim("w2", now=harness.clock.now(), lease_s=30, conversations=10)
    mine = {c.user_id for c in first}
    theirs = {c.user_id for c in second}
    assert mine and theirs and not mine & theirs
    assert len(mine | theirs) == 5
    for conv in first:
        harness.pipeline.process(conv, "w1")
    for conv in second:
        harness.pipeline.process(conv, "w2")
    assert harness.work() == 0
    assert len(harness.outbox()) == 10


def test_cli_lists_failed_calls_and_requeues_them(
    harness: Harness, seeded_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`amanah outbox failed` shows permanent failures with their code; `outbox retry --all` requeues them."""
    from typer.testing import CliRunner

    from amanah.entrypoints.cli import app

    harness.say("u-cli", "hi")
    harness.work()
    harness.fake.fault("invalid_param", 1, recipient="u-cli")
    harness.send()
    monkeypatch.setenv("AMANAH_DATABASE_URL", seeded_url)
    runner = CliRunner()
    result = runner.invoke(app, ["outbox", "failed"])
    assert result.exit_code == 0, result.output
    assert "failed" in result.output and "code=100" in result.output and "FakeTrace" in result.output
    status = runner.invoke(app, ["outbox", "status", "--json"])
    assert json.loads(status.output)["outbox"]["messenger"]["failed"] == 1
    retried = runner.invoke(app, ["outbox", "retry", "--all"])
    assert "queued 1" in retried.output
    row = _only(harness, "u-cli")
    assert row["status"] == "pending" and row["attempts"] == 0


def test_stale_lease_of_a_conversation_is_taken_over(harness: Harness) -> None:
    """A worker that died holding a conversation's lease delays it only until the lease expires."""
    harness.say("u-lease", "hi")
    runtime = harness.container.channels
    assert runtime is not None
    assert runtime.inbox.claim("dead-worker", now=harness.clock.now(), lease_s=5)
    assert harness.work() == 0  # leased by the dead worker
    harness.clock.advance(6)
    assert harness.work() == 1
    assert len(harness.outbox()) == 1


def test_next_attempt_is_not_before_now_for_new_rows(harness: Harness) -> None:
    """A freshly queued call is due at once (no artificial delay on the happy path)."""
    harness.say("u-due", "hi")
    harness.work()
    row = _only(harness, "u-due")
    assert row["next_attempt_at"] <= harness.clock.now()
    with harness.engine.begin() as conn:
        conn.execute(
            update(channel_outbox)
            .where(channel_outbox.c.id == row["id"])
            .values(next_attempt_at=harness.clock.now() + timedelta(seconds=60))
        )
    assert harness.send() == 0
    harness.clock.advance(61)
    assert harness.send() == 1
    assert httpx  # the fake is reached over real HTTP on loopback


def test_processed_events_keep_no_text_and_old_rows_are_purged(harness: Harness) -> None:
    """I4: once handled, an inbox row keeps its dedup key but not the message; `outbox purge` forgets
    finished rows after the retention, and a replay within it is still recognised."""
    from sqlalchemy import select

    from amanah.adapters.storage.schema_channels import channel_inbox

    harness.say("u-i4", "my secret question", mid="m_I4")
    harness.work_and_send()
    [row] = harness.inbox()
    assert row["dedup_key"] == "m_I4" and row["event"] is None and row["status"] == "done"
    runtime = harness.container.channels
    assert runtime is not None
    assert runtime.inbox.purge(harness.clock.now() - timedelta(days=7)) == 0  # too recent: kept
    replay = messenger_body(
        [
            {
                "sender": {"id": "u-i4"},
                "recipient": {"id": PAGE},
                "timestamp": harness.now_ms(),
                "message": {"mid": "m_I4", "text": "my secret question"},
            }
        ]
    )
    assert harness.post(replay).status_code == 200
    harness.work_and_send()
    assert len(harness.texts_to("u-i4")) == 1
    later = datetime.now(UTC) + timedelta(days=8)
    assert runtime.inbox.purge(later) == 1
    assert runtime.outbox.purge(later) == 1
    with harness.engine.connect() as conn:
        assert conn.execute(select(channel_inbox)).first() is None


def test_a_claim_skips_conversations_another_transaction_is_writing(harness: Harness) -> None:
    """PostgreSQL: a claim does not wait for a thread row another worker's batch holds (waiting, in
    whatever order, is how two workers deadlocked); it leases the other conversations and returns."""
    import threading

    from sqlalchemy import update as sql_update

    from amanah.adapters.storage.schema_channels import channel_threads

    if harness.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one write lock: writers queue, they cannot deadlock")
    harness.say("u-busy", "hi")
    harness.say("u-free", "hi")
    runtime = harness.container.channels
    assert runtime is not None
    first = runtime.inbox.claim("w1", now=harness.clock.now(), lease_s=0.001, conversations=10)
    assert {c.user_id for c in first} == {"u-busy", "u-free"}
    harness.clock.advance(1)  # both leases have expired
    t = channel_threads
    with harness.engine.begin() as holder:  # another worker's batch, still open
        holder.execute(sql_update(t).where(t.c.user_id == "u-busy").values(updated_at=harness.clock.now()))
        claimed: list[set[str]] = []
        claimer = threading.Thread(
            target=lambda: claimed.append(
                {c.user_id for c in runtime.inbox.claim("w2", now=harness.clock.now(), lease_s=30)}
            )
        )
        claimer.start()
        claimer.join(10)
        assert not claimer.is_alive(), "the claim waited for the other transaction"
    assert claimed == [{"u-free"}]


def test_the_sender_loop_survives_a_database_error_and_records_the_outcome(harness: Harness) -> None:
    """The long-running sender meets a failing database call (writing an outcome): it logs, waits, tries
    again with the outcome still in hand; the reply is sent once and recorded as sent."""
    import threading
    import time

    harness.say("u-dbdown", "hi")
    harness.work()
    runtime = harness.container.channels
    assert runtime is not None

    class FinishFailsOnce:
        def __init__(self, inner: Any) -> None:
            self.inner, self.failed = inner, False

        def finish(self, *args: Any, **kwargs: Any) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("database is away (injected)")
            self.inner.finish(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    sender = OutboxSender(
        outbox=FinishFailsOnce(runtime.outbox),  # type: ignore[arg-type]
        adapters=runtime.adapters,
        endpoints=runtime.endpoints,
        clock=harness.clock,
        typing=False,
        poll_s=0.01,
    )
    stop = threading.Event()
    thread = threading.Thread(target=lambda: asyncio.run(sender.run(stop)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _only(harness, "u-dbdown")["status"] != "sent":
        time.sleep(0.05)
    stop.set()
    thread.join(15)
    assert not thread.is_alive()
    assert _only(harness, "u-dbdown")["status"] == "sent"
    assert len([c for c in harness.fake.calls() if c["recipient"] == "u-dbdown"]) == 1
