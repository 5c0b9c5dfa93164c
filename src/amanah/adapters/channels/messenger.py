"""Facebook Messenger Platform: webhook events in, Send API calls out (wire formats per the spec).

Inbound: ``{"object": "page", "entry": [{"id", "time", "messaging" | "standby" | "changes": [...]}]}``;
every entry and every event is read; events under ``standby`` are flagged (another app owns the
thread: record, never answer); ``changes[]`` items carrying a messaging event are read too. The event
type is the key present (``message``, ``postback``, ``read``, ``delivery``, ``account_linking``, ...).

Outbound (``POST /me/messages``), rendering choices:

* texts split at 2,000 UTF-16 units at paragraph/sentence/word boundaries;
* suggestions -> quick replies on the last message (at most 13, titles shortened to 20, payload
  at most 1,000 or :class:`RenderError`); suggestions beyond 13 are listed in the text
  ("Also: ...") so nothing is silently lost;
* URL buttons -> a button template (text at most 640: the tail of the last text, the head goes as
  plain text before it) with up to 3 ``web_url`` buttons (``webview_share_button: hide``); buttons
  beyond 3 are listed as "title: url" lines in the text;
* account linking -> a button template with one ``account_link`` button;
* typing -> a separate ``sender_action: typing_on`` request (best effort);
* every message carries ``metadata`` = its request key, echoed back in ``message_echoes``.

Handover (§2.10): :func:`pass_thread_control` (to the Page Inbox or an app that asked for the thread)
and :func:`take_thread_control` build ``POST /me/pass_thread_control`` / ``/me/take_thread_control``
calls; Meta answers ``{"success": true}``. Their ``metadata`` travels through Meta: callers put only
an opaque ticket id in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from amanah.adapters.channels import meta
from amanah.adapters.channels.base import (
    JSON,
    Attachment,
    Capabilities,
    EventKind,
    InboundEvent,
    LinkingStatus,
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
from amanah.adapters.channels.policy import MESSAGE_TAG, RESPONSE
from amanah.adapters.channels.textsplit import shorten, split_tail, split_text
from amanah.domain.conversation import Channel
from amanah.domain.replies import LinkButton, QuickReply
from amanah.settings import Settings

MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_PAYLOAD = 1000
MAX_TEMPLATE_TEXT = 640
MAX_TEMPLATE_BUTTONS = 3
MAX_BUTTON_TITLE = 20
PAGE_INBOX_APP_ID = "263902037430900"
SEND_PATH = "/me/messages"
PASS_THREAD_CONTROL_PATH = "/me/pass_thread_control"  # noqa: S105 - a URL path
TAKE_THREAD_CONTROL_PATH = "/me/take_thread_control"
MAX_HANDOVER_METADATA = 1000

CAPABILITIES = Capabilities(
    max_text=MAX_TEXT,
    max_quick_replies=MAX_QUICK_REPLIES,
    max_buttons=MAX_TEMPLATE_BUTTONS,
    window_hours=24.0,
    human_agent_window_hours=7 * 24.0,
    human_agent_tag="HUMAN_AGENT",
)

_HANDOVER_KEYS = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")
_ALSO = meta.ALSO
_str = meta.json_str
_ms = meta.json_int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _attachments(items: Sequence[Any]) -> tuple[Attachment, ...]:
    """Attachment references (never fetched).

    Until Meta's transition ends, a sticker arrives both as a ``sticker`` and as an ``image``
    attachment: the image twin is dropped (same URL, or as many images as stickers) so the user's
    one sticker is one attachment. An ``image`` carrying a ``sticker_id`` is reported as a sticker.
    """
    parsed: list[Attachment] = []
    for item in items:
        item = as_mapping(item)
        payload = as_mapping(item.get("payload"))
        kind = str(item.get("type", "unknown"))
        if kind == "image" and payload.get("sticker_id") is not None:
            kind = "sticker"
        parsed.append(Attachment(type=kind, url=_str(payload.get("url"))))
    stickers = [a for a in parsed if a.type == "sticker"]
    images = [a for a in parsed if a.type == "image"]
    if stickers and images:
        sticker_urls = {a.url for a in stickers}
        if len(images) == len(stickers):
            parsed = [a for a in parsed if a.type != "image"]
        else:
            parsed = [a for a in parsed if not (a.type == "image" and a.url in sticker_urls)]
    unique: list[Attachment] = []
    for att in parsed:
        if att.type == "sticker" and any(u.type == "sticker" and u.url == att.url for u in unique):
            continue
        unique.append(att)
    return tuple(unique)


def app_secrets(settings: Settings) -> meta.AppSecrets:
    """Messenger's app secret and, while rotating, the previous one and its deadline."""
    return meta.AppSecrets(
        settings.messenger_app_secret.get_secret_value(),
        settings.messenger_app_secret_previous.get_secret_value(),
        settings.messenger_app_secret_previous_until,
    )


