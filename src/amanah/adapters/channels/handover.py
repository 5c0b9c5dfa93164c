"""Handing conversations to people, and the bank agents' own replies (spec §2.7, §2.10; §10 G3, H1, H4).

:class:`Handover` writes in the caller's transaction (the channel pipeline's or the agent desk's):

* ``escalate``: the assistant handed the conversation to a person (H1), or another app asked for the
  thread (H4). The thread gets an open ticket (an agent note whose id is random and opaque), the bot
  goes silent in it, and on Messenger a ``POST /me/pass_thread_control`` to the target app (the Page
  Inbox, ``AMANAH_MESSENGER_INBOX_APP_ID``, or the app that asked) is queued in the durable outbox.
  Its ``metadata`` is ``handoff:ticket=<id>``: nothing else travels through Meta. WhatsApp has no
  handover protocol: the ticket and the silence are all there is, until an agent releases the thread.
* ``release`` / ``returned``: the thread goes back to the bot (``take_thread_control`` first on
  Messenger when another app holds it), and its tickets are resolved.

Thread-control calls are platform calls like any other: they go through the egress guard (they
carry only public data: an app id, a ticket id) and get a disclosure record for their exact bytes,
in the transaction that queues them.

:class:`AgentDesk` is the human-agent send path (G3) behind ``POST /admin/agent/messages`` and
``amanah agent send``: a logged-in bank agent's free text is screened by the guard's detectors (a
message that would be redacted is refused, not sent in part), rendered for the platform, queued in
the outbox marked with the agent's id, and recorded in the ledger. The sender then decides with
``send_decision(..., human_agent=True)``: inside 24 h ``RESPONSE``; on Messenger up to 7 days
``MESSAGE_TAG`` + ``HUMAN_AGENT``; later (or on WhatsApp after 24 h) the message is held, with an
agent note, until the customer writes again. Bot messages never carry the tag.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select

from amanah.adapters.channels import messenger
from amanah.adapters.channels.base import ChannelAdapter, OutboundMessage, SendRequest
from amanah.adapters.channels.policy import send_decision
from amanah.adapters.storage.schema_channels import channel_outbox
from amanah.adapters.storage.sql_handover import SqlHandover, ThreadControl, Ticket
from amanah.adapters.storage.sql_outbox import QueuedCall, SqlOutbox
from amanah.app.egress import EgressGuard
from amanah.app.ports import Clock, ConversationStore
from amanah.app.render import render
from amanah.domain.categories import DataCategory
from amanah.domain.conversation import Channel, ConversationStatus
from amanah.domain.errors import NotFound, ValidationError
from amanah.domain.replies import FreeText, Reply

log = logging.getLogger(__name__)

HANDOFF = "handoff"  # the assistant handed the conversation to a person (H1)
REQUESTED = "requested"  # another app (the Page Inbox) asked for the thread (H4)
AGENT = "agent"  # a bank agent wrote in a conversation nobody had handed over

TICKET_TEXT = {
    HANDOFF: "The customer asked for a person.",
    REQUESTED: "Another app (e.g. the Page Inbox) asked for this conversation; it was passed to it.",
    AGENT: "A bank agent replied in this conversation.",
}

AGENT_CHANNELS = (Channel.MESSENGER, Channel.WHATSAPP)
MAX_AGENT_TEXT = 4096
AGENT_ID = re.compile(r"[A-Za-z0-9._@-]{1,100}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def handoff_metadata(ticket: str) -> str:
    """The handover ``metadata``: an opaque ticket id and nothing else (it travels through Meta)."""
    return f"handoff:ticket={ticket}"


def _json_bytes(body: Mapping[str, Any]) -> bytes:
    # The same serialisation as pipeline.body_bytes: what is recorded is what is POSTed.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Handover:
    """Thread control and tickets, in the caller's transaction. See the module docstring."""

    def __init__(
        self,
        *,
        outbox: SqlOutbox,
        guard: EgressGuard,
        store: SqlHandover | None = None,
        inbox_app_id: str = messenger.PAGE_INBOX_APP_ID,
        our_app_id: str = "",
    ) -> None:
        self.outbox = outbox
        self.guard = guard
        self.store = store or SqlHandover(outbox.engine)
        self.inbox_app_id = inbox_app_id
        self.our_app_id = our_app_id

    def escalate(
        self,
        conn: Connection,
        *,
        channel: Channel,
        user_id: str,
        customer_id: int | None,
        key: str,
        now: datetime,
        reason: str = HANDOFF,
        target_app_id: str | None = None,
        inbox_id: int | None = None,
    ) -> Ticket:
        """Hand the thread to people (see the module docstring); returns its open ticket.

        On Messenger, control is passed to ``target_app_id`` (default: the inbox app) only while we
        own the thread; with no target app configured only the ticket and the silence remain.
        """
        ticket = self.store.ensure_ticket(
            conn, channel, user_id, reason=reason, text=TICKET_TEXT.get(reason, reason), now=now
        )
        info = self.store.thread(conn, channel, user_id)
        control = info.control_app_id if info is not None else None
        target = self.inbox_app_id if target_app_id is None else target_app_id
        if channel is Channel.MESSENGER and target and control is None:
            request = messenger.pass_thread_control(user_id, target, handoff_metadata(ticket.ticket), key)
            self.queue(conn, request, customer_id, now, inbox_id=inbox_id)
            control = target
        self.store.set_thread(conn, channel, user_id, muted=True, control_app_id=control, now=now)
        if ticket.created:
            log.info("%s conversation handed to people (%s), ticket %s", channel, reason, ticket.ticket)
        return ticket

    def take_back(
        self,
        conn: Connection,
        *,
        channel: Channel,
        user_id: str,
        customer_id: int | None,
        key: str,
        metadata: str,
        muted: bool,
        now: datetime,
        inbox_id: int | None = None,
    ) -> bool:
        """Own the thread again; True when a ``take_thread_control`` call was queued for it."""
        info = self.store.thread(conn, channel, user_id)
        queued = False
        if (
            channel is Channel.MESSENGER
            and info is not None
            and info.control_app_id
            and info.control_app_id != self.our_app_id
        ):
            self.queue(
                conn,
                messenger.take_thread_control(user_id, metadata, key),
                customer_id,
                now,
                inbox_id=inbox_id,
            )
            queued = True
        self.store.set_thread(conn, channel, user_id, muted=muted, control_app_id=None, now=now)
        return queued

    def release(
        self,
        conn: Connection,
        *,
        channel: Channel,
        user_id: str,
        customer_id: int | None,
        key: str,
        now: datetime,
        inbox_id: int | None = None,
    ) -> Release:
        """Give the thread back to the bot: take control if needed, unmute, resolve its tickets."""
        open_ticket = self.store.open_ticket(conn, channel, user_id)
        metadata = f"release:ticket={open_ticket.ticket}" if open_ticket is not None else "release"
        took = self.take_back(
            conn,
            channel=channel,
            user_id=user_id,
            customer_id=customer_id,
            key=key,
            metadata=metadata,
            muted=False,
            now=now,
            inbox_id=inbox_id,
        )
        closed = self.store.close_tickets(conn, channel, user_id, now)
        return Release(channel, user_id, took_control=took, tickets=tuple(closed))

    def returned(self, conn: Connection, channel: Channel, user_id: str, now: datetime) -> None:
        """Another app passed the thread back to us (H3): the bot answers again, tickets resolved."""
        self.store.set_thread(conn, channel, user_id, muted=False, control_app_id=None, now=now)
        self.store.close_tickets(conn, channel, user_id, now)

    def taken(
        self, conn: Connection, channel: Channel, user_id: str, app_id: str | None, now: datetime
    ) -> None:
        """Another app took the thread (D5 inbox echo, take/pass_thread_control): the bot is silent."""
        self.store.set_thread(conn, channel, user_id, muted=True, control_app_id=app_id or None, now=now)

    def queue(
        self,
        conn: Connection,
        request: SendRequest,
        customer_id: int | None,
        now: datetime,
        *,
        inbox_id: int | None = None,
    ) -> bool:
        """Queue one thread-control call with its disclosure record; False if its key was queued before."""
        call = QueuedCall(
            key=request.key,
            channel=request.channel,
            user_id=request.user_id,
            sequence=request.sequence,
            method=request.method,
            path=request.path,
            body=_json_bytes(request.body),
            inbox_id=inbox_id,
        )
        if call.key not in self.outbox.enqueue(conn, [call], now):
            return False
        # No customer data in the call (an app id and an opaque ticket): an empty reply's treatments.
        prepared = self.guard.prepare(request.channel, customer_id, Reply(()))
        self.guard.record(conn, prepared=prepared, user_id=request.user_id, body=call.body, at=now)
        return True


