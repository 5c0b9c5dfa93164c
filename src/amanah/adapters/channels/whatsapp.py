"""WhatsApp Cloud API: webhook events in, ``/{phone_number_id}/messages`` calls out.

Inbound: ``{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
"value": {"metadata": {"phone_number_id"}, "messages": [...], "statuses": [...]}}]}]}``. Messages
are dedup-keyed on their wamid; statuses on ``(wamid, status)`` and never produce a reply. Taps on
reply buttons, list rows and template quick-reply buttons are ``QUICK_REPLY`` events with the
button id as payload. Timestamps are seconds on the wire, milliseconds in :class:`InboundEvent`.

Outbound rendering choices (documented, deterministic):

* texts split at 4,096 UTF-16 units (``type: text``, ``preview_url: false``);
* 1-3 suggestions -> an interactive ``button`` message (titles shortened to 20, ids at most 256);
  4-10 -> an interactive ``list`` message (row titles 24, ids 200, one section); beyond 10 the rest
  is listed in the text ("Also: ..."). The interactive body is the tail (at most 1,024) of the last
  text; the head goes before it as plain text;
* exactly one URL button and no suggestions -> an interactive ``cta_url`` message; otherwise links
  are written into the text as "title: url" lines (WhatsApp has no multi-link button message);
* account linking -> the same ``cta_url`` (WhatsApp has no account-linking button);
* typing -> nothing: the spec we build against does not describe a WhatsApp typing indicator
  (Meta's ``typing_indicator`` on a read receipt is undocumented there), so it is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from amanah.adapters.channels import meta
from amanah.adapters.channels.base import (
    JSON,
    Attachment,
    Capabilities,
    EventKind,
    InboundEvent,
    OutboundKind,
    OutboundMessage,
    RenderError,
    SendOutcome,
    SendRequest,
    as_mapping,
    as_sequence,
    canonical_json,
    derived_key,
    load_json_object,
    request_key,
)
from amanah.adapters.channels.textsplit import shorten, split_tail, split_text
from amanah.domain.conversation import Channel
from amanah.domain.replies import QuickReply
from amanah.settings import Settings

MAX_TEXT = 4096
MAX_BODY = 1024  # interactive message body
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE = 20
MAX_BUTTON_ID = 256
MAX_LIST_ROWS = 10
MAX_ROW_TITLE = 24
MAX_ROW_ID = 200
MAX_LIST_BUTTON = 20

CAPABILITIES = Capabilities(
    max_text=MAX_TEXT,
    max_quick_replies=MAX_LIST_ROWS,
    max_buttons=1,
    window_hours=24.0,
)

_MEDIA_TYPES = ("image", "audio", "video", "document", "sticker", "voice")
_LIST_LABEL = {"en": "Options", "ar": "الخيارات"}
_ALSO = meta.ALSO
_str = meta.json_str


def _seconds_to_ms(value: object) -> int | None:
    seconds = meta.json_int(value)
    return None if seconds is None else seconds * 1000


def app_secrets(settings: Settings) -> meta.AppSecrets:
    """WhatsApp's app secret and, while rotating, the previous one and its deadline."""
    return meta.AppSecrets(
        settings.whatsapp_app_secret.get_secret_value(),
        settings.whatsapp_app_secret_previous.get_secret_value(),
        settings.whatsapp_app_secret_previous_until,
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WhatsAppAdapter:
    """The WhatsApp Cloud API channel for one business phone number.

    ``app_secrets``: the current app secret, plus the previous one while rotating (``now`` decides
    whether its window is still open).
    """

    signature_header = meta.SIGNATURE_HEADER

    def __init__(
        self,
        verify_token: str,
        app_secrets: meta.AppSecrets | str | Iterable[str],
        phone_number_id: str,
        *,
        max_text: int = MAX_TEXT,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._verify_token = verify_token
        self._app_secrets = meta.AppSecrets.of(app_secrets)
        self._now = now or _utcnow
        self._phone_number_id = phone_number_id
        self._max_text = max_text

    @classmethod
    def from_settings(
        cls, settings: Settings, *, now: Callable[[], datetime] | None = None
    ) -> WhatsAppAdapter:
        return cls(
            settings.whatsapp_verify_token.get_secret_value(),
            app_secrets(settings),
            settings.whatsapp_phone_number_id,
            now=now,
        )

    @property
    def name(self) -> Channel:
        return Channel.WHATSAPP

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def send_path(self) -> str:
        return f"/{self._phone_number_id}/messages"

    # --- inbound ----------------------------------------------------------------------------------

    def verify_handshake(self, params: Mapping[str, str]) -> str | None:
        return meta.verify_hub_handshake(params, self._verify_token)

    def verify_signature(self, raw_body: bytes, header: str | None) -> bool:
        which = meta.match_hub_signature(raw_body, header, self._app_secrets, self._now())
        if which is meta.SecretMatch.PREVIOUS:
            meta.note_previous_secret(Channel.WHATSAPP.value, "webhook")
        return which is not None

    def parse(self, raw_body: bytes) -> list[InboundEvent]:
        doc = load_json_object(raw_body)
        if doc.get("object") != "whatsapp_business_account":
            return []
        events: list[InboundEvent] = []
        for entry in as_sequence(doc.get("entry")):
            entry = as_mapping(entry)
            for change in as_sequence(entry.get("changes")):
                change = as_mapping(change)
                value = as_mapping(change.get("value"))
                account = _str(as_mapping(value.get("metadata")).get("phone_number_id")) or ""
                if change.get("field") != "messages":
                    events.append(self._unsupported(change, account, "", "field"))
                    continue
                for message in as_sequence(value.get("messages")):
                    events.append(self._guard(self._message, as_mapping(message), account))
                for status in as_sequence(value.get("statuses")):
                    events.append(self._guard(self._status, as_mapping(status), account))
                for error in as_sequence(value.get("errors")):
                    events.append(self._unsupported(as_mapping(error), account, "", "error"))
        unique: dict[str, InboundEvent] = {}
        for event in events:
            unique.setdefault(event.dedup_key, event)
        return sorted(unique.values(), key=lambda e: e.timestamp_ms)

    def _guard(
        self, build: Callable[[Mapping[str, Any], str], InboundEvent], item: Mapping[str, Any], account: str
    ) -> InboundEvent:
        try:
            return build(item, account)
        except (KeyError, TypeError, ValueError, AttributeError):
            return self._unsupported(item, account, _str(item.get("from")) or "", "malformed")

    def _unsupported(self, item: Mapping[str, Any], account: str, user: str, why: str) -> InboundEvent:
        timestamp = _seconds_to_ms(item.get("timestamp")) or 0
        return InboundEvent(
            channel=Channel.WHATSAPP,
            kind=EventKind.UNSUPPORTED,
            user_id=user,
            account_id=account,
            dedup_key=derived_key(Channel.WHATSAPP, "unsupported", user, timestamp, canonical_json(item)),
            timestamp_ms=timestamp,
            subtype=why,
            raw=item,
        )

    def _message(self, message: Mapping[str, Any], account: str) -> InboundEvent:
        ch = Channel.WHATSAPP
        wamid = _str(message["id"])
        user = _str(message["from"]) or ""
        timestamp = _seconds_to_ms(message.get("timestamp")) or 0
        if not wamid:
            raise ValueError("message without id")
        context = _str(as_mapping(message.get("context")).get("id"))
        base: dict[str, Any] = {
            "channel": ch,
            "user_id": user,
            "account_id": account,
            "dedup_key": wamid,
            "timestamp_ms": timestamp,
            "message_id": wamid,
            "related_ids": (context,) if context else (),
            "raw": message,
        }
        kind = message.get("type")
        if kind == "text":
            body = _str(as_mapping(message.get("text")).get("body"))
            if body is None:
                raise ValueError("text message without body")
            return InboundEvent(kind=EventKind.MESSAGE, text=body, **base)
        if kind == "interactive":
            interactive = as_mapping(message.get("interactive"))
            reply = as_mapping(interactive.get(str(interactive.get("type"))))
            if interactive.get("type") in ("button_reply", "list_reply") and "id" in reply:
                return InboundEvent(
                    kind=EventKind.QUICK_REPLY,
                    text=_str(reply.get("title")),
                    payload=_str(reply.get("id")),
                    subtype=_str(interactive.get("type")),
                    **base,
                )
            return InboundEvent(kind=EventKind.UNSUPPORTED, subtype="interactive", **base)
        if kind == "button":  # a template's quick-reply button
            button = as_mapping(message.get("button"))
            return InboundEvent(
                kind=EventKind.QUICK_REPLY,
                text=_str(button.get("text")),
                payload=_str(button.get("payload")),
                subtype="button",
                **base,
            )
        if kind in _MEDIA_TYPES:
            media = as_mapping(message.get(str(kind)))
            return InboundEvent(
                kind=EventKind.ATTACHMENT,
                text=_str(media.get("caption")),
                attachments=(Attachment(type=str(kind), media_id=_str(media.get("id"))),),
                **base,
            )
        if kind in ("location", "contacts"):
            # Reference only: the coordinates / contact cards stay in ``raw`` (purge with it).
            return InboundEvent(kind=EventKind.ATTACHMENT, attachments=(Attachment(type=str(kind)),), **base)
        if kind == "reaction":
            reaction = as_mapping(message.get("reaction"))
            target = _str(reaction.get("message_id"))
            base["related_ids"] = (target,) if target else ()
            return InboundEvent(kind=EventKind.REACTION, text=_str(reaction.get("emoji")), **base)
        return InboundEvent(kind=EventKind.UNSUPPORTED, subtype=_str(kind) or "unknown", **base)

    def _status(self, status: Mapping[str, Any], account: str) -> InboundEvent:
        wamid = _str(status["id"])
        value = _str(status["status"])
        if not wamid or not value:
            raise ValueError("status without id or status")
        errors = as_sequence(status.get("errors"))
        code = as_mapping(errors[0]).get("code") if errors else None
        return InboundEvent(
            channel=Channel.WHATSAPP,
            kind=EventKind.STATUS,
            user_id=_str(status.get("recipient_id")) or "",
            account_id=account,
            dedup_key=derived_key(Channel.WHATSAPP, "status", wamid, value),
            timestamp_ms=_seconds_to_ms(status.get("timestamp")) or 0,
            subtype=value,
            related_ids=(wamid,),
            error_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            raw=status,
        )

    # --- outbound ---------------------------------------------------------------------------------

    def render(self, outbound: OutboundMessage) -> list[SendRequest]:
        if outbound.channel is not Channel.WHATSAPP:
            raise RenderError(f"a {outbound.channel} message cannot be rendered for WhatsApp")
        if not outbound.user_id:
            raise RenderError("no recipient")
        if outbound.kind is OutboundKind.TYPING:
            return []  # see the module docstring
        if outbound.kind is OutboundKind.ACCOUNT_LINK and len(outbound.buttons) != 1:
            raise RenderError("an account-link message needs exactly one link")

        texts = [t for t in outbound.texts if t and t.strip()]
        quick = list(outbound.quick_replies)
        links = list(outbound.buttons)
        extra: list[str] = []
        if len(quick) > MAX_LIST_ROWS:
            more = " · ".join(shorten(q.title, 60) for q in quick[MAX_LIST_ROWS:])
            extra.append(f"{_ALSO.get(outbound.language, _ALSO['en'])} {more}")
            quick = quick[:MAX_LIST_ROWS]
        cta = links[0] if len(links) == 1 and not quick else None
        if cta is None:
            extra.extend(f"{b.title}: {b.url}" for b in links)
        if extra:
            # Overflow goes into the last text (same bubble), after a paragraph break.
            texts = [*texts[:-1], texts[-1] + "\n\n" + "\n".join(extra)] if texts else ["\n".join(extra)]
        if (quick or cta) and not texts:
            raise RenderError("suggestions and buttons need a text to go with")

        bodies: list[JSON] = []
        plain = texts
        tail = ""
        if quick or cta:
            head, tail = split_tail(texts[-1], MAX_BODY)
            plain = [*texts[:-1], head]
        for text in plain:
            for chunk in split_text(text, self._max_text):
                bodies.append({"type": "text", "text": {"body": chunk, "preview_url": False}})
        if quick:
            bodies.append(
                {"type": "interactive", "interactive": self._choices(quick, tail, outbound.language)}
            )
        elif cta is not None:
            interactive = {
                "type": "cta_url",
                "body": {"text": tail},
                "action": {
                    "name": "cta_url",
                    "parameters": {"display_text": shorten(cta.title, MAX_BUTTON_TITLE), "url": cta.url},
                },
            }
            bodies.append({"type": "interactive", "interactive": interactive})

        requests: list[SendRequest] = []
        for seq, content in enumerate(bodies):
            body: JSON = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": outbound.user_id,
            }
            body.update(content)
            requests.append(
                SendRequest(
                    channel=Channel.WHATSAPP,
                    method="POST",
                    path=self.send_path,
                    body=body,
                    key=request_key(outbound, seq),
                    sequence=seq,
                    user_id=outbound.user_id,
                )
            )
        return requests

    @staticmethod
    def _choices(quick: list[QuickReply], body: str, language: str) -> JSON:
        for option in quick:
            if not option.payload:
                raise RenderError("a suggestion needs a payload")
        if len(quick) <= MAX_REPLY_BUTTONS:
            buttons = []
            for option in quick:
                if len(option.payload) > MAX_BUTTON_ID:
                    raise RenderError(f"a reply button id is longer than {MAX_BUTTON_ID} characters")
                title = shorten(option.title, MAX_BUTTON_TITLE)
                buttons.append({"type": "reply", "reply": {"id": option.payload, "title": title}})
            return {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}}
        rows = []
        for option in quick:
            if len(option.payload) > MAX_ROW_ID:
                raise RenderError(f"a list row id is longer than {MAX_ROW_ID} characters")
            rows.append({"id": option.payload, "title": shorten(option.title, MAX_ROW_TITLE)})
        label = shorten(_LIST_LABEL.get(language, _LIST_LABEL["en"]), MAX_LIST_BUTTON)
        return {
            "type": "list",
            "body": {"text": body},
            "action": {"button": label, "sections": [{"rows": rows}]},
        }

    def classify_error(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
    ) -> SendOutcome:
        return meta.classify_graph_response(status, body, headers)