class MessengerAdapter:
    """The Messenger channel. ``app_secrets``: the current app secret, plus the previous one while
    rotating (:class:`meta.AppSecrets`; ``now`` decides whether its window is still open)."""

    signature_header = meta.SIGNATURE_HEADER

    def __init__(
        self,
        verify_token: str,
        app_secrets: meta.AppSecrets | str | Iterable[str],
        *,
        max_text: int = MAX_TEXT,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._verify_token = verify_token
        self._app_secrets = meta.AppSecrets.of(app_secrets)
        self._now = now or _utcnow
        self._max_text = max_text

    @classmethod
    def from_settings(
        cls, settings: Settings, *, now: Callable[[], datetime] | None = None
    ) -> MessengerAdapter:
        return cls(settings.messenger_verify_token.get_secret_value(), app_secrets(settings), now=now)

    @property
    def name(self) -> Channel:
        return Channel.MESSENGER

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    # --- inbound ----------------------------------------------------------------------------------

    def verify_handshake(self, params: Mapping[str, str]) -> str | None:
        return meta.verify_hub_handshake(params, self._verify_token)

    def verify_signature(self, raw_body: bytes, header: str | None) -> bool:
        which = meta.match_hub_signature(raw_body, header, self._app_secrets, self._now())
        if which is meta.SecretMatch.PREVIOUS:
            meta.note_previous_secret(Channel.MESSENGER.value, "webhook")
        return which is not None

    def parse(self, raw_body: bytes) -> list[InboundEvent]:
        doc = load_json_object(raw_body)
        if doc.get("object") != "page":
            return []
        events: list[InboundEvent] = []
        for entry in as_sequence(doc.get("entry")):
            entry = as_mapping(entry)
            page_id = _str(entry.get("id")) or ""
            entry_time = _ms(entry.get("time")) or 0
            for item in as_sequence(entry.get("messaging")):
                events.append(self._event(as_mapping(item), page_id, entry_time, standby=False))
            for item in as_sequence(entry.get("standby")):
                events.append(self._event(as_mapping(item), page_id, entry_time, standby=True))
            for change in as_sequence(entry.get("changes")):
                change = as_mapping(change)
                value = as_mapping(change.get("value"))
                if "sender" in value:
                    events.append(self._event(value, page_id, entry_time, standby=False))
                else:
                    events.append(self._unsupported(change, page_id, entry_time, "change"))
        unique: dict[str, InboundEvent] = {}
        for event in events:
            unique.setdefault(event.dedup_key, event)
        return sorted(unique.values(), key=lambda e: e.timestamp_ms)

    def _unsupported(self, item: Mapping[str, Any], page_id: str, entry_time: int, why: str) -> InboundEvent:
        sender = _str(as_mapping(item.get("sender")).get("id")) or ""
        timestamp = _ms(item.get("timestamp")) or entry_time
        return InboundEvent(
            channel=Channel.MESSENGER,
            kind=EventKind.UNSUPPORTED,
            user_id=sender,
            account_id=page_id,
            dedup_key=derived_key(Channel.MESSENGER, "unsupported", sender, timestamp, canonical_json(item)),
            timestamp_ms=timestamp,
            subtype=why,
            raw=item,
        )

    def _event(
        self, item: Mapping[str, Any], page_id: str, entry_time: int, *, standby: bool
    ) -> InboundEvent:
        try:
            return self._event_or_raise(item, page_id, entry_time, standby=standby)
        except (KeyError, TypeError, ValueError, AttributeError):
            return self._unsupported(item, page_id, entry_time, "malformed")

    def _event_or_raise(
        self, item: Mapping[str, Any], page_id: str, entry_time: int, *, standby: bool
    ) -> InboundEvent:
        ch = Channel.MESSENGER
        sender = _str(as_mapping(item.get("sender")).get("id")) or ""
        recipient = _str(as_mapping(item.get("recipient")).get("id")) or ""
        timestamp = _ms(item.get("timestamp")) or entry_time
        base: dict[str, Any] = {
            "channel": ch,
            "user_id": sender,
            "account_id": page_id or recipient,
            "timestamp_ms": timestamp,
            "standby": standby,
            "raw": item,
        }

        if isinstance(item.get("message"), dict):
            message = item["message"]
            mid = _str(message.get("mid"))
            text = _str(message.get("text"))
            attachments = _attachments(as_sequence(message.get("attachments")))
            if message.get("is_echo") is True:
                # Sent by the Page: the person is the recipient.
                base.update(user_id=recipient, account_id=page_id or sender)
                return InboundEvent(
                    kind=EventKind.ECHO,
                    dedup_key=mid or derived_key(ch, "echo", recipient, timestamp, canonical_json(message)),
                    message_id=mid,
                    text=text,
                    attachments=attachments,
                    app_id=_str(message.get("app_id")),
                    metadata=_str(message.get("metadata")),
                    **base,
                )
            dedup = mid or derived_key(ch, "message", sender, timestamp, canonical_json(message))
            reply_to = _str(as_mapping(message.get("reply_to")).get("mid"))
            related = (reply_to,) if reply_to else ()
            quick_reply = as_mapping(message.get("quick_reply"))
            if "payload" in quick_reply:
                return InboundEvent(
                    kind=EventKind.QUICK_REPLY,
                    dedup_key=dedup,
                    message_id=mid,
                    text=text,
                    payload=_str(quick_reply.get("payload")),
                    related_ids=related,
                    **base,
                )
            if text is not None:
                kind = EventKind.MESSAGE
            elif attachments:
                kind = EventKind.ATTACHMENT
            else:
                kind = EventKind.UNSUPPORTED
            return InboundEvent(
                kind=kind,
                dedup_key=dedup,
                message_id=mid,
                text=text,
                attachments=attachments,
                related_ids=related,
                **base,
            )

        if isinstance(item.get("postback"), dict):
            postback = item["postback"]
            mid = _str(postback.get("mid"))
            payload = _str(postback.get("payload"))
            referral = as_mapping(postback.get("referral"))
            return InboundEvent(
                kind=EventKind.POSTBACK,
                dedup_key=mid or derived_key(ch, "postback", sender, timestamp, payload),
                message_id=mid,
                text=_str(postback.get("title")),
                payload=payload,
                referral_ref=_str(referral.get("ref")),
                subtype=_str(referral.get("source")),
                **base,
            )

        if isinstance(item.get("read"), dict):
            watermark = _ms(item["read"].get("watermark"))
            return InboundEvent(
                kind=EventKind.READ,
                dedup_key=derived_key(ch, "read", sender, watermark),
                watermark_ms=watermark,
                **base,
            )

        if isinstance(item.get("delivery"), dict):
            delivery = item["delivery"]
            watermark = _ms(delivery.get("watermark"))
            mids = tuple(m for m in (_str(x) for x in as_sequence(delivery.get("mids"))) if m)
            return InboundEvent(
                kind=EventKind.DELIVERY,
                dedup_key=derived_key(ch, "delivery", sender, watermark),
                watermark_ms=watermark,
                related_ids=mids,
                **base,
            )

        if isinstance(item.get("account_linking"), dict):
            linking = item["account_linking"]
            status = LinkingStatus(str(linking.get("status")))  # ValueError -> unsupported
            return InboundEvent(
                kind=EventKind.ACCOUNT_LINKING,
                dedup_key=derived_key(ch, "acl", sender, timestamp, status.value),
                linking_status=status,
                authorization_code=_str(linking.get("authorization_code"))
                if status is LinkingStatus.LINKED
                else None,
                **base,
            )

        if isinstance(item.get("reaction"), dict):
            reaction = item["reaction"]
            target = _str(reaction.get("mid"))
            action = _str(reaction.get("action"))
            return InboundEvent(
                kind=EventKind.REACTION,
                dedup_key=derived_key(ch, "reaction", sender, timestamp, canonical_json(reaction)),
                text=_str(reaction.get("emoji")) or _str(reaction.get("reaction")),
                subtype=action,
                related_ids=(target,) if target else (),
                **base,
            )

        if isinstance(item.get("referral"), dict):
            referral = item["referral"]
            return InboundEvent(
                kind=EventKind.REFERRAL,
                dedup_key=derived_key(ch, "referral", sender, timestamp, canonical_json(referral)),
                referral_ref=_str(referral.get("ref")),
                subtype=_str(referral.get("source")),
                **base,
            )

        if isinstance(item.get("optin"), dict):
            optin = item["optin"]
            return InboundEvent(
                kind=EventKind.OPTIN,
                dedup_key=derived_key(ch, "optin", sender, timestamp, canonical_json(optin)),
                payload=_str(optin.get("payload")) or _str(optin.get("ref")),
                subtype=_str(optin.get("type")),
                **base,
            )

        for key in _HANDOVER_KEYS:
            if isinstance(item.get(key), dict):
                handover = item[key]
                return InboundEvent(
                    kind=EventKind.HANDOVER,
                    dedup_key=derived_key(ch, key, sender, timestamp, canonical_json(handover)),
                    subtype=key,
                    app_id=_str(handover.get("new_owner_app_id"))
                    or _str(handover.get("requested_owner_app_id")),
                    metadata=_str(handover.get("metadata")),
                    **base,
                )

        if isinstance(item.get("policy_enforcement"), dict):
            policy = item["policy_enforcement"]
            return InboundEvent(
                kind=EventKind.POLICY,
                dedup_key=derived_key(ch, "policy", recipient, timestamp, canonical_json(policy)),
                subtype=_str(policy.get("action")),
                text=_str(policy.get("reason")),
                **base,
            )

        return self._unsupported(item, page_id, entry_time, "unknown_event")

    # --- outbound ---------------------------------------------------------------------------------

    def render(self, outbound: OutboundMessage) -> list[SendRequest]:
        if outbound.channel is not Channel.MESSENGER:
            raise RenderError(f"a {outbound.channel} message cannot be rendered for Messenger")
        if not outbound.user_id:
            raise RenderError("no recipient")
        if outbound.kind is OutboundKind.TYPING:
            body: JSON = {"recipient": {"id": outbound.user_id}, "sender_action": "typing_on"}
            return [self._request(outbound, 0, body, best_effort=True)]

        texts = [t for t in outbound.texts if t and t.strip()]
        quick = list(outbound.quick_replies)
        links = list(outbound.buttons)
        extra: list[str] = []
        if len(quick) > MAX_QUICK_REPLIES:
            more = " · ".join(shorten(q.title, 60) for q in quick[MAX_QUICK_REPLIES:])
            extra.append(f"{_ALSO.get(outbound.language, _ALSO['en'])} {more}")
            quick = quick[:MAX_QUICK_REPLIES]

        template_buttons: list[JSON] = []
        if outbound.kind is OutboundKind.ACCOUNT_LINK:
            if len(links) != 1:
                raise RenderError("an account-link message needs exactly one link")
            template_buttons = [{"type": "account_link", "url": links[0].url}]
        elif links:
            template_buttons = [self._url_button(b) for b in links[:MAX_TEMPLATE_BUTTONS]]
            extra.extend(f"{b.title}: {b.url}" for b in links[MAX_TEMPLATE_BUTTONS:])
        if extra:
            # Overflow goes into the last text (same bubble), after a paragraph break.
            texts = [*texts[:-1], texts[-1] + "\n\n" + "\n".join(extra)] if texts else ["\n".join(extra)]

        quick_json = [self._quick_reply(q) for q in quick]
        if (quick_json or template_buttons) and not texts:
            raise RenderError("suggestions and buttons need a text to go with")

        messages: list[JSON] = []
        if template_buttons:
            head, tail = split_tail(texts[-1], MAX_TEMPLATE_TEXT)
            for text in [*texts[:-1], head]:
                messages.extend({"text": chunk} for chunk in split_text(text, self._max_text))
            payload = {"template_type": "button", "text": tail, "buttons": template_buttons}
            messages.append({"attachment": {"type": "template", "payload": payload}})
        else:
            for text in texts:
                messages.extend({"text": chunk} for chunk in split_text(text, self._max_text))
        if quick_json and messages:
            messages[-1]["quick_replies"] = quick_json

        requests: list[SendRequest] = []
        for seq, message in enumerate(messages):
            key = request_key(outbound, seq)
            message["metadata"] = key
            body = {"recipient": {"id": outbound.user_id}, "messaging_type": RESPONSE, "message": message}
            if outbound.tag:
                body["messaging_type"] = MESSAGE_TAG
                body["tag"] = outbound.tag
            requests.append(self._request(outbound, seq, body))
        return requests

    @staticmethod
    def _request(
        outbound: OutboundMessage, seq: int, body: JSON, *, best_effort: bool = False
    ) -> SendRequest:
        return SendRequest(
            channel=Channel.MESSENGER,
            method="POST",
            path=SEND_PATH,
            body=body,
            key=request_key(outbound, seq),
            sequence=seq,
            best_effort=best_effort,
            user_id=outbound.user_id,
        )

    @staticmethod
    def _quick_reply(option: QuickReply) -> JSON:
        if len(option.payload) > MAX_PAYLOAD:
            raise RenderError(f"a quick reply payload is longer than {MAX_PAYLOAD} characters")
        if not option.payload:
            raise RenderError("a quick reply needs a payload")
        return {
            "content_type": "text",
            "title": shorten(option.title, MAX_QUICK_REPLY_TITLE),
            "payload": option.payload,
        }

    @staticmethod
    def _url_button(button: LinkButton) -> JSON:
        return {
            "type": "web_url",
            "title": shorten(button.title, MAX_BUTTON_TITLE),
            "url": button.url,
            "webview_height_ratio": "tall",
            "webview_share_button": "hide",
        }

    def classify_error(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any] | None,
        headers: Mapping[str, str] | None = None,
    ) -> SendOutcome:
        return meta.classify_graph_response(status, body, headers)