@dataclass(frozen=True, slots=True)
class Release:
    channel: Channel
    user_id: str
    took_control: bool  # a take_thread_control call was queued (Messenger, another app held the thread)
    tickets: tuple[str, ...]  # the tickets resolved

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel.value,
            "user_id": self.user_id,
            "took_control": self.took_control,
            "tickets": list(self.tickets),
        }


def resume_conversation(store: ConversationStore | None, channel: Channel, user_id: str) -> None:
    """A conversation given back to the bot is no longer waiting for an agent."""
    if store is None:
        return
    state = store.load(channel, user_id)
    if state.status is ConversationStatus.WAITING_AGENT:
        state.status = ConversationStatus.ACTIVE
        store.save(state)


# --- the agents' desk -------------------------------------------------------------------------------


class AgentInputError(ValidationError):
    """Raised when an agent's request cannot be accepted (channel, user, agent id or text)."""


class MessageBlocked(ValidationError):
    """Raised when the egress guard would redact part of an agent's message: it is not sent at all."""

    def __init__(self, categories: frozenset[DataCategory]) -> None:
        self.categories = tuple(sorted(c.value for c in categories))
        super().__init__(
            "not sent: the message contains data this platform may not receive "
            f"({', '.join(self.categories)}); remove it, or send it through the bank's own channels"
        )


