"""Handling one conversation's inbox events: the channel use case between the inbox and the outbox.

For each event, in timestamp order, while the worker holds the conversation's lease:

* a user message (text, quick reply, postback, attachment) -> the customer is resolved **only**
  through ``linking.customer_for(channel, user_id)`` (the platform is never an authentication
  factor) -> ``assistant.handle`` -> ``guard.prepare`` (the single exit: the agreement decides what
  the platform may see) -> ``adapter.render`` -> outbox rows holding the exact JSON bytes, each with
  ``guard.record`` for those bytes, the window update, and the inbox row marked done: **one
  transaction**. The outbox key is ``in<inbox id>#<n>`` and unique, so if a crash makes the event run
  again its reply can only be queued once;
* echoes, read and delivery receipts, WhatsApp statuses never produce a reply: our own echo (its
  ``metadata`` is an outbox key) confirms delivery; an echo from another app (the Page Inbox) means a
  human took over, and the bot stays silent in that thread until control is passed back;
* account linking events call ``linking.complete_messenger`` / ``linking.unlink``;
* messages in ``standby`` (another app owns the thread) or in a muted thread are recorded, not
  answered;
* a reply that hands the conversation to a person (``Reply.handoff``) is queued with the escalation
  in the same transaction (``handover.Handover.escalate``: a ticket, the bot muted, and on Messenger a
  ``pass_thread_control`` to the inbox app, ordered after the reply, key ``in<inbox id>#pass``); a
  ``request_thread_control`` from another app passes the thread to it the same way (H4); the
  customer's "Back to assistant" tap while their escalation is open gives the thread back to the bot.

Writes are grouped (:meth:`ChannelPipeline.run_once`): the turns (through
``WriteBehindConversations``), replies, disclosure records, inbox rows and lease releases of up to
``batch_events`` user messages, or of ``batch_ms`` milliseconds of work, go in one transaction, so a
turn and its reply are stored together or not at all. A later event of the same conversation in the
batch reads the state the earlier one left. Events that change what later events see (echoes,
receipts, handover, linking, the customer's "back to assistant") write the batch first and then
themselves on their own. If a batch's transaction fails, nothing of it is stored; its events run
again, each then in its own transaction for a few runs so that a failing event is found and counted.
Core banking actions (a card frozen) are not part of the batch: they are idempotent, so running an
event again is safe.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from amanah.adapters.channels.base import (
    ChannelAdapter,
    EventKind,
    InboundEvent,
    LinkingStatus,
    OutboundKind,
    OutboundMessage,
    RenderError,
)
from amanah.adapters.channels.handover import HANDOFF, REQUESTED, Handover, resume_conversation
from amanah.adapters.channels.messenger import PAGE_INBOX_APP_ID
from amanah.adapters.storage.db import defer_write, defer_writes
from amanah.adapters.storage.sql_conversations import WriteBehindConversations
from amanah.adapters.storage.sql_inbox import ClaimedConversation, InboxItem, SqlInbox
from amanah.adapters.storage.sql_outbox import QueuedCall, SqlOutbox
from amanah.app.commands import InboundMessage
from amanah.app.egress import EgressGuard, PreparedReply
from amanah.app.messages import label
from amanah.app.ports import Clock
from amanah.domain.conversation import Channel
from amanah.domain.errors import ValidationError
from amanah.domain.intents import Classification
from amanah.domain.replies import FreeText, LinkButton, Reply, Say

log = logging.getLogger(__name__)


class Linking(Protocol):
    """The part of the linking service the pipeline uses (``container.linking``)."""

    def customer_for(self, channel: Channel, user_id: str) -> int | None: ...

    def complete_messenger(self, psid: str, authorization_code: str, at: datetime) -> Any: ...

    def unlink(self, channel: Channel, user_id: str, how: Any) -> Any: ...

    def link_url_for(self, msg: InboundMessage) -> str | None: ...


class Handles(Protocol):
    def handle(self, msg: InboundMessage) -> Reply: ...


@dataclass
class _Thread:
    """What the lease holder knows about the conversation while it handles its events."""

    muted: bool
    renewed_at: float  # monotonic time of the last lease renewal
    last_id: int = 0  # the conversation's last claimed event: its transaction gives the lease back
    released: bool = False


@dataclass
class _Batch:
    """Writes of handled events waiting for their common transaction (see ``ChannelPipeline.flush``)."""

    ops: list[Callable[[Any], Any]] = field(default_factory=list)
    conversations: list[tuple[Channel, str]] = field(default_factory=list)  # leased, given back at the end
    events: int = 0
    replies: int = 0
    started: float = field(default_factory=time.monotonic)


class LeaseLost(Exception):
    """The conversation's lease or the inbox row was taken over by another worker: stop here."""


