"""GraphSender (aiohttp) against the fake Graph API served by uvicorn on a loopback socket
(conformance F7, G4/G6/G7/G8 transport parts)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from amanah.adapters.channels.base import (
    ChannelAdapter,
    ErrorAction,
    OutboundMessage,
    OutcomeKind,
    SendOutcome,
    SendRequest,
)
from amanah.adapters.channels.fake_graph import FakeGraphApp, create_fake_graph_app
from amanah.adapters.channels.messenger import MessengerAdapter
from amanah.adapters.channels.sender import (
    GraphEndpoint,
    GraphSender,
    endpoints_from_settings,
)
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.domain.conversation import Channel
from amanah.settings import Settings

TOKEN = "page-token-not-real"
SECRET = "app-secret-not-real"
PSID = "2000000000000002"
MESSENGER = MessengerAdapter("vt", SECRET)
WHATSAPP = WhatsAppAdapter("vt", SECRET, "400000000000004")
ADAPTERS: dict[Channel, ChannelAdapter] = {Channel.MESSENGER: MESSENGER, Channel.WHATSAPP: WHATSAPP}


def endpoints(base: str) -> dict[Channel, GraphEndpoint]:
    return {
        Channel.MESSENGER: GraphEndpoint(f"{base}/v23.0", TOKEN, SECRET),
        Channel.WHATSAPP: GraphEndpoint(f"{base}/v23.0", TOKEN, SECRET),
    }


def fb_request(text: str = "Your card is now frozen.", user: str = PSID, key: str = "ob1") -> SendRequest:
    (request,) = MESSENGER.render(
        OutboundMessage(channel=Channel.MESSENGER, user_id=user, texts=(text,), key=key)
    )
    return request


def wa_request() -> SendRequest:
    (request,) = WHATSAPP.render(
        OutboundMessage(channel=Channel.WHATSAPP, user_id="15550002222", texts=("hi",))
    )
    return request


@contextmanager
def served(app: FakeGraphApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def sender_for(base: str, **kwargs: object) -> GraphSender:
    return GraphSender(endpoints(base), adapters=ADAPTERS, **kwargs)  # type: ignore[arg-type]


async def _send_all(sender: GraphSender, requests: list[SendRequest]) -> list[SendOutcome]:
    async with sender:
        return [await sender.send(r) for r in requests]


def test_delivers_both_channels_with_bearer_token_and_proof() -> None:
    """F7: delivered with ids; the token travels as a Bearer header, never in the URL; proof is correct."""
    app = create_fake_graph_app(access_token=TOKEN, app_secret=SECRET)
    with served(app) as base:
        fb, wa = asyncio.run(_send_all(sender_for(base), [fb_request(), wa_request()]))
    assert fb.kind is OutcomeKind.DELIVERED and fb.message_id and fb.message_id.startswith("m_")
    assert wa.kind is OutcomeKind.DELIVERED and wa.message_id and wa.message_id.startswith("wamid.")
    calls = list(app.state.fake.calls)
    assert [c["path"] for c in calls] == ["/v23.0/me/messages", "/v23.0/400000000000004/messages"]
    assert all(c["auth"] == "bearer" and c["appsecret_proof"] for c in calls)


def test_wrong_app_secret_proof_is_permanent() -> None:
    """F7: a proof made with the wrong app secret is refused by the (strict) fake: permanent, no retry."""
    app = create_fake_graph_app(access_token=TOKEN, app_secret="another-secret")
    with served(app) as base:
        (outcome,) = asyncio.run(_send_all(sender_for(base), [fb_request()]))
    assert (outcome.kind, outcome.code) == (OutcomeKind.PERMANENT, 100)


@pytest.mark.parametrize(
    ("mode", "kind", "action", "code"),
    [
        ("rate_limit", OutcomeKind.RETRY, ErrorAction.THROTTLED, 613),  # G4
        ("transient", OutcomeKind.RETRY, ErrorAction.TRANSIENT, 1200),  # G6
        ("5xx", OutcomeKind.RETRY, ErrorAction.TRANSIENT, 2),  # G6
        ("permanent_551", OutcomeKind.PERMANENT, ErrorAction.RECIPIENT_UNREACHABLE, 551),  # G8
        ("window_closed", OutcomeKind.PERMANENT, ErrorAction.WINDOW_CLOSED, 10),  # G1
        ("bad_token", OutcomeKind.PERMANENT, ErrorAction.BAD_TOKEN, 190),  # G9
        ("bad_gateway", OutcomeKind.RETRY, ErrorAction.TRANSIENT, None),
    ],
)
def test_faults_classified(mode: str, kind: OutcomeKind, action: ErrorAction, code: int | None) -> None:
    """Injected faults come back as the right outcome, then the next call is delivered."""
    app = create_fake_graph_app()

    async def scenario(base: str) -> list[SendOutcome]:
        async with sender_for(base) as sender:
            return [await sender.send(fb_request()), await sender.send(fb_request())]

    with served(app) as base:
        httpx.post(f"{base}/_fake/faults", json={"mode": mode})
        failed, after = asyncio.run(scenario(base))
    assert (failed.kind, failed.action, failed.code) == (kind, action, code)
    assert after.kind is OutcomeKind.DELIVERED


def test_unconfigured_channel_is_permanent() -> None:
    """A request for a channel without an endpoint is permanent, without any network call."""
    sender = GraphSender({})
    (outcome,) = asyncio.run(_send_all(sender, [fb_request()]))
    assert (outcome.kind, outcome.action) == (OutcomeKind.PERMANENT, ErrorAction.INVALID_REQUEST)


def test_endpoints_from_settings_only_configured_channels() -> None:
    """Only channels with an access token get an endpoint; the token is not in its repr."""
    settings = Settings(
        messenger_page_access_token=TOKEN,
        messenger_app_secret=SECRET,
        whatsapp_access_token="",
        _env_file=None,
    )
    found = endpoints_from_settings(settings)
    assert list(found) == [Channel.MESSENGER]
    assert TOKEN not in repr(found[Channel.MESSENGER])


@pytest.mark.parametrize(("fake_secret", "delivered"), [(SECRET, True), ("old-app-secret-not-real", False)])
def test_appsecret_proof_uses_the_current_secret_while_rotating(fake_secret: str, delivered: bool) -> None:
    """B9/F7: with a previous app secret configured, appsecret_proof is still made with the current one."""
    app = create_fake_graph_app(access_token=TOKEN, app_secret=fake_secret)
    with served(app) as base:
        settings = Settings(
            messenger_page_access_token=TOKEN,
            messenger_app_secret=SECRET,
            messenger_app_secret_previous="old-app-secret-not-real",
            messenger_app_secret_previous_until="2100-01-01T00:00:00Z",
            messenger_graph_url=f"{base}/v23.0",
            _env_file=None,
        )
        sender = GraphSender(endpoints_from_settings(settings), adapters=ADAPTERS)
        (outcome,) = asyncio.run(_send_all(sender, [fb_request()]))
    assert (outcome.kind is OutcomeKind.DELIVERED) is delivered


# --- over a real socket -----------------------------------------------------------------------------


@dataclass
class LiveFake:
    base: str
    app: FakeGraphApp
    record: Path


@pytest.fixture
def live_fake(tmp_path: Path) -> Iterator[LiveFake]:
    record = tmp_path / "calls.jsonl"
    app = create_fake_graph_app(record)
    with served(app) as base:
        yield LiveFake(base, app, record)


def test_socket_concurrent_sends_recorded_to_file(live_fake: LiveFake) -> None:
    """Over loopback, 100 concurrent sends through one keep-alive client are all delivered and recorded."""

    async def scenario() -> list[SendOutcome]:
        async with GraphSender(endpoints(live_fake.base), adapters=ADAPTERS, timeout_s=5) as sender:
            requests = [fb_request(f"Message {i}.", key=f"ob{i}") for i in range(100)]
            return list(await asyncio.gather(*(sender.send(r) for r in requests)))

    outcomes = asyncio.run(scenario())
    assert all(o.kind is OutcomeKind.DELIVERED for o in outcomes)
    assert len({o.message_id for o in outcomes}) == 100
    httpx.post(f"{live_fake.base}/_fake/flush")
    assert len(live_fake.record.read_text(encoding="utf-8").splitlines()) == 100


def test_g7_timeout_after_sending_is_ambiguous(live_fake: LiveFake) -> None:
    """G7 (transport part): a read timeout is a RETRY marked ambiguous; the fake still delivers later."""
    httpx.post(f"{live_fake.base}/_fake/faults", json={"mode": "timeout", "delay_s": 0.6})

    async def scenario() -> SendOutcome:
        async with GraphSender(endpoints(live_fake.base), adapters=ADAPTERS, timeout_s=0.2) as sender:
            return await sender.send(fb_request(key="ob-timeout"))

    outcome = asyncio.run(scenario())
    assert (outcome.kind, outcome.action) == (OutcomeKind.RETRY, ErrorAction.AMBIGUOUS)
    deadline = time.monotonic() + 5
    calls: list[dict[str, object]] = []
    while time.monotonic() < deadline and not calls:
        calls = httpx.get(f"{live_fake.base}/_fake/calls").json()["calls"]
        time.sleep(0.05)
    assert calls and calls[0]["status"] == 200 and calls[0]["fault"] == "timeout"


def test_connection_refused_is_not_sent() -> None:
    """Nothing listening: a RETRY that is not ambiguous (the request never left)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    (outcome,) = asyncio.run(_send_all(sender_for(f"http://127.0.0.1:{port}", timeout_s=1), [fb_request()]))
    assert (outcome.kind, outcome.action) == (OutcomeKind.RETRY, ErrorAction.TRANSIENT)


def test_stored_bytes_sent_as_they_are_and_551_permanent(live_fake: LiveFake) -> None:
    """send_body POSTs the stored bytes unchanged (what the ledger recorded); a 551 fault is permanent."""
    httpx.post(f"{live_fake.base}/_fake/faults", json={"mode": "permanent_551", "recipient": "9"})
    body = '{"recipient":{"id":"2000000000000002"},"messaging_type":"RESPONSE","message":{"text":"مرحبا"}}'

    async def scenario() -> list[SendOutcome]:
        async with sender_for(live_fake.base) as sender:
            return [
                await sender.send_body(fb_request(), body.encode("utf-8")),
                await sender.send(fb_request(user="9")),
            ]

    ok, gone = asyncio.run(scenario())
    assert ok.kind is OutcomeKind.DELIVERED
    assert (gone.kind, gone.action) == (OutcomeKind.PERMANENT, ErrorAction.RECIPIENT_UNREACHABLE)
    calls = httpx.get(f"{live_fake.base}/_fake/calls").json()["calls"]
    assert calls[0]["body"]["message"]["text"] == "مرحبا"