class NoConversation(NotFound):
    """Raised when the user never wrote to the bank on that channel: there is nothing to reply to."""


class CustomerLookup(Protocol):
    def customer_for(self, channel: Channel, user_id: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class AgentReceipt:
    """What happened to an agent's message (it is sent by the outbox sender, asynchronously)."""

    key: str
    channel: Channel
    user_id: str
    agent: str
    status: str  # queued | held (outside the window: waits for the customer) | duplicate
    reason: str  # the window decision: inside_window, human_agent_tag, window_closed, ...
    messaging_type: str | None
    tag: str | None
    ticket: str | None
    took_control: bool = False
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "channel": self.channel.value,
            "user_id": self.user_id,
            "agent": self.agent,
            "status": self.status,
            "reason": self.reason,
            "messaging_type": self.messaging_type,
            "tag": self.tag,
            "ticket": self.ticket,
            "took_control": self.took_control,
            "calls": self.calls,
        }


def agent_channel(name: str | Channel) -> Channel:
    """``messenger`` or ``whatsapp`` (the channels with human agents), else :class:`AgentInputError`."""
    try:
        channel = Channel(name.strip().lower() if isinstance(name, str) else name)
    except ValueError:
        channel = None
    if channel not in AGENT_CHANNELS:
        raise AgentInputError("channel must be messenger or whatsapp")
    assert channel is not None
    return channel


def _user(user_id: str) -> str:
    user_id = user_id.strip()
    if (
        not user_id
        or len(user_id) > 200
        or _CONTROL_CHARS.search(user_id)
        or any(c.isspace() for c in user_id)
    ):
        raise AgentInputError("user_id must be the platform's id of the person (PSID or wa_id)")
    return user_id


