"""The Messenger/WhatsApp webhooks, the durable inbox and the channel worker (spec §10 ids in docstrings).

Each test runs the real app (TestClient) on a seeded database of every backend, the real inbox
worker, and the real outbox sender against the fake Graph API served by uvicorn on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from amanah.adapters.channels.fake_graph import FakeGraphApp, create_fake_graph_app
from amanah.adapters.channels.meta import hub_signature
from amanah.adapters.channels.pipeline import ChannelPipeline
from amanah.adapters.channels.worker import OutboxSender, make_pipeline
from amanah.adapters.clock import FixedClock
from amanah.adapters.storage.schema_channels import channel_inbox, channel_outbox, channel_threads
from amanah.bootstrap import Container, build
from amanah.domain.conversation import Channel
from amanah.entrypoints.asgi import create_app
from amanah.settings import Settings

SECRET = "test-app-secret-not-real"
WA_SECRET = "wa-app-secret-not-real"
VERIFY = "vt-9c1e-test"
PAGE = "1000000000000001"
PHONE_ID = "400000000000004"
T0 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
OLD_SECRET = "old-app-secret-not-real"  # the previous app secret during a rotation
ROTATION_UNTIL = T0 + timedelta(hours=1)
USER = "2000000000000002"

# The spec's test vector (§2.4): these exact bytes, this exact signature.
VECTOR_BODY = (
    b'{"object":"page","entry":[{"id":"1000000000000001","time":1767225600123,"messaging":[{"sender":'
    b'{"id":"2000000000000002"},"recipient":{"id":"1000000000000001"},"timestamp":1767225600000,"message":'
    b'{"mid":"m_TEST_0001","text":"Gr\\u00fc\\u00dfe, what is my balance?"}}]}]}'
)
VECTOR_SIGNATURE = "sha256=ac86575f34471f2ae2660731c66d914a8104fd315592b0c339d0b1cbca3b1e0f"


class FakeGraphServer:
    """The fake Graph API under uvicorn on a loopback port, in a background thread."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.app: FakeGraphApp = create_fake_graph_app()
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def reset(self) -> None:
        self.app.fake.calls.clear()
        self.app.fake.faults.clear()

    def fault(self, mode: str, count: int = 1, **extra: Any) -> None:
        httpx.post(
            f"{self.base}/_fake/faults", json={"mode": mode, "count": count, **extra}
        ).raise_for_status()

    def calls(self, *, messages_only: bool = True) -> list[dict[str, Any]]:
        calls = list(self.app.fake.calls)
        if messages_only:
            calls = [c for c in calls if isinstance(c["body"], dict) and "sender_action" not in c["body"]]
        return calls


@pytest.fixture(scope="module")
def fake_graph() -> Iterator[FakeGraphServer]:
    server = FakeGraphServer()
    server.start()
    yield server
    server.stop()


@dataclass
class Harness:
    """The app, its worker and sender, and helpers to speak Meta's wire format to it."""

    container: Container
    client: TestClient
    clock: FixedClock
    fake: FakeGraphServer
    pipeline: ChannelPipeline
    sender: OutboxSender

    # --- speaking like Meta ---------------------------------------------------------------------

    def post(self, body: bytes, channel: str = "messenger", signature: str | None = None) -> httpx.Response:
        secret = SECRET if channel == "messenger" else WA_SECRET
        sig = hub_signature(body, secret) if signature is None else signature
        headers = {"Content-Type": "application/json"}
        if sig:
            headers["X-Hub-Signature-256"] = sig
        return self.client.post(f"/webhooks/{channel}", content=body, headers=headers)

    def now_ms(self, offset_ms: int = 0) -> int:
        return int(self.clock.now().timestamp() * 1000) + offset_ms

    def say(self, user: str, text: str, **kw: Any) -> httpx.Response:
        return self.post(messenger_body([message_item(user, text, ts=self.now_ms(), **kw)]))

    # --- running the worker and the sender --------------------------------------------------------

    def work(self) -> int:
        total = 0
        while n := self.pipeline.run_once("test-worker"):
            total += n
        return total

    def send(self) -> int:
        return asyncio.run(self.sender.drain())

    def work_and_send(self) -> None:
        self.work()
        self.send()

    # --- looking at the database --------------------------------------------------------------

    def inbox(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(channel_inbox).order_by(channel_inbox.c.id))
            ]

    def outbox(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(channel_outbox).order_by(channel_outbox.c.id))
            ]

    def thread(self, user: str, channel: str = "messenger") -> dict[str, Any] | None:
        t = channel_threads
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.channel == channel, t.c.user_id == user)).first()
        return dict(row._mapping) if row is not None else None

    @property
    def engine(self) -> Any:
        assert self.container.channels is not None
        return self.container.channels.inbox.engine

    def texts_to(self, user: str) -> list[str]:
        out = []
        for call in self.fake.calls():
            if call["recipient"] != user or call["status"] != 200:
                continue
            message = call["body"].get("message") or {}
            payload = (message.get("attachment") or {}).get("payload") or {}
            out.append(message.get("text") or payload.get("text") or "")
        return out


