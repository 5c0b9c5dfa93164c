"""Messenger and WhatsApp webhooks: ``GET`` answers Meta's handshake, ``POST`` stores events durably.

The ``POST`` route is the hot path and is a plain ASGI endpoint (no request object, no dependency
injection): read the raw body (the app's ``BodySizeLimit`` middleware answers 413 above 1 MiB
before a byte is hashed) -> check ``X-Hub-Signature-256`` over those exact bytes in constant time
(missing or bad: 401, nothing stored) -> parse every event of every entry (not JSON: 400) -> one
multi-row ``INSERT ... ON CONFLICT DO NOTHING`` and a commit -> ``200 EVENT_RECEIVED``. A duplicate is
acknowledged and ignored. When the database is unavailable the answer is 503, so Meta retries.

Commits are grouped: requests that arrive while a commit is running are written together by the next
one (one writer thread), so the ack path costs one commit per batch, not per request, under load.
Processing happens later, in the channel worker.

``GET /admin/outbox`` (``Authorization: Bearer <AMANAH_ADMIN_TOKEN>``; 404 when no token is set)
lists outbox counts, failed and held calls, and open agent notes, for operators.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import Counter
from starlette.types import Receive, Scope, Send

from amanah.adapters.channels.base import ChannelAdapter, MalformedPayload
from amanah.adapters.storage.sql_inbox import SqlInbox
from amanah.domain.conversation import Channel
from amanah.entrypoints.web.agents import check_admin

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

    from amanah.adapters.channels.worker import ChannelRuntime
    from amanah.bootstrap import Container

log = logging.getLogger(__name__)

WEBHOOK_REQUESTS = Counter(
    "amanah_webhook_requests_total", "Webhook requests by channel and result", ["channel", "result"]
)
WEBHOOK_EVENTS = Counter("amanah_webhook_events_total", "Webhook events stored (before dedup)", ["channel"])

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_JSON = [(b"content-type", b"application/json")]


class GroupCommitWriter:
    """Writes inbox rows from the event loop through one background thread, many requests per commit.

    ``await writer.write(rows)`` returns once the rows are committed (or raises what the database
    raised). While a commit runs, newly submitted rows wait and go together in the next transaction.
    """

    def __init__(
        self, inbox: SqlInbox, *, on_commit: Callable[[], None] | None = None, max_rows: int = 5000
    ) -> None:
        self.inbox = inbox
        self.on_commit = on_commit
        self.max_rows = max_rows
        self._queue: deque[
            tuple[Sequence[Mapping[str, Any]], asyncio.Future[None], asyncio.AbstractEventLoop]
        ] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._closed = False
            self._thread = threading.Thread(target=self._run, name="amanah-inbox-writer", daemon=True)
            self._thread.start()

    async def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._ready:
            self._ensure_thread()
            self._queue.append((rows, future, loop))
            self._ready.notify()
        await future

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue and self._closed:
                    return
                batch = []
                count = 0
                while self._queue and count < self.max_rows:
                    item = self._queue.popleft()
                    batch.append(item)
                    count += len(item[0])
            rows = [row for item in batch for row in item[0]]
            error: BaseException | None = None
            try:
                self.inbox.add_many(rows)
            except Exception as exc:  # the database is unavailable: every waiting request gets a 503
                log.error("inbox write failed: %s", exc)
                error = exc
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for _rows, future, loop in batch:
                by_loop.setdefault(loop, []).append(future)
            for loop, futures in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, futures, error)
                except RuntimeError:  # the loop was closed meanwhile
                    pass
            if error is None and self.on_commit is not None:
                self.on_commit()


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class WebhookEndpoint:
    """The ASGI endpoint of one channel's webhook (``GET`` handshake, ``POST`` events)."""

    def __init__(self, channel: Channel, adapter: ChannelAdapter, writer: GroupCommitWriter) -> None:
        self.channel = channel
        self.adapter = adapter
        self.writer = writer
        self.header = adapter.signature_header.lower().encode("latin-1")
        self._counts = {
            result: WEBHOOK_REQUESTS.labels(channel.value, result)
            for result in (
                "ok",
                "bad_signature",
                "malformed",
                "unavailable",
                "handshake_ok",
                "handshake_refused",
            )
        }
        self._events = WEBHOOK_EVENTS.labels(channel.value)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send)
        elif method in ("GET", "HEAD"):
            await self._handshake(scope, send)
        else:
            await _respond(send, 405, b"method not allowed", [*_TEXT, (b"allow", b"GET, POST")])

    async def _handshake(self, scope: Scope, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True))
        challenge = self.adapter.verify_handshake(params)
        if challenge is None:
            self._counts["handshake_refused"].inc()
            await _respond(send, 403, b"forbidden", _TEXT)
            return
        self._counts["handshake_ok"].inc()
        await _respond(send, 200, challenge.encode("utf-8"), _TEXT)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        if body is None:
            return
        signature: str | None = None
        for name, value in scope["headers"]:
            if name == self.header:
                signature = value.decode("latin-1")
                break
        if not self.adapter.verify_signature(body, signature):
            self._counts["bad_signature"].inc()
            await _respond(send, 401, b'{"error":"invalid_signature"}', _JSON)
            return
        try:
            events = self.adapter.parse(body)
        except MalformedPayload:
            self._counts["malformed"].inc()
            await _respond(send, 400, b'{"error":"malformed_payload"}', _JSON)
            return
        if events:
            rows = SqlInbox.rows_for(self.channel, events, datetime.now(UTC))
            try:
                await self.writer.write(rows)
            except Exception:
                self._counts["unavailable"].inc()
                await _respond(send, 503, b'{"error":"unavailable"}', _JSON)
                return
            self._events.inc(len(rows))
        self._counts["ok"].inc()
        await _respond(send, 200, b"EVENT_RECEIVED", _TEXT)


