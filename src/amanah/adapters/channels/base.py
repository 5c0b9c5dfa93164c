"""The one interface every messaging channel implements, and the typed values that cross it.

A channel adapter is pure protocol: no database, no network. The webhook route calls
:meth:`ChannelAdapter.verify_handshake` / :meth:`~ChannelAdapter.verify_signature` /
:meth:`~ChannelAdapter.parse`; the outbox renders with :meth:`~ChannelAdapter.render` and a sender
(``sender.GraphSender`` for Meta) posts each :class:`SendRequest` and turns the answer into a
:class:`SendOutcome` with :meth:`~ChannelAdapter.classify_error`.

Platform specifics (hub handshake, HMAC header, Graph error codes) live in the adapters; a new channel
(Telegram: a static secret header, ``update_id`` dedup, ``retry_after``) is one more adapter file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from amanah.domain.conversation import Channel
from amanah.domain.errors import ValidationError
from amanah.domain.replies import LinkButton, QuickReply

JSON = dict[str, Any]


class MalformedPayload(ValidationError):
    """Raised by ``parse`` when the body is not a JSON object at all (the route still answers 200)."""


class RenderError(ValidationError):
    """Raised by ``render`` when an outbound message cannot be expressed on the channel.

    E.g. suggestions or buttons with no text to carry them, a payload longer than the platform
    accepts, an account-link message without exactly one link. A bug in the caller: dead-letter it.
    """


# --- inbound --------------------------------------------------------------------------------------


class EventKind(StrEnum):
    MESSAGE = "message"  # the user typed text (maybe with attachments)
    QUICK_REPLY = "quick_reply"  # the user tapped a suggestion / reply button / list row
    POSTBACK = "postback"  # the user tapped a postback button (Get Started, menu)
    ATTACHMENT = "attachment"  # media, sticker, location... without text: referenced, never fetched
    ACCOUNT_LINKING = "account_linking"  # linked (with authorization_code) or unlinked
    ECHO = "echo"  # a copy of a message the Page sent (our app, the Page Inbox, another app)
    READ = "read"  # read watermark
    DELIVERY = "delivery"  # delivery watermark / delivered message ids
    STATUS = "status"  # WhatsApp sent/delivered/read/failed for one of our messages
    REACTION = "reaction"  # the user reacted to a message
    REFERRAL = "referral"  # the user (re)opened the thread through a link or ad
    OPTIN = "optin"
    HANDOVER = "handover"  # thread control changed (pass/take/request_thread_control, app_roles)
    POLICY = "policy_enforcement"  # the platform warned or blocked the Page: operational alert
    UNSUPPORTED = "unsupported"  # anything else: logged, acknowledged, never answered


USER_MESSAGE_KINDS = frozenset(
    {EventKind.MESSAGE, EventKind.QUICK_REPLY, EventKind.POSTBACK, EventKind.ATTACHMENT}
)


class LinkingStatus(StrEnum):
    LINKED = "linked"
    UNLINKED = "unlinked"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A reference to media the user sent. The content is never fetched automatically."""

    type: str  # image, audio, video, file/document, sticker, location, fallback, ...
    url: str | None = None  # Messenger CDN URL (expires)
    media_id: str | None = None  # WhatsApp media id


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """One normalized event from a webhook batch.

    ``user_id`` is the platform's id of the person (PSID, wa_id) - for echoes too (the recipient of
    the Page's message). ``account_id`` is the business side (Page ID, phone_number_id).
    ``dedup_key`` is the platform message id when the event has one (mid, wamid), else
    ``"sha256:" + hex`` of stable fields (never the delivery time); the inbox keys on
    ``(channel, dedup_key)``. ``text`` is the raw user text: redact it before storing or logging.
    Secret-bearing fields are left out of ``repr``.
    """

    channel: Channel
    kind: EventKind
    user_id: str
    account_id: str
    dedup_key: str
    timestamp_ms: int
    message_id: str | None = None  # mid / wamid of this event's own message, if any
    text: str | None = field(default=None, repr=False)
    payload: str | None = field(default=None, repr=False)  # quick reply / postback / button id
    attachments: tuple[Attachment, ...] = ()
    standby: bool = False  # Messenger: we are not the thread owner -> record, never answer
    subtype: str | None = None  # handover event name, reaction action, WA status, policy action
    linking_status: LinkingStatus | None = None
    authorization_code: str | None = field(default=None, repr=False)
    app_id: str | None = None  # echo: app that sent it; handover: new owner app
    metadata: str | None = None  # echo: our outbox key from message.metadata; handover metadata
    referral_ref: str | None = None
    watermark_ms: int | None = None  # read / delivery
    related_ids: tuple[str, ...] = ()  # delivered mids, status wamid, reacted-to / replied-to id
    error_code: int | None = None  # WhatsApp failed status
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_user_message(self) -> bool:
        """Something the user said or tapped (as opposed to receipts, echoes, statuses...)."""
        return self.kind in USER_MESSAGE_KINDS

    @property
    def needs_reply(self) -> bool:
        """A user message the assistant should answer (not while another app owns the thread)."""
        return self.is_user_message and not self.standby

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)


