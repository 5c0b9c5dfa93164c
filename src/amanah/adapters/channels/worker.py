"""The channel workers: the inbox loop (events -> replies) and the outbox sender (replies -> Graph).

:class:`ChannelWorker` runs both in background threads of one process: inside ``amanah serve`` (the
default, ``AMANAH_RUN_WORKER_IN_SERVER``) or alone in ``amanah worker [--processes N]``. Any number
of them can share one database: inbox conversations and outbox rows are leased (see ``sql_inbox`` and
``sql_outbox``), so no event is handled twice and a conversation's events and messages keep their
order.

The sender (:class:`OutboxSender`) is asynchronous: it keeps up to ``max_inflight`` calls in flight,
one per conversation at most (it only ever takes the head of a conversation's queue). For each call:

* the messaging window is checked first (:func:`policy.send_decision`; ``human_agent=True`` only for
  rows a bank agent wrote, whose bytes were rendered with the ``HUMAN_AGENT`` tag when they needed
  it): outside it the row is ``held`` until the user writes again, and an agent note is written.
  Thread-control calls (``pass_thread_control`` / ``take_thread_control``) are not messages: no
  window, no typing indicator;
* a Messenger reply is preceded by a ``typing_on`` sender action (best effort, not stored; at most
  one per user every ``typing_every_s`` seconds, so a busy conversation does not double its calls);
* the stored bytes are POSTed as they are (they are what the disclosure ledger recorded);
* the outcome is classified by the channel adapter: delivered -> ``sent``; throttling -> the whole
  channel pauses and the row is retried with backoff and jitter; other transient errors -> retried
  with backoff, at most ``policy.MAX_ATTEMPTS`` attempts, then ``failed``; a timeout after the request
  may have reached Meta -> ``unconfirmed``: re-sent only if the echo carrying its key has not arrived
  within ``echo_wait_s``; permanent errors -> ``failed`` (and the window closed -> ``held``; a bad token
  or a restricted Page -> the channel pauses for ``circuit_s``). ``amanah outbox failed`` lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from amanah.adapters.channels.base import (
    ChannelAdapter,
    ErrorAction,
    OutboundKind,
    OutboundMessage,
    OutcomeKind,
    SendOutcome,
    SendRequest,
)
from amanah.adapters.channels.messenger import MessengerAdapter, is_control_path
from amanah.adapters.channels.messenger import app_secrets as messenger_secrets
from amanah.adapters.channels.pacing import (
    DEFAULT_CHANNEL_RATE_PER_S,
    TokenBucket,
    channel_bucket,
    thread_bucket,
)
from amanah.adapters.channels.pipeline import (
    ChannelPipeline,
    PrefetchingClassifier,
    PrefetchingKnowledgeBase,
)
from amanah.adapters.channels.policy import (
    MAX_ATTEMPTS,
    SendDecision,
    WindowReason,
    retry_delay_s,
    send_decision,
)
from amanah.adapters.channels.sender import GraphEndpoint, GraphSender, endpoints_from_settings
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.adapters.channels.whatsapp import app_secrets as whatsapp_secrets
from amanah.adapters.storage.sql_conversations import SqlConversationStore, WriteBehindConversations
from amanah.adapters.storage.sql_inbox import SqlInbox, serialize_sqlite_writes
from amanah.adapters.storage.sql_outbox import (
    DELIVERED,
    FAILED,
    HELD,
    PENDING,
    SENT,
    UNCONFIRMED,
    OutboxRow,
    SendResult,
    SqlOutbox,
)
from amanah.app.ports import Clock
from amanah.domain.conversation import Channel
from amanah.settings import Settings

log = logging.getLogger(__name__)

_PAUSE_CHANNEL = frozenset({ErrorAction.THROTTLED})
_CIRCUIT = frozenset({ErrorAction.BAD_TOKEN, ErrorAction.ACCOUNT_RESTRICTED})


def new_owner_id(role: str) -> str:
    """A lease owner id unique to this process and role (host, pid, random suffix)."""
    return f"{role}:{socket.gethostname()[:20]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class ChannelRuntime:
    """What the webhooks and the workers share: adapters, endpoints, the inbox and the outbox."""

    settings: Settings
    adapters: dict[Channel, ChannelAdapter]
    endpoints: dict[Channel, GraphEndpoint]
    inbox: SqlInbox
    outbox: SqlOutbox
    wake: threading.Event = field(default_factory=threading.Event)  # new inbox rows (in-process)
    senders: list[OutboxSender] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        """True when at least one channel can authenticate webhooks (an app secret is set)."""
        return bool(
            self.settings.messenger_app_secret.get_secret_value()
            or self.settings.whatsapp_app_secret.get_secret_value()
        )

    def adapter(self, channel: Channel) -> ChannelAdapter:
        return self.adapters[channel]

    def notify_inbox(self) -> None:
        self.wake.set()

    def notify_outbox(self) -> None:
        for sender in self.senders:
            sender.wake()


def build_runtime(settings: Settings, engine: Any, clock: Clock | None = None) -> ChannelRuntime:
    """Adapters and Graph endpoints from ``settings``, the inbox and outbox on ``engine``.

    ``clock`` (default: the system's) decides when a previous app secret's rotation window closes.
    """
    now = clock.now if clock is not None else None
    adapters: dict[Channel, ChannelAdapter] = {
        Channel.MESSENGER: MessengerAdapter.from_settings(settings, now=now),
        Channel.WHATSAPP: WhatsAppAdapter.from_settings(settings, now=now),
    }
    at = now() if now is not None else datetime.now(UTC)
    for channel, secrets in (
        (Channel.MESSENGER, messenger_secrets(settings)),
        (Channel.WHATSAPP, whatsapp_secrets(settings)),
    ):
        if secrets.previous:
            level = (
                logging.WARNING
                if secrets.previous_until is None or not secrets.previous_open(at)
                else logging.INFO
            )
            log.log(level, "%s app secret rotation: %s", channel.value, secrets.describe(at))
    serialize_sqlite_writes(engine)
    return ChannelRuntime(
        settings=settings,
        adapters=adapters,
        endpoints=endpoints_from_settings(settings),
        inbox=SqlInbox(engine),
        outbox=SqlOutbox(engine),
    )


def _note_text(body: bytes) -> str:
    """The human-readable text of a stored call, for an agent note."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:2000]
    message = doc.get("message") or {}
    if isinstance(message, dict):
        if isinstance(message.get("text"), str):
            return str(message["text"])
        payload = (message.get("attachment") or {}).get("payload") or {}
        if isinstance(payload, dict) and isinstance(payload.get("text"), str):
            return str(payload["text"])
    if isinstance(doc.get("text"), dict):
        return str(doc["text"].get("body", ""))
    interactive = doc.get("interactive")
    if isinstance(interactive, dict):
        return str((interactive.get("body") or {}).get("text", ""))
    return json.dumps(doc, ensure_ascii=False)[:2000]


def _decision(adapter: ChannelAdapter, row: OutboxRow, now: datetime) -> SendDecision:
    """May ``row`` be sent now? Bot messages: inside the window only (never a tag). Agents' messages:
    ``send_decision(..., human_agent=True)``, and only if the stored (recorded) bytes carry the tag the
    decision needs. Thread-control calls are not messages: always."""
    if is_control_path(row.path):
        return SendDecision(True, WindowReason.NOT_A_MESSAGE)
    human = row.agent is not None
    decision = send_decision(adapter.capabilities, row.last_user_message_at, now, human_agent=human)
    if human and decision.tag is not None and _body_tag(row.body) != decision.tag:
        # Queued inside the window as RESPONSE, due after it: re-tagging would change the recorded bytes.
        return SendDecision(False, WindowReason.WINDOW_CLOSED)
    return decision


def _body_tag(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    tag = doc.get("tag") if isinstance(doc, dict) else None
    return tag if isinstance(tag, str) else None


def _held_note(row: OutboxRow) -> str:
    text = _note_text(row.body)
    return f"[agent {row.agent}] {text}" if row.agent else text


class OutboxSender:
    """Drains the outbox; see the module docstring. Run with ``await sender.run(stop_event)``.

    Pacing (``adapters/channels/pacing.py``, spec §2.8 and G11): before a call leaves, it takes a token
    from its thread's bucket (``(channel, user_id)``, default 1 a second with a burst of 3) and from its
    channel's (the Page / phone number, default 250 and 60 a second); a rate of 0 turns a bucket off.
    A row whose bucket is empty is put back in the queue until its token is due (:meth:`_pace`); a
    channel whose bucket is empty is not claimed from meanwhile, while the other channel and every
    other thread go on. Typing indicators take no thread token and are skipped rather than waited for
    (:meth:`_should_type`). The buckets are this process's own (N senders: up to N times the rate).
    """

    def __init__(
        self,
        *,
        outbox: SqlOutbox,
        adapters: Mapping[Channel, ChannelAdapter],
        endpoints: Mapping[Channel, GraphEndpoint],
        clock: Clock,
        owner: str | None = None,
        typing: bool = True,
        typing_every_s: float = 10.0,
        max_connections: int = 64,
        max_inflight: int = 64,
        lease_s: float = 30.0,
        echo_wait_s: float = 5.0,
        poll_s: float = 0.05,
        timeout_s: float = 10.0,
        circuit_s: float = 60.0,
        backoff_base_s: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
        thread_rate_per_s: float = 1.0,
        thread_burst: int = 3,
        channel_rate_per_s: Mapping[Channel, float] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.adapters = dict(adapters)
        self.endpoints = dict(endpoints)
        self.clock = clock
        self.owner = owner or new_owner_id("sender")
        self.typing = typing
        self.typing_every_s = typing_every_s
        self.max_connections = max_connections
        self._monotonic = monotonic  # pauses, typing and pacing (injectable: tests need not sleep)
        # Pacing (module docstring): None = not paced. Thread keys are (channel, user_id).
        self.thread_bucket: TokenBucket | None = thread_bucket(thread_rate_per_s, thread_burst)
        rates = DEFAULT_CHANNEL_RATE_PER_S if channel_rate_per_s is None else channel_rate_per_s
        self.channel_buckets: dict[Channel, TokenBucket] = {
            channel: bucket for channel, rate in rates.items() if (bucket := channel_bucket(rate)) is not None
        }
        self.deferred = 0  # rows put back in the queue by pacing
        self._typed: dict[str, float] = {}  # user -> monotonic time of the last typing_on
        self.max_inflight = max_inflight
        self.lease_s = max(lease_s, timeout_s * 2 + 1)
        self.echo_wait_s = echo_wait_s
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.circuit_s = circuit_s
        self.backoff_base_s = backoff_base_s
        self.max_attempts = max_attempts
        self.paused: dict[Channel, float] = {}  # channel -> monotonic time it may send again
        self.sent = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        """Thread-safe: new rows were queued, look now instead of at the next poll."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def _paused_channels(self) -> list[Channel]:
        now = self._monotonic()
        for channel, until in list(self.paused.items()):
            if until <= now:
                del self.paused[channel]
        return list(self.paused)

    def _claimable(self, room: int) -> tuple[list[Channel], int]:
        """The channels not to claim from (paused, or their bucket is empty) and how many rows to claim
        at most: ``room``, or fewer when every other channel is paced and has fewer tokens."""
        excluded = self._paused_channels()
        if not self.channel_buckets:
            return excluded, room
        now = self._monotonic()
        budget, unpaced = 0, False
        for channel in self.adapters:
            if channel in excluded:
                continue
            bucket = self.channel_buckets.get(channel)
            if bucket is None:
                unpaced = True
                continue
            tokens = bucket.available(channel, now)
            if tokens:
                budget += tokens
            else:
                excluded.append(channel)
        return excluded, room if unpaced else min(room, budget)

    def _client(self) -> GraphSender:
        return GraphSender(
            self.endpoints,
            adapters=self.adapters,
            timeout_s=self.timeout_s,
            max_connections=self.max_connections,
        )

    async def drain(self, *, max_rounds: int = 100) -> int:
        """Send every row that is due now, round after round, then return how many were attempted.

        For tests and one-shot tools; the long-running loop is :meth:`run`.
        """
        client = self._client()
        attempted = 0
        try:
            for _ in range(max_rounds):
                self.outbox.recover_stale(now=self.clock.now(), echo_wait_s=self.echo_wait_s)
                excluded, limit = self._claimable(self.max_inflight)
                if limit <= 0:
                    break
                rows = self.outbox.claim(
                    self.owner,
                    now=self.clock.now(),
                    lease_s=self.lease_s,
                    limit=limit,
                    exclude_channels=excluded,
                )
                if not rows:
                    break
                results = await asyncio.gather(*(self._send(client, row) for row in rows))
                self.outbox.finish(self.owner, results, self.clock.now())
                attempted += len(rows)
        finally:
            await client.aclose()
        return attempted

    async def run(self, stop: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        client = self._client()
        inflight: set[asyncio.Task[SendResult]] = set()
        results: list[SendResult] = []
        last_recover = -math.inf
        backoff = self.poll_s
        try:
            while not stop.is_set():
                progressed = False
                # The database calls run in a thread: waiting for the write lock (SQLite: behind the
                # webhook's and the inbox worker's commits) must not stop this loop from reading the
                # answers of the calls in flight.
                try:
                    if results:
                        await asyncio.to_thread(self.outbox.finish, self.owner, results, self.clock.now())
                        results = []
                        progressed = True
                    if self._monotonic() - last_recover > min(self.lease_s, 5.0):
                        last_recover = self._monotonic()
                        await asyncio.to_thread(
                            self.outbox.recover_stale, now=self.clock.now(), echo_wait_s=self.echo_wait_s
                        )
                    excluded, room = self._claimable(self.max_inflight - len(inflight))
                    if room > 0:
                        rows = await asyncio.to_thread(
                            self.outbox.claim,
                            self.owner,
                            now=self.clock.now(),
                            lease_s=self.lease_s,
                            limit=room,
                            exclude_channels=excluded,
                        )
                        for row in rows:
                            inflight.add(asyncio.create_task(self._send(client, row)))
                        progressed = progressed or bool(rows)
                    backoff = self.poll_s
                except Exception:
                    # The database is away (a restart, a full disk): keep the outcomes in hand and try
                    # again with backoff; the calls in flight go on.
                    log.exception("outbox sender: database call failed; retrying in %.2f s", backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                if progressed and not inflight:
                    continue
                self._wake.clear()
                waiter = asyncio.create_task(self._wake.wait())
                pending: set[asyncio.Task[Any]] = {*inflight, waiter}
                await asyncio.wait(pending, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                for task in [t for t in inflight if t.done()]:
                    inflight.discard(task)
                    results.append(task.result())
            # Let in-flight calls finish (bounded by the HTTP timeout) so their outcome is recorded.
            if inflight:
                done, _ = await asyncio.wait(inflight, timeout=self.timeout_s + 1)
                results.extend(t.result() for t in done)
            if results:
                self.outbox.finish(self.owner, results, self.clock.now())
        finally:
            await client.aclose()

    async def _send(self, client: GraphSender, row: OutboxRow) -> SendResult:
        try:
            return await self._send_row(client, row)
        except Exception as exc:  # never lose the row: it goes back to the queue
            log.exception("sending outbox row %s failed unexpectedly", row.id)
            return SendResult(
                row.id,
                PENDING,
                {
                    "next_attempt_at": self.clock.now() + timedelta(seconds=self.backoff_base_s),
                    "error_message": str(exc)[:500],
                },
            )

    async def _send_row(self, client: GraphSender, row: OutboxRow) -> SendResult:
        now = self.clock.now()
        adapter = self.adapters[row.channel]
        decision = _decision(adapter, row, now)
        if not decision.allowed:
            return SendResult(
                row.id,
                HELD,
                {
                    "error_action": ErrorAction.WINDOW_CLOSED.value,
                    "error_message": f"not sent: {decision.reason}",
                },
                note=_held_note(row),
            )
        paced = self._pace(row, now)
        if paced is not None:
            return paced
        request = SendRequest(
            row.channel, row.method, row.path, {}, row.key, row.sequence, user_id=row.user_id
        )
        if self._should_type(row):
            for typing in adapter.render(OutboundMessage(row.channel, row.user_id, kind=OutboundKind.TYPING)):
                await client.send(typing)  # best effort: the outcome does not matter
        outcome = await client.send_body(request, row.body)
        return self._result(row, outcome, self.clock.now())

    def _pace(self, row: OutboxRow, now: datetime) -> SendResult | None:
        """Take the row's tokens, or put the row back in the queue until they are due (None: send it).

        A message takes one token of its thread's bucket and one of its channel's; a thread-control
        call only the channel's (it is not a message to the user). Either bucket short: nothing is
        taken, and the row goes back as it was (``pending``, or ``unconfirmed`` still waiting for its
        echo) with ``next_attempt_at`` when both have a token; no attempt is counted, no error
        recorded, the lease is given up (never held in memory or slept on). The thread's later rows
        keep waiting behind it, so the order is kept.
        """
        t = self._monotonic()
        wait = 0.0
        thread = self.thread_bucket
        key: tuple[Channel, str] | None = None
        if thread is not None and not is_control_path(row.path):
            key = (row.channel, row.user_id)
            wait = thread.wait(key, t)
        channel = self.channel_buckets.get(row.channel)
        if channel is not None:
            wait = max(wait, channel.wait(row.channel, t))
        if wait > 0.0:
            self.deferred += 1
            return SendResult(
                row.id,
                UNCONFIRMED if row.was_unconfirmed else PENDING,
                {"next_attempt_at": now + timedelta(microseconds=round(wait * 1e6))},
                deferred=True,
            )
        if key is not None and thread is not None:
            thread.take(key, t)
        if channel is not None:
            channel.take(row.channel, t)
        return None

    def _should_type(self, row: OutboxRow) -> bool:
        """Send a ``typing_on`` before ``row``? Best effort: it takes no thread token (it is not a
        message, and must never delay one), and a channel token only when one is left after the
        reply's own: with the Page's bucket empty it is skipped, not waited for."""
        if (
            not self.typing
            or row.channel is not Channel.MESSENGER
            or row.sequence != 0
            or row.was_unconfirmed
            or row.agent is not None  # a person wrote it: no bot typing indicator
            or is_control_path(row.path)
        ):
            return False
        now = self._monotonic()
        last = self._typed.get(row.user_id)
        if last is not None and now - last < self.typing_every_s:
            return False
        channel = self.channel_buckets.get(row.channel)
        if channel is not None:
            if channel.wait(row.channel, now) > 0.0:
                return False
            channel.take(row.channel, now)
        if len(self._typed) > 100_000:
            self._typed = {u: t for u, t in self._typed.items() if now - t < self.typing_every_s}
        self._typed[row.user_id] = now
        return True

    def _result(self, row: OutboxRow, outcome: SendOutcome, now: datetime) -> SendResult:
        attempts = row.attempts + 1
        error = {
            "attempts": attempts,
            "error_action": outcome.action.value if outcome.action else None,
            "error_code": outcome.code,
            "error_subcode": outcome.subcode,
            "error_message": outcome.message[:500] or None,
            "trace_id": outcome.trace_id,
        }
        if outcome.kind is OutcomeKind.DELIVERED:
            self.sent += 1
            return SendResult(
                row.id,
                SENT,
                {
                    "attempts": attempts,
                    "sent_at": now,
                    "message_id": outcome.message_id,
                    "error_action": None,
                },
            )
        if outcome.kind is OutcomeKind.RETRY:
            if attempts >= self.max_attempts:
                return SendResult(row.id, FAILED, error)
            delay = retry_delay_s(outcome, attempts - 1, base_s=self.backoff_base_s)
            if outcome.action in _PAUSE_CHANNEL:
                self.paused[row.channel] = max(
                    self.paused.get(row.channel, -math.inf), self._monotonic() + delay
                )
            if outcome.action is ErrorAction.AMBIGUOUS:
                # Maybe delivered: wait for the echo carrying the key before sending it again.
                return SendResult(
                    row.id,
                    UNCONFIRMED,
                    {**error, "next_attempt_at": now + timedelta(seconds=max(delay, self.echo_wait_s))},
                )
            return SendResult(row.id, PENDING, {**error, "next_attempt_at": now + timedelta(seconds=delay)})
        # permanent
        if outcome.action is ErrorAction.WINDOW_CLOSED:
            return SendResult(row.id, HELD, error, note=_held_note(row))
        if outcome.action in _CIRCUIT:
            self.paused[row.channel] = self._monotonic() + self.circuit_s
            log.error(
                "%s: %s (code %s); sending paused for %.0f s",
                row.channel,
                outcome.action,
                outcome.code,
                self.circuit_s,
            )
        return SendResult(
            row.id, FAILED, error, unreachable=outcome.action is ErrorAction.RECIPIENT_UNREACHABLE
        )


class InboxLoop:
    """Claims conversations and hands them to the pipeline until stopped."""

    def __init__(
        self,
        pipeline: ChannelPipeline,
        *,
        wake: threading.Event,
        poll_s: float = 0.05,
        owner: str | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.wake = wake
        self.poll_s = poll_s
        self.owner = owner or new_owner_id("inbox")

    def run(self, stop: threading.Event) -> None:
        backoff = self.poll_s
        while not stop.is_set():
            try:
                handled = self.pipeline.run_once(self.owner)
                backoff = self.poll_s
            except Exception:
                log.exception("inbox worker iteration failed; retrying")
                handled = 0
                backoff = min(backoff * 2, 5.0)
            if handled == 0:
                self.wake.wait(backoff)
                self.wake.clear()


class ChannelWorker:
    """The inbox loop and the outbox sender, each in its own thread. ``start()`` / ``stop()``."""

    def __init__(
        self,
        runtime: ChannelRuntime,
        pipeline: ChannelPipeline,
        sender: OutboxSender,
        *,
        poll_s: float = 0.05,
        inbox: bool = True,
        send: bool = True,
    ) -> None:
        if not (inbox or send):
            raise ValueError("a channel worker runs the inbox loop, the sender or both")
        self.runtime = runtime
        self.pipeline = pipeline
        self.sender = sender
        self.inbox_loop = InboxLoop(pipeline, wake=runtime.wake, poll_s=poll_s)
        self.runs_inbox = inbox
        self.runs_sender = send
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if send:
            runtime.senders.append(sender)
            if inbox:
                pipeline.on_queued = sender.wake

    def start(self, *, in_server: bool = False) -> None:
        if sys.getswitchinterval() > 0.001:
            # The threads are CPU-bound. With the default 5 ms GIL switch interval the server's event
            # loop (the webhook acks) would wait up to 5 ms each time it needs the GIL, and a thread
            # holding the database's write lock would be held up by the other thread just as long.
            sys.setswitchinterval(0.001)
        self._stop.clear()
        self._threads = []
        if self.runs_inbox:
            self._threads.append(
                threading.Thread(
                    target=self.inbox_loop.run, args=(self._stop,), name="amanah-inbox", daemon=True
                )
            )
        if self.runs_sender:
            self._threads.append(threading.Thread(target=self._run_sender, name="amanah-outbox", daemon=True))
        for thread in self._threads:
            thread.start()

    def _run_sender(self) -> None:
        try:
            import uvloop

            uvloop.run(self.sender.run(self._stop))
        except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
            asyncio.run(self.sender.run(self._stop))

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self.runtime.wake.set()
        self.sender.wake()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.sender in self.runtime.senders:
            self.runtime.senders.remove(self.sender)

    def wait(self) -> None:
        """Block until stopped (for ``amanah worker``)."""
        while any(t.is_alive() for t in self._threads):
            for thread in self._threads:
                thread.join(0.5)


def make_worker(container: Any, *, inbox: bool = True, send: bool = True) -> ChannelWorker:
    """A :class:`ChannelWorker` for ``container`` (needs ``container.channels`` and ``container.guard``)."""
    runtime: ChannelRuntime = container.channels
    pipeline = make_pipeline(container)
    settings: Settings = container.settings
    sender = OutboxSender(
        outbox=runtime.outbox,
        adapters=runtime.adapters,
        endpoints=runtime.endpoints,
        clock=container.clock,
        typing=settings.messenger_typing,
        lease_s=settings.outbox_lease_s,
        echo_wait_s=settings.outbox_echo_wait_s,
        # A sender in a process of its own is not woken by the inbox loop: it looks more often.
        poll_s=settings.worker_poll_interval_s if inbox else settings.outbox_poll_interval_s,
        timeout_s=settings.graph_timeout_s,
        max_inflight=settings.outbox_max_inflight,
        max_connections=settings.outbox_max_inflight,
        thread_rate_per_s=settings.outbox_thread_rate_per_s,
        thread_burst=settings.outbox_thread_burst,
        channel_rate_per_s={
            Channel.MESSENGER: settings.outbox_messenger_rate_per_s,
            Channel.WHATSAPP: settings.outbox_whatsapp_rate_per_s,
        },
    )
    return ChannelWorker(
        runtime, pipeline, sender, poll_s=settings.worker_poll_interval_s, inbox=inbox, send=send
    )


def make_pipeline(container: Any) -> ChannelPipeline:
    runtime: ChannelRuntime = container.channels
    guard = getattr(container, "guard", None)
    if guard is None:
        from amanah.domain.errors import ConfigurationError

        raise ConfigurationError("no egress guard is configured: replies to third parties cannot be sent")
    settings: Settings = container.settings
    assistant = container.assistant
    conversations: WriteBehindConversations | None = None
    knowledge: PrefetchingKnowledgeBase | None = None
    classifier: PrefetchingClassifier | None = None
    if hasattr(assistant, "with_parts"):
        # The worker's own assistant: its turns are written with the replies, one batch at a time,
        # and the classifier and the knowledge base work on a whole batch of messages at once.
        if isinstance(assistant.conversations, SqlConversationStore):
            conversations = WriteBehindConversations(assistant.conversations)
        if hasattr(assistant.knowledge, "search_many"):
            knowledge = PrefetchingKnowledgeBase(assistant.knowledge)
        if hasattr(assistant.classifier, "classify_many"):
            classifier = PrefetchingClassifier(assistant.classifier)
        assistant = assistant.with_parts(
            conversations=conversations, knowledge=knowledge, classifier=classifier
        )
    return ChannelPipeline(
        knowledge=knowledge,
        adapters=runtime.adapters,
        inbox=runtime.inbox,
        outbox=runtime.outbox,
        assistant=assistant,
        conversations=conversations,
        batch_events=settings.worker_batch_events,
        batch_ms=settings.worker_batch_ms,
        guard=guard,
        linking=getattr(container, "linking", None),
        clock=container.clock,
        lease_s=settings.worker_lease_s,
        our_app_id=settings.messenger_app_id,
        classifier=classifier,
        inbox_app_id=settings.messenger_inbox_app_id,
    )


__all__ = [
    "DELIVERED",
    "ChannelRuntime",
    "ChannelWorker",
    "InboxLoop",
    "OutboxSender",
    "build_runtime",
    "make_pipeline",
    "make_worker",
    "new_owner_id",
]