def message_item(
    user: str, text: str, *, ts: int, mid: str | None = None, payload: str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid or f"m_{uuid.uuid4().hex[:12]}", "text": text}
    if payload is not None:
        message["quick_reply"] = {"payload": payload}
    return {"sender": {"id": user}, "recipient": {"id": PAGE}, "timestamp": ts, "message": message}


def messenger_body(
    items: list[dict[str, Any]], *, entry_time: int | None = None, key: str = "messaging"
) -> bytes:
    entry = {"id": PAGE, "time": entry_time or (items[0]["timestamp"] if items else 0), key: items}
    return json.dumps({"object": "page", "entry": [entry]}, separators=(",", ":")).encode()


def harness_settings(url: str, graph_base: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "messenger_app_secret": SECRET,
        "messenger_verify_token": VERIFY,
        "messenger_page_access_token": "page-token",
        "messenger_graph_url": f"{graph_base}/v23.0",
        "messenger_app_id": "555000111",
        "whatsapp_app_secret": WA_SECRET,
        "whatsapp_verify_token": VERIFY,
        "whatsapp_access_token": "wa-token",
        "whatsapp_phone_number_id": PHONE_ID,
        "whatsapp_graph_url": f"{graph_base}/v23.0",
        "run_worker_in_server": False,
        "worker_lease_s": 5.0,
        "outbox_echo_wait_s": 5.0,
        "public_base_url": "https://bank.example",
    }
    values.update(extra)
    return Settings(**values)


def _harness(seeded_url: str, fake_graph: FakeGraphServer, **extra: Any) -> Iterator[Harness]:
    fake_graph.reset()
    clock = FixedClock(T0)
    container = build(harness_settings(seeded_url, fake_graph.base, **extra), clock=clock)
    assert container.channels is not None
    runtime = container.channels
    sender = OutboxSender(
        outbox=runtime.outbox,
        adapters=runtime.adapters,
        endpoints=runtime.endpoints,
        clock=clock,
        timeout_s=2.0,
        backoff_base_s=1.0,
        typing=False,  # faults target a recipient's next call: keep it the reply (typing has its own tests)
        echo_wait_s=5.0,
        monotonic=lambda: clock.now().timestamp(),  # pauses and pacing follow the test's clock
    )
    with TestClient(create_app(container)) as client:
        yield Harness(container, client, clock, fake_graph, make_pipeline(container), sender)
    if container.engine is not None:
        container.engine.dispose()


@pytest.fixture
def harness(seeded_url: str, fake_graph: FakeGraphServer) -> Iterator[Harness]:
    yield from _harness(seeded_url, fake_graph)


@pytest.fixture
def rotating(seeded_url: str, fake_graph: FakeGraphServer) -> Iterator[Harness]:
    """The harness during an app secret rotation: both channels' previous secrets work until T0 + 1 h."""
    yield from _harness(
        seeded_url,
        fake_graph,
        messenger_app_secret_previous=OLD_SECRET,
        messenger_app_secret_previous_until=ROTATION_UNTIL,
        whatsapp_app_secret_previous=OLD_SECRET,
        whatsapp_app_secret_previous_until=ROTATION_UNTIL,
    )