def derived_key(channel: Channel, *parts: object) -> str:
    """A stable dedup key for events without a platform id: ``sha256:`` + hex of the joined parts."""
    text = "|".join([channel.value, *("" if p is None else str(p) for p in parts)])
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    """Key-sorted compact JSON: the same event gives the same string whatever the key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_json_object(raw_body: bytes) -> JSON:
    """Decode a webhook body; raises :class:`MalformedPayload` unless it is a JSON object."""
    try:
        doc = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload("webhook body is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise MalformedPayload("webhook body is not a JSON object")
    return doc


# --- outbound -------------------------------------------------------------------------------------


class OutboundKind(StrEnum):
    REPLY = "reply"  # texts, then suggestions (quick replies) and URL buttons
    TYPING = "typing"  # a typing indicator; best effort, channels may render nothing
    ACCOUNT_LINK = "account_link"  # texts + exactly one button: the bank's sign-in/link page


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What to send to one user, channel-neutral. The adapter renders it to platform calls.

    ``key`` is the caller's idempotency key (the outbox id); renders derive one key per request from
    it and Messenger echoes it back in ``message.metadata``. ``tag`` is set only from
    :func:`~amanah.adapters.channels.policy.send_decision` (human agents outside the window).
    ``reply_to`` is the platform id of the message being answered (kept for read receipts / typing on
    WhatsApp, which need it; not rendered today).
    """

    channel: Channel
    user_id: str
    texts: tuple[str, ...] = ()
    quick_replies: tuple[QuickReply, ...] = ()
    buttons: tuple[LinkButton, ...] = ()
    kind: OutboundKind = OutboundKind.REPLY
    key: str = ""
    language: str = "en"
    tag: str | None = None
    reply_to: str | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers; keep the value immutable.
        for name in ("texts", "quick_replies", "buttons"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> JSON:
        """A JSON-ready dict (for the outbox row)."""
        return {
            "channel": self.channel.value,
            "user_id": self.user_id,
            "texts": list(self.texts),
            "quick_replies": [[q.title, q.payload] for q in self.quick_replies],
            "buttons": [[b.title, b.url] for b in self.buttons],
            "kind": self.kind.value,
            "key": self.key,
            "language": self.language,
            "tag": self.tag,
            "reply_to": self.reply_to,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboundMessage:
        return cls(
            channel=Channel(data["channel"]),
            user_id=str(data["user_id"]),
            texts=tuple(str(t) for t in data.get("texts", ())),
            quick_replies=tuple(QuickReply(str(t), str(p)) for t, p in data.get("quick_replies", ())),
            buttons=tuple(LinkButton(str(t), str(u)) for t, u in data.get("buttons", ())),
            kind=OutboundKind(data.get("kind", OutboundKind.REPLY.value)),
            key=str(data.get("key", "")),
            language=str(data.get("language", "en")),
            tag=data.get("tag"),
            reply_to=data.get("reply_to"),
        )


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One platform API call. ``path`` is relative to the channel's Graph base URL (with version).

    ``key`` is unique per call and stable across re-renders (``<outbound key>#<sequence>``): the outbox
    can store it and the echo of a Messenger message carries it back as ``metadata``. Requests of one
    :class:`OutboundMessage` must be sent in ``sequence`` order. ``best_effort`` calls (typing) may be
    dropped on failure instead of retried.
    """

    channel: Channel
    method: str
    path: str
    body: Mapping[str, Any]
    key: str
    sequence: int = 0
    best_effort: bool = False
    user_id: str = ""  # the recipient (PSID / wa_id): the per-thread pacing and throttling key

    def to_dict(self) -> JSON:
        return {
            "channel": self.channel.value,
            "user_id": self.user_id,
            "method": self.method,
            "path": self.path,
            "body": dict(self.body),
            "key": self.key,
            "sequence": self.sequence,
            "best_effort": self.best_effort,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SendRequest:
        return cls(
            channel=Channel(data["channel"]),
            method=str(data["method"]),
            path=str(data["path"]),
            body=dict(data["body"]),
            key=str(data["key"]),
            sequence=int(data.get("sequence", 0)),
            best_effort=bool(data.get("best_effort", False)),
            user_id=str(data.get("user_id", "")),
        )


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"  # accepted by the platform
    RETRY = "retry"  # try again after a delay (see policy.retry_delay_s)
    PERMANENT = "permanent"  # do not retry; ``action`` says what else to do


class ErrorAction(StrEnum):
    """What the outbox should do beside (not) retrying."""

    THROTTLED = "throttled"  # pause the whole Page / phone number, then retry
    THREAD_THROTTLED = "thread_throttled"  # pause only this user's thread, then retry
    TRANSIENT = "transient"  # retry with backoff, bounded, then dead-letter
    AMBIGUOUS = "ambiguous"  # the request may have been delivered (timeout after sending)
    WINDOW_CLOSED = "window_closed"  # mark the window closed; reroute to a bank-owned channel
    RECIPIENT_UNREACHABLE = "recipient_unreachable"  # mark the user unreachable
    UNKNOWN_RECIPIENT = "unknown_recipient"  # bad id / wrong Page: data bug alert
    BAD_TOKEN = "bad_token"  # noqa: S105 - open the Page circuit; alert operations
    ACCOUNT_RESTRICTED = "account_restricted"  # the platform restricted the Page; circuit + alert
    PERMISSION = "permission"  # app lacks a permission; alert
    FREQUENCY_CAPPED = "frequency_capped"  # marketing frequency caps; drop
    INVALID_REQUEST = "invalid_request"  # our request was wrong: bug alert with the trace id
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The classified result of one :class:`SendRequest`."""

    kind: OutcomeKind
    message_id: str | None = None  # mid / wamid when delivered
    action: ErrorAction | None = None
    retry_after_s: float | None = None  # the platform's own hint; wait at least this long
    http_status: int | None = None
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    trace_id: str | None = None  # Graph fbtrace_id: always log it

    @property
    def delivered(self) -> bool:
        return self.kind is OutcomeKind.DELIVERED

    @property
    def retryable(self) -> bool:
        return self.kind is OutcomeKind.RETRY


# --- the interface --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can show and its messaging window, for renderers and the window policy."""

    max_text: int  # UTF-16 units per text message
    max_quick_replies: int
    max_buttons: int
    window_hours: float | None  # free-form replies allowed this long after the user's last message
    human_agent_window_hours: float | None = None  # human agents, with a tag, up to this long
    human_agent_tag: str | None = None


class ChannelAdapter(Protocol):
    """One messaging platform's protocol: authenticate, parse, render, classify. Pure, no I/O."""

    @property
    def name(self) -> Channel: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def signature_header(self) -> str:
        """The request header ``verify_signature`` checks (e.g. ``X-Hub-Signature-256``)."""
        ...

    def verify_handshake(self, params: Mapping[str, str]) -> str | None:
        """The body to answer a subscription GET with (200, text/plain), or None for a 403."""
        ...

    def verify_signature(self, raw_body: bytes, header: str | None) -> bool:
        """True only if ``header`` authenticates exactly these bytes. Never raises."""
        ...

    def parse(self, raw_body: bytes) -> list[InboundEvent]:
        """Every event of every entry, deduplicated within the batch, in timestamp order.

        Unknown or malformed events become ``UNSUPPORTED``; raises :class:`MalformedPayload` only when
        the body is not a JSON object.
        """
        ...

    def render(self, outbound: OutboundMessage) -> list[SendRequest]:
        """The platform calls for ``outbound``, in order; raises :class:`RenderError`."""
        ...

    def classify_error(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
    ) -> SendOutcome:
        """Classify a platform answer (success too) into delivered / retry / permanent."""
        ...


def request_key(outbound: OutboundMessage, sequence: int) -> str:
    """``<key>#<sequence>``; without a caller key, a key derived from the message content."""
    base = outbound.key or hashlib.sha256(canonical_json(outbound.to_dict()).encode("utf-8")).hexdigest()[:24]
    return f"{base}#{sequence}"


def as_sequence(value: object) -> Sequence[Any]:
    """``value`` if it is a JSON array, else ``[]`` (tolerant walking of webhook documents)."""
    return value if isinstance(value, list) else []


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else ``{}``."""
    return value if isinstance(value, dict) else {}