def body_bytes(body: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed for a platform call (compact UTF-8 JSON; recorded as sent)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outbox_key(inbox_id: int) -> str:
    """The idempotency key of the reply to inbox row ``inbox_id`` (calls add ``#<n>``)."""
    return f"in{inbox_id}"


_OUR_KEY_PREFIXES = ("in", "ag")  # replies to inbox rows; bank agents' messages (handover.AgentDesk)


def is_our_key(metadata: str | None) -> bool:
    return (
        bool(metadata) and metadata is not None and metadata.startswith(_OUR_KEY_PREFIXES) and "#" in metadata
    )


class _Prefetching:
    """What a batch computed once per distinct text, for the calling thread only (see subclasses).

    ``_compute(texts)`` returns one result per text; :meth:`prefetch` fills the thread's cache with it
    (texts deduplicated), :meth:`clear` drops it; other attributes are the wrapped object's.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._local = threading.local()

    def _cached(self, text: str) -> Any:
        cache: dict[str, Any] | None = getattr(self._local, "cache", None)
        return cache.get(text) if cache is not None else None

    def _compute(self, texts: list[str]) -> Sequence[Any]:
        raise NotImplementedError

    def prefetch(self, texts: Sequence[str]) -> None:
        unique = list(dict.fromkeys(t for t in texts if t))
        results = self._compute(unique) if unique else []
        self._local.cache = dict(zip(unique, results, strict=True))

    def clear(self) -> None:
        self._local.cache = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class PrefetchingClassifier(_Prefetching):
    """Wraps a classifier that has ``classify_many``: a worker classifies a whole batch at once.

    :meth:`classify` answers from the batch (keyed by text: the wrapped model must ignore
    ``language``) and falls back to the model. Vectorised classification of 100 texts costs about
    what 3 single calls cost.
    """

    def _compute(self, texts: list[str]) -> Sequence[Any]:
        results: Sequence[Any] = self.inner.classify_many(texts)
        return results

    def classify(self, text: str, language: str) -> Classification:
        hit = self._cached(text)
        if hit is not None:
            return cast(Classification, hit)
        result: Classification = self.inner.classify(text, language)
        return result


class PrefetchingKnowledgeBase(_Prefetching):
    """Wraps a knowledge base that has ``search_many``: a worker searches a whole batch at once.

    :meth:`search` answers from the batch's top hits (the search ignores ``language``) and falls back
    to the knowledge base. One vectorised search of 100 texts costs about what 5 single searches cost.
    """

    LIMIT = 3

    def _compute(self, texts: list[str]) -> Sequence[Any]:
        results: Sequence[Any] = self.inner.search_many(texts, self.LIMIT)
        return results

    def search(self, text: str, language: str, limit: int = 3) -> Sequence[Any]:
        hits = self._cached(text) if limit <= self.LIMIT else None
        if hits is not None:
            return cast(Sequence[Any], hits[:limit])
        result: Sequence[Any] = self.inner.search(text, language, limit)
        return result


@dataclass
class PipelineStats:
    events: int = 0
    replies: int = 0
    failures: int = 0


class ChannelPipeline:
    """Handles claimed conversations; see the module docstring."""

    def __init__(
        self,
        *,
        adapters: Mapping[Channel, ChannelAdapter],
        inbox: SqlInbox,
        outbox: SqlOutbox,
        assistant: Handles,
        guard: EgressGuard,
        linking: Linking | None,
        clock: Clock,
        lease_s: float = 30.0,
        our_app_id: str = "",
        max_attempts: int = 5,
        classifier: Any = None,
        on_queued: Callable[[], None] | None = None,
        inbox_app_id: str = PAGE_INBOX_APP_ID,
        handover: Handover | None = None,
        conversations: WriteBehindConversations | None = None,
        knowledge: PrefetchingKnowledgeBase | None = None,
        batch_events: int = 64,
        batch_ms: float = 20.0,
    ) -> None:
        self.adapters = dict(adapters)
        self.inbox = inbox
        self.outbox = outbox
        self.assistant = assistant
        self.guard = guard
        self.linking = linking
        self.clock = clock
        self.lease_s = lease_s
        self.our_app_id = our_app_id
        self.max_attempts = max_attempts
        self.classifier = classifier if isinstance(classifier, PrefetchingClassifier) else None
        self.on_queued = on_queued
        self.stats = PipelineStats()
        self.handover = handover or Handover(
            outbox=outbox, guard=guard, inbox_app_id=inbox_app_id, our_app_id=our_app_id
        )
        self.conversations = conversations
        self.knowledge = knowledge
        self.batch_events = batch_events
        self.batch_ms = batch_ms
        self._batch: _Batch | None = None
        self._solo_runs = 0  # after a failed batch: this many runs write each event on its own
        self._unwritten = 0  # events of this run whose batch failed

    # --- batches ------------------------------------------------------------------------------------

    def run_once(self, owner: str, *, conversations: int = 50) -> int:
        """Claim and handle one batch of conversations; returns how many events were handled.

        The events' writes (turns, replies, disclosure records, inbox rows, leases) are grouped: one
        transaction per ``batch_events`` events or ``batch_ms`` milliseconds, whichever comes first.
        """
        claimed = self.inbox.claim(
            owner, now=self.clock.now(), lease_s=self.lease_s, conversations=conversations
        )
        if not claimed:
            return 0
        texts = [
            item.event.text
            for conv in claimed
            for item in conv.items
            if item.event.needs_reply and item.event.text and not item.event.payload
        ]
        if self.classifier is not None:
            self.classifier.prefetch(texts)
        if self.knowledge is not None:
            self.knowledge.prefetch(texts)
        batching = self._solo_runs == 0
        self._solo_runs = max(0, self._solo_runs - 1)
        self._unwritten = 0
        handled = 0
        try:
            for conv in claimed:
                if batching and self._batch is None:
                    self._open_batch(_Batch())
                handled += self.process(conv, owner)
                if self._batch_full():
                    self.flush(owner)
        finally:
            try:
                self.flush(owner)
            finally:
                if self.classifier is not None:
                    self.classifier.clear()
                if self.knowledge is not None:
                    self.knowledge.clear()
        return max(0, handled - self._unwritten)

    def flush(self, owner: str, *, raise_errors: bool = False) -> int:
        """Write the open batch in one transaction; returns how many of its events were not written.

        If the transaction fails (a lease lost to another worker, a database error), nothing of the
        batch is stored: its conversations are given back and their events run again later, the next
        few runs writing each event on its own so that a failing event is found and counted.
        """
        batch, self._batch = self._batch, None
        defer_writes(None)
        if batch is None or not batch.ops:
            return 0
        try:
            with self.outbox.writer.begin() as conn:
                # The disclosure ledger's lock first, before any row lock: batches of several workers
                # then queue on it instead of deadlocking (PostgreSQL).
                self.guard.lock(conn)
                for op in batch.ops:
                    op(conn)
        except Exception as exc:
            self.stats.failures += 1
            if isinstance(exc, LeaseLost):
                log.info("lease lost in a batch of %d events; they run again", batch.events)
            else:
                log.exception("writing a batch of %d events failed; they run again", batch.events)
            if raise_errors:
                raise  # one event's own batch: the caller counts the failure against that event
            self._solo_runs = 3
            for channel, user_id in batch.conversations:
                try:
                    self.inbox.release(channel, user_id, owner)
                except Exception:  # the lease expires on its own
                    log.exception("could not give a conversation back after a failed batch")
            self.stats.events -= batch.events
            self._unwritten += batch.events
            return batch.events
        finally:
            if self.conversations is not None:
                self.conversations.settle()  # committed or rolled back: read from the database again
        self.stats.replies += batch.replies
        if batch.replies and self.on_queued is not None:
            self.on_queued()
        return 0

    def _mark(self, conv: ClaimedConversation) -> tuple[_Batch, int, int, Any] | None:
        """Where the open batch stands before an event of ``conv`` (to take its writes back out)."""
        batch = self._batch
        if batch is None:
            return None
        held = self.conversations.held(conv.channel, conv.user_id) if self.conversations is not None else None
        return batch, len(batch.ops), batch.replies, held

    def _rewind(self, conv: ClaimedConversation, mark: tuple[_Batch, int, int, Any] | None) -> None:
        """Drop what a failed event added to the batch: its turn, secure links, reply, state."""
        if mark is None or mark[0] is not self._batch:
            return
        batch, ops, replies, held = mark
        del batch.ops[ops:]
        batch.replies = replies
        if self.conversations is not None:
            self.conversations.put_back(conv.channel, conv.user_id, held)

    def _open_batch(self, batch: _Batch) -> None:
        self._batch = batch
        defer_writes(batch.ops)  # rows adapters write on their own (secure links) join the batch

    def _batch_full(self) -> bool:
        batch = self._batch
        return batch is not None and (
            batch.events >= self.batch_events or (time.monotonic() - batch.started) * 1000 >= self.batch_ms
        )

    def _write(self, op: Callable[[Any], Any]) -> None:
        """Run ``op(conn)`` in the open batch, or now in a write transaction of its own."""
        if not defer_write(op):
            with self.outbox.writer.begin() as conn:
                op(conn)

    def process(self, conv: ClaimedConversation, owner: str) -> int:
        """Handle a leased conversation's events in order; stops at the first failure."""
        handled = 0
        batch = self._batch
        # In a batch the lease is given back by the batch's last write for this conversation.
        last_id = conv.items[-1].id if conv.items and batch is None else 0
        thread = _Thread(conv.muted, time.monotonic(), last_id=last_id)
        if batch is not None:
            batch.conversations.append((conv.channel, conv.user_id))
        try:
            for item in conv.items:
                mark = self._mark(conv)
                try:
                    self.handle(item, owner, thread)
                except LeaseLost:
                    thread.released = False  # the transaction that would have released it rolled back
                    log.info("lease lost on a %s conversation; another worker continues", conv.channel)
                    return handled
                except Exception as exc:  # one bad event must not stop the worker
                    self._rewind(conv, mark)  # nothing of the failed event stays in the batch
                    thread.released = False
                    self.stats.failures += 1
                    log.exception("inbox event %s failed", item.id)
                    if item.attempts + 1 >= self.max_attempts and self._apologise(item, owner, thread):
                        handled += 1
                        continue
                    gave_up = self.inbox.record_failure(
                        item.id,
                        f"{type(exc).__name__}: {exc}",
                        self.clock.now(),
                        max_attempts=self.max_attempts,
                    )
                    if not gave_up:
                        return handled  # keep the order: retry this event before the later ones
                handled += 1
                self.stats.events += 1
                if self._batch is not None:
                    self._batch.events += 1
                    if self._batch_full() and item is not conv.items[-1]:
                        # A long conversation does not hold its replies back: write what is done so
                        # far, then go on in a new batch (or stop here if that write failed: the
                        # events after it must not be answered before it is redone).
                        if self.flush(owner):
                            return handled
                        self._open_batch(_Batch(conversations=[(conv.channel, conv.user_id)]))
        finally:
            if not thread.released:
                channel, user_id = conv.channel, conv.user_id
                self._write(lambda conn: self.inbox.release(channel, user_id, owner, conn))
        return handled

    def _apologise(self, item: InboxItem, owner: str, thread: _Thread) -> bool:
        """Last attempt at an event that keeps failing: answer a polite error instead of silence."""
        if not item.event.needs_reply or thread.muted:
            return False
        try:
            at = _event_time(item.event, self.clock.now())
            self._queue_reply(
                item, owner, thread, Reply((Say("error"),)), None, "error_reply", window=True, at=at
            )
        except Exception:
            log.exception("could not even apologise for inbox event %s", item.id)
            thread.released = False
            return False
        return True

    # --- one event ----------------------------------------------------------------------------------

    def handle(self, item: InboxItem, owner: str, thread: _Thread | None = None) -> str:
        """Handle one event; returns the outcome stored on the inbox row."""
        event = item.event
        if thread is None:
            thread = _Thread(self._muted(event.channel, event.user_id), 0.0)
        if event.is_user_message:
            if event.payload == "resume" and self._batch is not None and self.flush(owner):
                raise LeaseLost  # "back to assistant" changes the thread: the batch goes first
            if self._batch is not None:
                return self._user_message(item, owner, thread)
            # Never a turn without its reply: a message handled outside a batch gets one of its own.
            return self._in_a_batch_of_its_own(owner, lambda: self._user_message(item, owner, thread))
        if self._batch is not None and self.flush(owner):
            # Receipts, echoes, handover and linking events change what later events see (a muted
            # thread, a binding): the batch so far is written first, then this event and the rest of
            # its conversation on their own. If the batch failed, this event waits for its turn.
            raise LeaseLost
        return self._handle_alone(item, owner, thread)

    def _in_a_batch_of_its_own(self, owner: str, work: Callable[[], str]) -> str:
        """Run ``work`` (one user message) in a batch of its own and write it; errors propagate."""
        self._open_batch(_Batch())
        try:
            outcome = work()
        except BaseException:
            self._drop_batch()
            raise
        self.flush(owner, raise_errors=True)
        return outcome

    def _drop_batch(self) -> None:
        """Forget the open batch unwritten (its event failed before anything was stored)."""
        self._batch = None
        defer_writes(None)
        if self.conversations is not None:
            self.conversations.settle()

    def _handle_alone(self, item: InboxItem, owner: str, thread: _Thread) -> str:
        event = item.event
        if event.kind is EventKind.HANDOVER and event.subtype == "request_thread_control":
            return self._control_requested(item, owner, thread)
        if event.kind is EventKind.ACCOUNT_LINKING:
            outcome, reply = self._account_linking(event)
            if reply is not None and not thread.muted:
                customer_id = (
                    self.linking.customer_for(event.channel, event.user_id) if self.linking else None
                )
                # The person just finished a login flow in the thread: a user action, inside the window.
                at = _event_time(event, self.clock.now())
                return self._queue_reply(item, owner, thread, reply, customer_id, outcome, window=True, at=at)
            now = self.clock.now()
            with self.outbox.writer.begin() as conn:
                self._complete(conn, item, owner, outcome, now, thread)
            return outcome
        now = self.clock.now()
        with self.outbox.writer.begin() as conn:
            outcome = self._state_event(conn, event, now)
            self._complete(conn, item, owner, outcome, now, thread)
        if outcome == "human_takeover":
            thread.muted = True
        elif outcome == "control_returned":
            thread.muted = False
            resume_conversation(getattr(self.assistant, "conversations", None), event.channel, event.user_id)
        return outcome

    def _complete(
        self, conn: Any, item: InboxItem, owner: str, outcome: str, now: datetime, thread: _Thread
    ) -> None:
        """Mark the row done; renew the lease when a third of it has passed (False: someone took over)."""
        event = item.event
        if not self.inbox.complete(conn, item.id, outcome, now):
            raise LeaseLost
        if item.id == thread.last_id:
            self.inbox.release(event.channel, event.user_id, owner, conn)
            thread.released = True  # takes effect with this transaction's commit
        elif time.monotonic() - thread.renewed_at > self.lease_s / 3:
            until = now + timedelta(seconds=self.lease_s)
            if not self.inbox.renew(conn, event.channel, event.user_id, owner, until):
                raise LeaseLost
            thread.renewed_at = time.monotonic()

    def _state_event(self, conn: Any, event: InboundEvent, now: datetime) -> str:
        ch, user = event.channel, event.user_id
        kind = event.kind
        if kind is EventKind.ECHO:
            if is_our_key(event.metadata):
                assert event.metadata is not None
                self.outbox.confirm_key(conn, event.metadata, event.message_id, now)
                return "echo"
            if event.app_id and (
                event.app_id == PAGE_INBOX_APP_ID or (self.our_app_id and event.app_id != self.our_app_id)
            ):
                self.handover.taken(conn, ch, user, event.app_id, now)
                return "human_takeover"
            return "echo"
        if kind is EventKind.DELIVERY:
            self.outbox.confirm_message_ids(conn, ch, event.related_ids, now)
            if event.watermark_ms:
                self.outbox.confirm_until(conn, ch, user, _ms_to_dt(event.watermark_ms), now)
            return "delivery"
        if kind is EventKind.READ:
            if event.watermark_ms:
                self.outbox.set_read_watermark(conn, ch, user, event.watermark_ms)
                self.outbox.confirm_until(conn, ch, user, _ms_to_dt(event.watermark_ms), now)
            return "read"
        if kind is EventKind.STATUS:
            status = event.subtype or ""
            if status in ("delivered", "read"):
                self.outbox.confirm_message_ids(conn, ch, event.related_ids, now)
            elif status == "failed":
                for wamid in event.related_ids:
                    self.outbox.fail_message_id(conn, ch, wamid, event.error_code, now)
            return f"status_{status}"[:32]
        if kind is EventKind.HANDOVER:
            if event.subtype == "pass_thread_control" and self.our_app_id and event.app_id == self.our_app_id:
                self.handover.returned(conn, ch, user, now)
                return "control_returned"
            if (
                event.subtype in ("pass_thread_control", "take_thread_control")
                and event.app_id != self.our_app_id
            ):
                self.handover.taken(conn, ch, user, event.app_id, now)
                return "human_takeover"
            return "handover"
        if kind is EventKind.POLICY:
            log.warning("platform policy enforcement on %s: %s", ch, event.subtype)
            return "policy_alert"
        return "ignored"

    def _account_linking(self, event: InboundEvent) -> tuple[str, Reply | None]:
        """Complete or withdraw a Messenger account link; the reply to send, if any (E1, E2, E4)."""
        if self.linking is None:
            log.warning("account_linking event but no linking service is configured")
            return "linking_unavailable", None
        lang = self._language(event)
        if event.linking_status is LinkingStatus.LINKED:
            bound = None
            if event.authorization_code:
                bound = self.linking.complete_messenger(
                    event.user_id, event.authorization_code, event.occurred_at
                )
            if bound:
                return "linked", Reply((FreeText(_LINKED[lang], "linking"),), language=lang)
            buttons: tuple[LinkButton, ...] = ()
            url = self.linking.link_url_for(InboundMessage(event.channel, event.user_id, ""))
            if url:
                buttons = (LinkButton(label("btn.link", lang), url),)
            return "link_rejected", Reply(
                (FreeText(_LINK_FAILED[lang], "linking"),), buttons=buttons, language=lang
            )
        from amanah.domain.linking import WithdrawalMethod

        self.linking.unlink(event.channel, event.user_id, WithdrawalMethod.PLATFORM)
        return "unlinked", None

    def _language(self, event: InboundEvent) -> str:
        store = getattr(self.assistant, "conversations", None)
        if store is None:
            return "en"
        try:
            language = str(store.load(event.channel, event.user_id).language)
        except Exception:  # the language is a nicety: never fail the event for it
            return "en"
        return language if language in _LINKED else "en"

    def _user_message(self, item: InboxItem, owner: str, thread: _Thread) -> str:
        event = item.event
        ch, user = event.channel, event.user_id
        at = _event_time(event, self.clock.now())
        if (event.standby or thread.muted) and not self._customer_resumes(item, thread):
            now = self.clock.now()
            outcome = "standby" if event.standby else "muted"

            def record(conn: Any) -> None:
                self.outbox.user_message(conn, ch, user, at, now)
                self._complete(conn, item, owner, outcome, now, thread)

            self._write(record)
            return outcome
        # Resolved for every message: an "unlink" just before must end the disclosure at once.
        customer_id = self.linking.customer_for(ch, user) if self.linking is not None else None
        msg = InboundMessage(ch, user, event.text or "", customer_id=customer_id, payload=event.payload)
        try:
            reply = self.assistant.handle(msg)
        except ValidationError:
            reply = Reply((Say("error"),))
        if reply.handoff:
            return self._queue_handoff(item, owner, thread, reply, customer_id, at)
        return self._queue_reply(item, owner, thread, reply, customer_id, "replied", window=True, at=at)

    def _queue_reply(
        self,
        item: InboxItem,
        owner: str,
        thread: _Thread,
        reply: Reply,
        customer_id: int | None,
        outcome: str,
        *,
        window: bool,
        at: datetime | None = None,
        after: Callable[[Any, datetime], None] | None = None,
    ) -> str:
        """The single exit: guard.prepare -> render -> outbox rows + guard.record + inbox done, atomically.

        ``after(conn, now)`` runs last in the same transaction (the escalation after a handoff reply).
        """
        event = item.event
        prepared = self.guard.prepare(event.channel, customer_id, reply)
        calls = self._calls(item, prepared)
        now = self.clock.now()

        def write(conn: Any) -> None:
            self._complete(conn, item, owner, outcome, now, thread)
            if window and at is not None:
                self.outbox.user_message(conn, event.channel, event.user_id, at, now)
            inserted = self.outbox.enqueue(conn, calls, now)
            for call in calls:
                if call.key in inserted:
                    self.guard.record(conn, prepared=prepared, user_id=event.user_id, body=call.body, at=now)
            if after is not None:
                after(conn, now)

        if self._batch is not None and defer_write(write):
            self._batch.replies += 1  # counted and announced to the sender once the batch is written
            return outcome
        with self.outbox.writer.begin() as conn:
            write(conn)
        self.stats.replies += 1
        if self.on_queued is not None:
            self.on_queued()
        return outcome

    # --- handover (H1, H4) and the customer's way back ----------------------------------------------

    def _queue_handoff(
        self,
        item: InboxItem,
        owner: str,
        thread: _Thread,
        reply: Reply,
        customer_id: int | None,
        at: datetime,
    ) -> str:
        """The handoff reply, then the escalation (ticket, mute, pass_thread_control), atomically."""
        event = item.event

        def escalate(conn: Any, now: datetime) -> None:
            self.handover.escalate(
                conn,
                channel=event.channel,
                user_id=event.user_id,
                customer_id=customer_id,
                key=f"{outbox_key(item.id)}#pass",
                now=now,
                inbox_id=item.id,
            )

        outcome = self._queue_reply(
            item, owner, thread, reply, customer_id, "handoff", window=True, at=at, after=escalate
        )
        thread.muted = True
        return outcome

    def _control_requested(self, item: InboxItem, owner: str, thread: _Thread) -> str:
        """H4: another app (the Page Inbox) asked for the thread: pass it control at once, go silent."""
        event = item.event
        requester = event.app_id
        honour = (
            event.channel is Channel.MESSENGER
            and not event.standby
            and bool(requester)
            and requester != self.our_app_id
        )
        customer_id = None
        if honour and self.linking is not None:
            customer_id = self.linking.customer_for(event.channel, event.user_id)
        now = self.clock.now()
        with self.outbox.writer.begin() as conn:
            outcome = "handover"
            if honour:
                info = self.handover.store.thread(conn, event.channel, event.user_id)
                if info is None or info.control_app_id is None:  # we own the thread: we can pass it
                    self.handover.escalate(
                        conn,
                        channel=event.channel,
                        user_id=event.user_id,
                        customer_id=customer_id,
                        key=f"{outbox_key(item.id)}#pass",
                        now=now,
                        reason=REQUESTED,
                        target_app_id=requester,
                        inbox_id=item.id,
                    )
                    outcome = "control_requested"
            self._complete(conn, item, owner, outcome, now, thread)
        if outcome == "control_requested":
            thread.muted = True
            if self.on_queued is not None:
                self.on_queued()
        return outcome

    def _customer_resumes(self, item: InboxItem, thread: _Thread) -> bool:
        """The customer tapped "Back to assistant" while the bot's own escalation is open: the thread
        goes back to the bot (take_thread_control first on Messenger), and the tap is answered."""
        event = item.event
        if event.payload != "resume":
            return False
        customer_id = self.linking.customer_for(event.channel, event.user_id) if self.linking else None
        now = self.clock.now()
        with self.outbox.writer.begin() as conn:
            ticket = self.handover.store.open_ticket(conn, event.channel, event.user_id)
            if ticket is None or ticket.reason != HANDOFF:
                return False
            self.handover.release(
                conn,
                channel=event.channel,
                user_id=event.user_id,
                customer_id=customer_id,
                key=f"{outbox_key(item.id)}#take",
                now=now,
                inbox_id=item.id,
            )
        thread.muted = False
        return True

    def _muted(self, channel: Channel, user_id: str) -> bool:
        with self.outbox.engine.connect() as conn:
            return self.outbox.is_muted(conn, channel, user_id)

    def _calls(self, item: InboxItem, prepared: PreparedReply) -> list[QueuedCall]:
        event = item.event
        adapter = self.adapters[event.channel]
        rendered = prepared.rendered
        kind = OutboundKind.REPLY
        if (
            event.channel is Channel.MESSENGER
            and len(rendered.buttons) == 1
            and rendered.buttons[0].url.startswith("https://")  # Messenger refuses account_link over http
            and self.linking is not None
            and _is_link_url(self.linking, rendered.buttons[0].url)
        ):
            kind = OutboundKind.ACCOUNT_LINK  # Messenger starts linking only from an account_link button
        outbound = OutboundMessage(
            channel=event.channel,
            user_id=event.user_id,
            texts=(rendered.text,),
            quick_replies=rendered.quick_replies,
            buttons=rendered.buttons,
            kind=kind,
            key=outbox_key(item.id),
            language=rendered.language,
            reply_to=event.message_id,
        )
        try:
            requests = adapter.render(outbound)
        except RenderError:
            log.warning(
                "reply to inbox row %s could not be rendered with its buttons; sending text only", item.id
            )
            requests = adapter.render(
                OutboundMessage(
                    event.channel,
                    event.user_id,
                    texts=(rendered.text,),
                    key=outbound.key,
                    language=rendered.language,
                )
            )
        return [
            QueuedCall(
                key=req.key,
                channel=req.channel,
                user_id=req.user_id or event.user_id,
                sequence=req.sequence,
                method=req.method,
                path=req.path,
                body=body_bytes(req.body),
                inbox_id=item.id,
            )
            for req in requests
            if not req.best_effort
        ]


_LINKED = {
    "en": 'Your bank account is now linked to this chat. You can unlink it at any time by typing "unlink".',
    "ar": "تم ربط حسابك البنكي بهذه المحادثة. يمكنك إلغاء الربط في أي وقت بكتابة «إلغاء الربط».",
}
_LINK_FAILED = {
    "en": "Linking did not work: the link has expired or was already used. Please try again with a new link.",
    "ar": "لم ينجح الربط: انتهت صلاحية الرابط أو استُخدم من قبل. حاول مرة أخرى برابط جديد.",
}


def _is_link_url(linking: Any, url: str) -> bool:
    check = getattr(linking, "is_link_url", None)
    return bool(check(url)) if callable(check) else False


def _ms_to_dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _event_time(event: InboundEvent, now: datetime) -> datetime:
    """When the user wrote: the platform timestamp (never later than now; now when missing)."""
    if event.timestamp_ms <= 0:
        return now
    return min(event.occurred_at, now)