class WebhookFastPath:
    """ASGI middleware sending ``/webhooks/<channel>`` straight to its endpoint, skipping the rest of the
    app's middleware (sessions, routing, exception handlers): the acknowledgement is the hot path.

    The body limit still applies first (``BodySizeLimit`` wraps each endpoint), so an oversized body is
    refused with 413 before a byte is hashed. Everything else goes to the app unchanged.
    """

    def __init__(self, app: Any, *, endpoints: Mapping[str, Any], max_bytes: int) -> None:
        from amanah.entrypoints.web.limits import BodySizeLimit

        self.app = app
        self.endpoints = {
            path: BodySizeLimit(endpoint, max_bytes=max_bytes) for path, endpoint in endpoints.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def router(container: Container, templates: Jinja2Templates) -> APIRouter:
    """``/webhooks/messenger``, ``/webhooks/whatsapp`` and ``/admin/outbox``."""
    r = APIRouter()
    runtime: ChannelRuntime | None = getattr(container, "channels", None)
    if runtime is None:
        return r
    writer = GroupCommitWriter(runtime.inbox, on_commit=runtime.notify_inbox)
    container.extras["inbox_writer"] = writer
    fast_paths: dict[str, WebhookEndpoint] = {}
    container.extras["webhook_endpoints"] = fast_paths  # for WebhookFastPath (asgi.py)
    for channel in (Channel.MESSENGER, Channel.WHATSAPP):
        endpoint = WebhookEndpoint(channel, runtime.adapter(channel), writer)
        fast_paths[f"/webhooks/{channel.value}"] = endpoint
        # A class instance is routed as a raw ASGI app (no Request object on the hot path).
        r.add_route(
            f"/webhooks/{channel.value}",
            endpoint,  # type: ignore[arg-type]
            methods=["GET", "POST"],
            include_in_schema=False,
        )

    admin_token = container.settings.admin_token.get_secret_value()

    @r.get("/admin/outbox", include_in_schema=False)
    def admin_outbox(request: Request, status: str = "failed,held", limit: int = 100) -> Response:
        denied = check_admin(request, admin_token)
        if denied is not None:
            return denied
        statuses = [s for s in status.split(",") if s]
        outbox = runtime.outbox
        doc = {
            "counts": outbox.counts(),
            "inbox": runtime.inbox.counts(),
            "rows": outbox.rows(statuses, limit=max(1, min(limit, 1000))),
            "agent_notes": outbox.notes(limit=max(1, min(limit, 1000))),
        }
        return Response(json.dumps(doc, ensure_ascii=False, default=str), media_type="application/json")

    return r