# --- handover (thread control) ----------------------------------------------------------------------


def is_control_path(path: str) -> bool:
    """True for a thread-control call (not a message: no messaging window, no typing, no echo)."""
    return path.endswith("_thread_control")


def _control(path: str, body: JSON, key: str) -> SendRequest:
    metadata = body.get("metadata")
    if isinstance(metadata, str) and len(metadata) > MAX_HANDOVER_METADATA:
        raise RenderError(f"handover metadata is longer than {MAX_HANDOVER_METADATA} characters")
    if not body["recipient"]["id"]:
        raise RenderError("no recipient")
    user_id = str(body["recipient"]["id"])
    return SendRequest(Channel.MESSENGER, "POST", path, body, key, user_id=user_id)


def pass_thread_control(psid: str, target_app_id: str, metadata: str, key: str) -> SendRequest:
    """``POST /me/pass_thread_control``: give the thread to ``target_app_id`` (e.g. the Page Inbox)."""
    if not target_app_id:
        raise RenderError("pass_thread_control needs a target app id")
    body: JSON = {"recipient": {"id": psid}, "target_app_id": target_app_id, "metadata": metadata}
    return _control(PASS_THREAD_CONTROL_PATH, body, key)


def take_thread_control(psid: str, metadata: str, key: str) -> SendRequest:
    """``POST /me/take_thread_control``: take the thread back from the app that owns it."""
    body: JSON = {"recipient": {"id": psid}, "metadata": metadata}
    return _control(TAKE_THREAD_CONTROL_PATH, body, key)