def _agent(agent: str) -> str:
    agent = agent.strip()
    if not AGENT_ID.fullmatch(agent):
        raise AgentInputError("agent must be the agent's id: 1 to 100 of A-Z a-z 0-9 . _ @ -")
    return agent


@dataclass
class AgentDesk:
    """The human-agent path: send as an agent, release a thread to the bot, list tickets."""

    adapters: Mapping[Channel, ChannelAdapter]
    outbox: SqlOutbox
    handover: Handover
    guard: EgressGuard
    linking: CustomerLookup | None
    conversations: ConversationStore | None
    clock: Clock
    on_queued: Callable[[], None] | None = None
    max_text: int = field(default=MAX_AGENT_TEXT)

    @property
    def store(self) -> SqlHandover:
        return self.handover.store

    def _thread(self, channel: Channel, user_id: str) -> ThreadControl:
        with self.outbox.engine.connect() as conn:
            info = self.store.thread(conn, channel, user_id)
        if info is None:
            raise NoConversation(f"no {channel.value} conversation with this user")
        return info

    def _customer(self, channel: Channel, user_id: str) -> int | None:
        return self.linking.customer_for(channel, user_id) if self.linking is not None else None

    def _language(self, channel: Channel, user_id: str) -> str:
        if self.conversations is None:
            return "en"
        return str(self.conversations.load(channel, user_id).language or "en")

    def send(
        self,
        channel: str | Channel,
        user_id: str,
        text: str,
        agent: str,
        *,
        request_id: str | None = None,
    ) -> AgentReceipt:
        """Queue ``agent``'s reply to ``user_id``; raises :class:`MessageBlocked` if the guard would
        redact any of it, :class:`NoConversation` if the user never wrote on that channel.

        ``request_id`` (the caller's, optional) makes a retried request queue the message only once.
        """
        ch = agent_channel(channel)
        user_id, agent = _user(user_id), _agent(agent)
        text = _CONTROL_CHARS.sub("", text).strip()
        if not text:
            raise AgentInputError("text is empty")
        if len(text) > self.max_text:
            raise AgentInputError(f"text is longer than {self.max_text} characters")
        if request_id is not None and not REQUEST_ID.fullmatch(request_id):
            raise AgentInputError("request_id must be 1 to 64 of A-Z a-z 0-9 . _ -")
        info = self._thread(ch, user_id)
        if info.last_user_message_at is None:
            raise NoConversation(f"this user has not written on {ch.value}: there is nothing to reply to")
        customer_id = self._customer(ch, user_id)
        origin = f"agent:{agent}"
        blocked = self.guard.screen(ch, customer_id, text, origin)
        if blocked:
            log.info("agent %s: message to a %s user refused by the guard (%s)", agent, ch, sorted(blocked))
            raise MessageBlocked(blocked)
        reply = Reply((FreeText(text, origin),), language=self._language(ch, user_id))
        prepared = self.guard.prepare(ch, customer_id, reply)
        rendered = prepared.rendered
        if rendered.text != render(reply).text or rendered.withheld or rendered.buttons:
            # The guard changed the text after all: never send an agent's words altered.
            raise MessageBlocked(frozenset(rendered.withheld) or frozenset({DataCategory.PUBLIC}))

        now = self.clock.now()
        adapter = self.adapters[ch]
        decision = send_decision(adapter.capabilities, info.last_user_message_at, now, human_agent=True)
        if request_id is not None:
            digest = hashlib.sha256(
                f"{ch.value}\x00{user_id}\x00{agent}\x00{request_id}".encode()
            ).hexdigest()
            key = "ag" + digest[:24]
        else:
            key = "ag" + secrets.token_hex(12)
        outbound = OutboundMessage(
            channel=ch,
            user_id=user_id,
            texts=(rendered.text,),
            key=key,
            language=rendered.language,
            tag=decision.tag if decision.allowed else None,
        )
        calls = [
            QueuedCall(
                key=req.key,
                channel=ch,
                user_id=req.user_id or user_id,
                sequence=req.sequence,
                method=req.method,
                path=req.path,
                body=_json_bytes(req.body),
            )
            for req in adapter.render(outbound)
            if not req.best_effort
        ]
        o = channel_outbox
        with self.outbox.writer.begin() as conn:
            if conn.execute(select(o.c.id).where(o.c.key == calls[0].key)).first() is not None:
                return AgentReceipt(
                    key, ch, user_id, agent, "duplicate", decision.reason.value, None, None, None
                )
            ticket = self.store.ensure_ticket(
                conn, ch, user_id, reason=AGENT, text=TICKET_TEXT[AGENT], now=now
            )
            # A human is in charge of the thread now: the bot stays silent until it is released.
            took = self.handover.take_back(
                conn,
                channel=ch,
                user_id=user_id,
                customer_id=customer_id,
                key=f"{key}#take",
                metadata=f"agent:ticket={ticket.ticket}",
                muted=True,
                now=now,
            )
            inserted = self.outbox.enqueue(conn, calls, now)
            self.store.mark_agent(conn, inserted, agent)
            for call in calls:
                if call.key in inserted:
                    self.guard.record(conn, prepared=prepared, user_id=user_id, body=call.body, at=now)
        log.info("agent %s queued %s (%s, %s call(s))", agent, key, decision.reason, len(calls))
        if self.on_queued is not None:
            self.on_queued()
        return AgentReceipt(
            key=key,
            channel=ch,
            user_id=user_id,
            agent=agent,
            status="queued" if decision.allowed else "held",
            reason=decision.reason.value,
            messaging_type=decision.messaging_type,
            tag=decision.tag,
            ticket=ticket.ticket,
            took_control=took,
            calls=len(calls),
        )

    def release(self, channel: str | Channel, user_id: str, agent: str) -> Release:
        """Give the thread back to the bot (``amanah agent release``)."""
        ch = agent_channel(channel)
        user_id, agent = _user(user_id), _agent(agent)
        self._thread(ch, user_id)
        customer_id = self._customer(ch, user_id)
        now = self.clock.now()
        with self.outbox.writer.begin() as conn:
            released = self.handover.release(
                conn,
                channel=ch,
                user_id=user_id,
                customer_id=customer_id,
                key=f"rl{secrets.token_hex(12)}#take",
                now=now,
            )
        resume_conversation(self.conversations, ch, user_id)
        log.info("agent %s released a %s thread to the bot (tickets %s)", agent, ch, list(released.tickets))
        if released.took_control and self.on_queued is not None:
            self.on_queued()
        return released

    def tickets(self, *, open_only: bool = True, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.tickets(open_only=open_only, limit=limit)


def make_desk(container: Any) -> AgentDesk:
    """The agent desk of ``container`` (needs ``container.channels`` and ``container.guard``)."""
    from amanah.adapters.channels.worker import ChannelRuntime

    runtime: ChannelRuntime = container.channels
    settings = container.settings
    handover = Handover(
        outbox=runtime.outbox,
        guard=container.guard,
        inbox_app_id=settings.messenger_inbox_app_id,
        our_app_id=settings.messenger_app_id,
    )
    return AgentDesk(
        adapters=runtime.adapters,
        outbox=runtime.outbox,
        handover=handover,
        guard=container.guard,
        linking=getattr(container, "linking", None),
        conversations=getattr(container, "conversations", None),
        clock=container.clock,
        on_queued=runtime.notify_outbox,
    )


__all__ = [
    "AGENT",
    "HANDOFF",
    "REQUESTED",
    "AgentDesk",
    "AgentInputError",
    "AgentReceipt",
    "Handover",
    "MessageBlocked",
    "NoConversation",
    "Release",
    "handoff_metadata",
    "make_desk",
    "resume_conversation",
]