def metric(client: TestClient, name: str, **labels: str) -> float:
    """The value of one Prometheus sample from /metrics (0 when absent)."""
    wanted = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- A. handshake ------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", ["messenger", "whatsapp"])
def test_handshake_echoes_the_challenge_as_plain_text(harness: Harness, channel: str) -> None:
    """A1: the right mode and token get 200 text/plain with the challenge byte for byte."""
    params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    response = harness.client.get(f"/webhooks/{channel}", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.content == b"1158201444"


def test_handshake_with_a_wrong_token_is_refused_without_the_challenge(harness: Harness) -> None:
    """A2: a wrong verify token gets 403 and the challenge is not echoed."""
    params = {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158201444"}
    response = harness.client.get("/webhooks/messenger", params=params)
    assert response.status_code == 403
    assert b"1158201444" not in response.content


@pytest.mark.parametrize("mode", [None, "unsubscribe"])
def test_handshake_without_subscribe_mode_is_refused(harness: Harness, mode: str | None) -> None:
    """A3: a missing hub.mode or a mode other than subscribe gets 403."""
    params = {"hub.verify_token": VERIFY, "hub.challenge": "42"}
    if mode is not None:
        params["hub.mode"] = mode
    assert harness.client.get("/webhooks/messenger", params=params).status_code == 403


# --- B. signature ------------------------------------------------------------------------------


def test_spec_test_vector_is_accepted_and_stored(harness: Harness) -> None:
    """B1: the §2.4 test vector's exact bytes and signature are accepted and the event stored."""
    response = harness.post(VECTOR_BODY, signature=VECTOR_SIGNATURE)
    assert response.status_code == 200
    assert [r["dedup_key"] for r in harness.inbox()] == ["m_TEST_0001"]


def test_reserialized_body_with_the_original_signature_is_rejected(harness: Harness) -> None:
    """B2: the same JSON re-serialised (literal ü, other spacing) fails the original signature."""
    reserialized = json.dumps(json.loads(VECTOR_BODY), ensure_ascii=False).encode()
    assert harness.post(reserialized, signature=VECTOR_SIGNATURE).status_code == 401
    assert harness.inbox() == []


def test_flipped_signature_stores_nothing_and_runs_nothing(harness: Harness) -> None:
    """B3: one hex digit flipped -> 401, nothing in the inbox, the worker has nothing to answer."""
    bad = VECTOR_SIGNATURE[:-1] + ("0" if VECTOR_SIGNATURE[-1] != "0" else "1")
    assert harness.post(VECTOR_BODY, signature=bad).status_code == 401
    assert harness.inbox() == []
    assert harness.work() == 0


def test_missing_signature_is_rejected_and_counted(harness: Harness) -> None:
    """B4: no X-Hub-Signature-256 header -> 401 (fail closed) and the bad-signature metric goes up."""
    before = metric(
        harness.client, "amanah_webhook_requests_total", channel="messenger", result="bad_signature"
    )
    assert harness.post(VECTOR_BODY, signature="").status_code == 401
    after = metric(
        harness.client, "amanah_webhook_requests_total", channel="messenger", result="bad_signature"
    )
    assert after == before + 1
    assert harness.inbox() == []


def test_legacy_sha1_signature_alone_is_rejected(harness: Harness) -> None:
    """B5: only a valid legacy X-Hub-Signature (sha1=) is not enough."""
    sha1 = "sha1=" + __import__("hmac").new(SECRET.encode(), VECTOR_BODY, hashlib.sha1).hexdigest()
    response = harness.client.post(
        "/webhooks/messenger", content=VECTOR_BODY, headers={"X-Hub-Signature": sha1}
    )
    assert response.status_code == 401
    assert harness.inbox() == []


def _previous_used(harness: Harness, channel: str) -> float:
    return metric(harness.client, "amanah_app_secret_previous_used_total", channel=channel, use="webhook")


def test_rotation_accepts_old_and_new_secret_inside_the_window(rotating: Harness) -> None:
    """B9: inside the window, bodies signed with the new or the old secret are both stored; the old one
    is counted so operators can see when the platform stopped using it."""
    before = _previous_used(rotating, "messenger")
    new_body = messenger_body([message_item(USER, "hi", ts=rotating.now_ms(), mid="m_new")])
    old_body = messenger_body([message_item(USER, "hello", ts=rotating.now_ms(1), mid="m_old")])
    assert rotating.post(new_body, signature=hub_signature(new_body, SECRET)).status_code == 200
    assert _previous_used(rotating, "messenger") == before
    assert rotating.post(old_body, signature=hub_signature(old_body, OLD_SECRET)).status_code == 200
    assert _previous_used(rotating, "messenger") == before + 1
    assert [r["dedup_key"] for r in rotating.inbox()] == ["m_new", "m_old"]


def test_rotation_refuses_the_previous_secret_after_the_deadline(rotating: Harness) -> None:
    """B9: once previous_until has passed (no restart needed), the old secret gets 401 and nothing is stored."""
    rotating.clock.advance((ROTATION_UNTIL - T0).total_seconds())
    old_body = messenger_body([message_item(USER, "hello", ts=rotating.now_ms(), mid="m_old")])
    assert rotating.post(old_body, signature=hub_signature(old_body, OLD_SECRET)).status_code == 401
    assert rotating.inbox() == []
    new_body = messenger_body([message_item(USER, "hi", ts=rotating.now_ms(), mid="m_new")])
    assert rotating.post(new_body, signature=hub_signature(new_body, SECRET)).status_code == 200
    assert [r["dedup_key"] for r in rotating.inbox()] == ["m_new"]


@pytest.mark.parametrize("channel", ["messenger", "whatsapp"])
def test_rotation_refuses_a_third_secret(rotating: Harness, channel: str) -> None:
    """B9: during a rotation a body signed with any other secret is still 401, nothing stored or run."""
    from amanah.entrypoints.channels_cli import whatsapp_event

    if channel == "messenger":
        body = messenger_body([message_item(USER, "hi", ts=rotating.now_ms())])
    else:
        body = whatsapp_event("15550002222", "hi", phone_number_id=PHONE_ID)
    response = rotating.post(
        body, channel=channel, signature=hub_signature(body, "third-app-secret-not-real")
    )
    assert response.status_code == 401
    assert rotating.inbox() == []
    assert rotating.work() == 0


def test_rotation_accepts_whatsapps_previous_secret_inside_the_window(rotating: Harness) -> None:
    """B9 (WhatsApp): the previous WhatsApp app secret is accepted and counted inside the window."""
    from amanah.entrypoints.channels_cli import whatsapp_event

    before = _previous_used(rotating, "whatsapp")
    body = whatsapp_event("15550002222", "hi", phone_number_id=PHONE_ID)
    assert (
        rotating.post(body, channel="whatsapp", signature=hub_signature(body, OLD_SECRET)).status_code == 200
    )
    assert _previous_used(rotating, "whatsapp") == before + 1
    assert len(rotating.inbox()) == 1


def test_bad_signature_on_malformed_json_is_401_not_400(harness: Harness) -> None:
    """B7: authentication happens before parsing: a bad signature on garbage is 401."""
    assert harness.post(b"{not json", signature="sha256=" + "0" * 64).status_code == 401


def test_malformed_json_with_a_valid_signature_is_400_and_stores_nothing(harness: Harness) -> None:
    """A well-signed body that is not JSON gets 400 and nothing is stored."""
    assert harness.post(b"{not json").status_code == 400
    assert harness.post(b"[1, 2]").status_code == 400
    assert harness.inbox() == []


def test_large_body_is_accepted_and_oversized_body_is_413(harness: Harness) -> None:
    """B8: a 400 KB signed body is accepted; 1.5 MiB is refused with 413 before hashing."""
    item = message_item("u-big", "x" * 1000, ts=harness.now_ms())
    item["message"]["attachments"] = [
        {"type": "fallback", "payload": {"url": "https://e.example/" + "a" * 400_000}}
    ]
    big = messenger_body([item])
    assert 400_000 < len(big) < 1024 * 1024
    assert harness.post(big).status_code == 200
    huge = b'{"object":"page","entry":[],"pad":"' + b"a" * (1536 * 1024) + b'"}'
    response = harness.post(huge, signature="sha256=" + "0" * 64)
    assert response.status_code == 413
    assert len(harness.inbox()) == 1


# --- C. delivery semantics ---------------------------------------------------------------------


def test_ack_does_not_wait_for_the_dialogue(harness: Harness) -> None:
    """C1: the webhook answers as soon as the event is stored; nothing is answered until a worker runs."""
    started = time.perf_counter()
    assert harness.say("u-c1", "what are your opening hours?").status_code == 200
    assert time.perf_counter() - started < 1.0
    assert [r["status"] for r in harness.inbox()] == ["pending"]
    assert harness.fake.calls() == []
    harness.work_and_send()
    assert len(harness.texts_to("u-c1")) == 1


def test_every_event_of_every_entry_is_stored_and_handled_in_timestamp_order(harness: Harness) -> None:
    """C2: 2 entries x 3 events -> 6 inbox rows; each user's events are answered in timestamp order."""
    ts = harness.now_ms()
    entries = []
    for e in range(2):
        items = [message_item(f"u-c2-{e}", f"hi {n}", ts=ts + 10 * (2 - n)) for n in range(3)]
        entries.append({"id": PAGE, "time": ts, "messaging": items})
    body = json.dumps({"object": "page", "entry": entries}).encode()
    assert harness.post(body).status_code == 200
    assert len(harness.inbox()) == 6
    assert harness.work() == 6
    for e in range(2):
        order = [
            r["timestamp_ms"]
            for r in sorted(
                (r for r in harness.inbox() if r["user_id"] == f"u-c2-{e}"), key=lambda r: r["processed_at"]
            )
        ]
        assert order == sorted(order)
    harness.send()
    assert len(harness.fake.calls()) == 6


def test_replayed_body_is_acknowledged_and_answered_once(harness: Harness) -> None:
    """C3: the same body twice -> 200 both times, one inbox row, one reply."""
    body = messenger_body([message_item("u-c3", "hi", ts=harness.now_ms(), mid="m_C3")])
    assert harness.post(body).status_code == 200
    assert harness.post(body).status_code == 200
    harness.work_and_send()
    assert harness.post(body).status_code == 200  # a late retry, after the reply
    harness.work_and_send()
    assert len(harness.inbox()) == 1
    assert len(harness.texts_to("u-c3")) == 1


def test_same_mid_with_another_delivery_time_is_deduplicated(harness: Harness) -> None:
    """C4: the same mid with a different entry.time and timestamp is one event."""
    ts = harness.now_ms()
    first = messenger_body([message_item("u-c4", "hi", ts=ts, mid="m_C4")], entry_time=ts)
    second = messenger_body([message_item("u-c4", "hi", ts=ts + 5000, mid="m_C4")], entry_time=ts + 9000)
    assert harness.post(first).status_code == 200
    assert harness.post(second).status_code == 200
    assert len(harness.inbox()) == 1


def test_postback_without_mid_is_deduplicated_by_its_derived_key(harness: Harness) -> None:
    """C5: a postback without mid gets a synthesized key: an exact replay is stored once."""
    item = {
        "sender": {"id": "u-c5"},
        "recipient": {"id": PAGE},
        "timestamp": harness.now_ms(),
        "postback": {"title": "Menu", "payload": "intent:balance"},
    }
    body = messenger_body([item])
    assert harness.post(body).status_code == 200
    assert harness.post(body).status_code == 200
    rows = harness.inbox()
    assert len(rows) == 1 and rows[0]["dedup_key"].startswith("sha256:")
    harness.work_and_send()
    assert len(harness.texts_to("u-c5")) == 1


def test_out_of_order_arrival_is_handled_in_timestamp_order(harness: Harness) -> None:
    """C6: a later message arriving first is still handled after the earlier one."""
    ts = harness.now_ms()
    assert (
        harness.post(
            messenger_body([message_item("u-c6", "thanks", ts=ts + 2000, mid="m_C6_late")])
        ).status_code
        == 200
    )
    assert (
        harness.post(messenger_body([message_item("u-c6", "hi", ts=ts, mid="m_C6_early")])).status_code == 200
    )
    harness.work()
    rows = {r["dedup_key"]: r for r in harness.inbox()}
    assert rows["m_C6_early"]["processed_at"] <= rows["m_C6_late"]["processed_at"]
    outbox = harness.outbox()
    assert [o["inbox_id"] for o in outbox] == [rows["m_C6_early"]["id"], rows["m_C6_late"]["id"]]


def test_inbox_unavailable_is_503_so_meta_retries(harness: Harness) -> None:
    """C7: when the inbox cannot be written the webhook answers 503 (not 200), and nothing runs."""
    with harness.engine.begin() as conn:
        conn.execute(text("ALTER TABLE channel_inbox RENAME TO channel_inbox_away"))
    try:
        assert harness.say("u-c7", "hi").status_code == 503
    finally:
        with harness.engine.begin() as conn:
            conn.execute(text("ALTER TABLE channel_inbox_away RENAME TO channel_inbox"))
    assert harness.inbox() == []
    assert harness.fake.calls() == []


def test_standby_events_are_recorded_not_answered_and_unknown_shapes_are_acknowledged(
    harness: Harness,
) -> None:
    """C8 / H2: standby messages are stored but not answered; changes[] and unknown keys get 200."""
    ts = harness.now_ms()
    standby = messenger_body([message_item("u-c8", "thanks!", ts=ts)], key="standby")
    assert harness.post(standby).status_code == 200
    odd = json.dumps(
        {
            "object": "page",
            "entry": [
                {"id": PAGE, "time": ts, "changes": [{"field": "feed", "value": {"x": 1}}], "weird": 1}
            ],
        }
    ).encode()
    assert harness.post(odd).status_code == 200
    assert harness.post(b'{"object":"instagram","entry":[]}').status_code == 200
    harness.work_and_send()
    assert harness.fake.calls() == []
    outcomes = sorted(r["outcome"] for r in harness.inbox())
    assert "standby" in outcomes


# --- D. events that never get a reply ----------------------------------------------------------


def test_echo_of_our_message_marks_it_delivered_and_is_not_answered(harness: Harness) -> None:
    """D4: an echo with our app id and our metadata key confirms the outbox row; no reply to it."""
    harness.say("u-d4", "hi")
    harness.work_and_send()
    [row] = harness.outbox()
    assert row["status"] == "sent"
    echo = {
        "sender": {"id": PAGE},
        "recipient": {"id": "u-d4"},
        "timestamp": harness.now_ms(),
        "message": {
            "mid": row["message_id"],
            "is_echo": True,
            "app_id": 555000111,
            "metadata": row["key"],
            "text": "x",
        },
    }
    assert harness.post(messenger_body([echo])).status_code == 200
    harness.work_and_send()
    assert harness.outbox()[0]["status"] == "delivered"
    assert len(harness.fake.calls()) == 1


def test_page_inbox_echo_mutes_the_bot_for_that_thread(harness: Harness) -> None:
    """D5 / H2: an echo from the Page Inbox means a human took over: later messages are not answered."""
    echo = {
        "sender": {"id": PAGE},
        "recipient": {"id": "u-d5"},
        "timestamp": harness.now_ms(),
        "message": {"mid": "m_human", "is_echo": True, "app_id": 263902037430900, "text": "Hi, I'm Sam"},
    }
    assert harness.post(messenger_body([echo])).status_code == 200
    harness.work()
    harness.say("u-d5", "thanks Sam")
    harness.say("u-other", "hi")
    harness.work_and_send()
    assert harness.texts_to("u-d5") == []
    assert len(harness.texts_to("u-other")) == 1
    thread = harness.thread("u-d5")
    assert thread is not None and thread["muted"]


def test_control_passed_back_unmutes_the_bot(harness: Harness) -> None:
    """H3: pass_thread_control back to our app lets the bot answer again."""
    ts = harness.now_ms()
    take = {
        "sender": {"id": "u-h3"},
        "recipient": {"id": PAGE},
        "timestamp": ts,
        "take_thread_control": {"previous_owner_app_id": "555000111", "new_owner_app_id": "263902037430900"},
    }
    back = {
        "sender": {"id": "u-h3"},
        "recipient": {"id": PAGE},
        "timestamp": ts + 10,
        "pass_thread_control": {
            "previous_owner_app_id": "263902037430900",
            "new_owner_app_id": "555000111",
            "metadata": "done",
        },
    }
    harness.post(messenger_body([take]))
    harness.work()
    harness.say("u-h3", "still there?")
    harness.work_and_send()
    assert harness.texts_to("u-h3") == []
    harness.clock.advance(1)
    harness.post(messenger_body([back]))
    harness.work()
    harness.clock.advance(1)
    harness.say("u-h3", "hello again")
    harness.work_and_send()
    assert len(harness.texts_to("u-h3")) == 1


def test_read_and_delivery_receipts_update_state_and_are_not_answered(harness: Harness) -> None:
    """D7: read/delivery watermarks move state (delivered, read watermark) and trigger no call."""
    harness.say("u-d7", "hi")
    harness.work_and_send()
    row = harness.outbox()[0]
    harness.clock.advance(2)
    wm = harness.now_ms()
    delivery = {
        "sender": {"id": "u-d7"},
        "recipient": {"id": PAGE},
        "delivery": {"mids": [row["message_id"]], "watermark": wm},
    }
    read = {"sender": {"id": "u-d7"}, "recipient": {"id": PAGE}, "timestamp": wm, "read": {"watermark": wm}}
    assert harness.post(messenger_body([{**delivery, "timestamp": wm}, read])).status_code == 200
    harness.work_and_send()
    assert harness.outbox()[0]["status"] == "delivered"
    thread = harness.thread("u-d7")
    assert thread is not None and thread["read_watermark_ms"] == wm
    assert len(harness.fake.calls()) == 1


def test_whatsapp_statuses_confirm_delivery_and_never_reply(harness: Harness) -> None:
    """D7 (WhatsApp): a delivered status for our wamid marks the row delivered; statuses get no reply."""
    from amanah.entrypoints.channels_cli import whatsapp_event

    assert (
        harness.post(
            whatsapp_event("15550002222", "hi", phone_number_id=PHONE_ID), channel="whatsapp"
        ).status_code
        == 200
    )
    harness.work_and_send()
    [row] = harness.outbox()
    assert row["status"] == "sent" and row["message_id"].startswith("wamid.")
    status = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "3",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": PHONE_ID},
                            "statuses": [
                                {
                                    "id": row["message_id"],
                                    "status": "delivered",
                                    "timestamp": str(int(T0.timestamp())),
                                    "recipient_id": "15550002222",
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    assert harness.post(json.dumps(status).encode(), channel="whatsapp").status_code == 200
    harness.work_and_send()
    assert harness.outbox()[0]["status"] == "delivered"
    assert len(harness.fake.calls()) == 1


# --- E. account linking and identity -------------------------------------------------------------


def _issue_code(harness: Harness, psid: str) -> str:
    from amanah.app.linking import new_secret

    linking = harness.container.linking
    assert linking is not None
    layla = harness.container.core.customer_by_username("layla")
    return linking.issue_authorization_code(layla.id, new_secret(), psid=psid)


def test_account_linking_event_links_the_user_once(harness: Harness) -> None:
    """E1 / E2: linked with a valid one-time code binds the PSID and says so; a replayed code is refused."""
    code = _issue_code(harness, "u-e1")
    event = {
        "sender": {"id": "u-e1"},
        "recipient": {"id": PAGE},
        "timestamp": harness.now_ms(),
        "account_linking": {"status": "linked", "authorization_code": code},
    }
    assert harness.post(messenger_body([event])).status_code == 200
    harness.work_and_send()
    linking = harness.container.linking
    assert linking is not None
    assert (
        linking.customer_for(Channel.MESSENGER, "u-e1")
        == harness.container.core.customer_by_username("layla").id
    )
    assert "linked" in harness.texts_to("u-e1")[0]
    # The same code again (a different event: another timestamp) is refused, and the user is told.
    harness.clock.advance(5)
    again = {**event, "timestamp": harness.now_ms()}
    assert harness.post(messenger_body([again])).status_code == 200
    harness.work_and_send()
    texts = harness.texts_to("u-e1")
    assert len(texts) == 2 and "did not work" in texts[1]
    assert [r["outcome"] for r in harness.inbox()] == ["linked", "link_rejected"]


def test_unlinked_event_removes_the_binding(harness: Harness) -> None:
    """E4: an unlinked event withdraws consent; the next message is answered as an unlinked user."""
    linking = harness.container.linking
    assert linking is not None
    omar = harness.container.core.customer_by_username("omar")
    linking.link_operator(Channel.MESSENGER, "u-e4", omar.id)
    event = {
        "sender": {"id": "u-e4"},
        "recipient": {"id": PAGE},
        "timestamp": harness.now_ms(),
        "account_linking": {"status": "unlinked"},
    }
    assert harness.post(messenger_body([event])).status_code == 200
    harness.work()
    assert linking.customer_for(Channel.MESSENGER, "u-e4") is None


def test_customer_is_resolved_only_through_a_consented_binding(harness: Harness) -> None:
    """The platform is never an authentication factor: an unlinked PSID gets no account data."""
    linking = harness.container.linking
    assert linking is not None
    layla = harness.container.core.customer_by_username("layla")
    linking.link_operator(Channel.MESSENGER, "u-linked", layla.id)
    harness.say("u-linked", "what is my balance")
    harness.say("u-stranger", "what is my balance")
    harness.work_and_send()
    linked = json.dumps([c["body"] for c in harness.fake.calls() if c["recipient"] == "u-linked"])
    stranger = json.dumps([c["body"] for c in harness.fake.calls() if c["recipient"] == "u-stranger"])
    assert "/secure/" in linked  # balances are withheld behind the bank's secure page
    assert "/secure/" not in stranger and "link" in stranger.lower()


# --- the single exit ----------------------------------------------------------------------------


def test_every_queued_body_has_a_disclosure_record_for_its_exact_bytes(harness: Harness) -> None:
    """Every outbox body is recorded in the ledger with its SHA-256, and the POSTed bytes are those bytes."""
    from amanah.adapters.privacy.ledger import SqlDisclosureLedger

    linking = harness.container.linking
    assert linking is not None
    linking.link_operator(
        Channel.MESSENGER, "u-ledger", harness.container.core.customer_by_username("sara").id
    )
    harness.say("u-ledger", "show my last 5 transactions")
    harness.say("u-anon", "hi")
    harness.work_and_send()
    outbox = harness.outbox()
    assert outbox
    records = SqlDisclosureLedger(harness.engine).records()
    recorded = sorted(r.body_sha256 for r in records)
    assert recorded == sorted(hashlib.sha256(bytes(o["body"])).hexdigest() for o in outbox)
    sent = sorted(
        hashlib.sha256(json.dumps(c["body"], ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()
        for c in harness.fake.calls()
    )
    assert sent == recorded


def test_reprocessing_an_event_never_queues_a_second_reply(harness: Harness) -> None:
    """A worker that lost its lease (or crashed) and handles the same event again queues nothing more."""
    harness.say("u-twice", "hi")
    claimed = harness.container.channels.inbox.claim("w1", now=harness.clock.now(), lease_s=5)  # type: ignore[union-attr]
    item = claimed[0].items[0]
    harness.pipeline.handle(item, "w1")
    from amanah.adapters.channels.pipeline import LeaseLost

    with pytest.raises(LeaseLost):
        harness.pipeline.handle(item, "w1")  # the row is done: the second transaction rolls back
    assert len(harness.outbox()) == 1


def test_an_event_that_keeps_failing_gets_a_polite_error_reply_not_silence(harness: Harness) -> None:
    """A message whose handling fails is retried (order kept); on the last attempt the user gets an apology."""

    class Broken:
        def handle(self, msg: object) -> Any:
            raise RuntimeError("the assistant is broken")

    harness.pipeline.assistant = Broken()
    harness.say("u-broken", "hi")
    harness.clock.advance(1)
    harness.say("u-broken", "hello?")
    for _ in range(4):
        harness.work()
        assert harness.outbox() == []  # still retrying the first message; the second waits its turn
    for _ in range(8):
        harness.work()
    harness.send()
    texts = harness.texts_to("u-broken")
    assert len(texts) == 2 and all("Sorry" in t for t in texts)
    inbox = harness.inbox()
    assert [r["outcome"] for r in inbox] == ["error_reply", "error_reply"]
    assert [o["inbox_id"] for o in harness.outbox()] == [r["id"] for r in inbox]
