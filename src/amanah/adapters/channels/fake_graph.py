"""A local fake of the Messenger and WhatsApp Send APIs, for tests, demos and the benchmark.

Endpoints (``{version}`` is anything, e.g. ``v23.0``):

* ``POST /{version}/me/messages`` and ``POST /{version}/{id}/messages``: the Send APIs. A body with
  ``messaging_product: "whatsapp"`` is a WhatsApp call, anything else a Messenger call. The access
  token is taken from ``Authorization: Bearer`` or the ``access_token`` query parameter. Bodies are
  validated like the real APIs (missing recipient, bad ``messaging_type``, text over 2,000 / 4,096,
  more than 13 quick replies, more than 3 buttons, ...) and errors use Graph's shape
  ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``.
* ``POST /{version}/me/pass_thread_control`` (``recipient``, ``target_app_id``, ``metadata``?) and
  ``POST /{version}/me/take_thread_control`` / ``request_thread_control`` (``recipient``,
  ``metadata``?): the handover protocol. Validated like the real API (recipient and target app id
  required, ``metadata`` at most 1,000 characters); the answer is ``{"success": true}``.
* ``POST /_fake/faults`` ``{"mode", "count": 1, "channel"?, "recipient"?, "path"?, "delay_s"?,
  "regain_minutes"?}`` queues ``count`` failures (see :data:`FAULT_MODES`; ``path``: only calls whose
  path contains it, e.g. ``pass_thread_control``); ``GET`` lists them,
  ``DELETE`` clears them. ``timeout`` sleeps ``delay_s`` (default 30 s, longer than any client
  timeout) and then *does* deliver - like a real request that timed out after being sent.
* ``GET /_fake/calls`` (``?channel=``, ``?since=<seq>``) lists recorded calls, ``DELETE`` clears
  them; ``POST /_fake/flush`` flushes the JSONL file.

With an :class:`EchoTarget` the fake also behaves like Meta's ``message_echoes`` subscription: each
accepted Messenger message is posted back, signed, to the bot's webhook (``is_echo``, ``app_id``,
``metadata``), retried while the bot is down.

Every call is recorded in memory (the last 200,000) and, with ``record_path``, appended to a JSON
Lines file (buffered; flushed every 0.25 s, on ``/_fake/flush``, ``GET /_fake/calls`` and shutdown).
The access token itself is never recorded: only how it was sent (``bearer`` / ``query`` / ``none``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from amanah.adapters.channels.textsplit import utf16_len

MESSENGER = "messenger"
WHATSAPP = "whatsapp"
MAX_RECORDS = 200_000
FLUSH_EVERY_S = 0.25


@dataclass(frozen=True, slots=True)
class FaultSpec:
    status: int
    code: int
    subcode: int | None
    message: str


# mode -> channel -> the error the real API would answer.
FAULT_MODES: Mapping[str, Mapping[str, FaultSpec]] = {
    "rate_limit": {
        MESSENGER: FaultSpec(400, 613, None, "(#613) Calls to this API have exceeded the rate limit."),
        WHATSAPP: FaultSpec(400, 130429, None, "(#130429) Rate limit hit"),
    },
    "app_rate_limit": {
        MESSENGER: FaultSpec(400, 4, None, "(#4) Application request limit reached"),
        WHATSAPP: FaultSpec(400, 4, None, "(#4) Application request limit reached"),
    },
    "pair_rate_limit": {
        MESSENGER: FaultSpec(400, 613, None, "(#613) Calls to this API have exceeded the rate limit."),
        WHATSAPP: FaultSpec(
            400, 131056, None, "(#131056) (Business Account, Consumer Account) pair rate limit hit"
        ),
    },
    "5xx": {
        MESSENGER: FaultSpec(
            500, 2, None, "An unexpected error has occurred. Please retry your request later."
        ),
        WHATSAPP: FaultSpec(
            500, 2, None, "An unexpected error has occurred. Please retry your request later."
        ),
    },
    "transient": {
        MESSENGER: FaultSpec(
            400, 1200, None, "(#1200) Temporary send message failure. Please try again later"
        ),
        WHATSAPP: FaultSpec(400, 131000, None, "(#131000) Something went wrong"),
    },
    "permanent_551": {
        MESSENGER: FaultSpec(400, 551, 1545041, "(#551) This person isn't available right now."),
        WHATSAPP: FaultSpec(400, 131026, None, "(#131026) Message undeliverable"),
    },
    "window_closed": {
        MESSENGER: FaultSpec(400, 10, 2018278, "(#10) This message is sent outside of allowed window."),
        WHATSAPP: FaultSpec(
            400, 131047, None, "(#131047) Re-engagement message: more than 24 hours have passed"
        ),
    },
    "bad_token": {
        MESSENGER: FaultSpec(400, 190, 463, "Error validating access token: Session has expired."),
        WHATSAPP: FaultSpec(400, 190, 463, "Error validating access token: Session has expired."),
    },
    "invalid_param": {
        MESSENGER: FaultSpec(400, 100, None, "(#100) Invalid parameter"),
        WHATSAPP: FaultSpec(400, 100, None, "(#100) Invalid parameter"),
    },
    "no_user": {
        MESSENGER: FaultSpec(400, 100, 2018001, "(#100) No matching user found"),
        WHATSAPP: FaultSpec(400, 131026, None, "(#131026) Message undeliverable"),
    },
    "undeliverable": {
        MESSENGER: FaultSpec(400, 551, 1545041, "(#551) This person isn't available right now."),
        WHATSAPP: FaultSpec(400, 131026, None, "(#131026) Message undeliverable"),
    },
    "bad_gateway": {  # a proxy error page, not JSON
        MESSENGER: FaultSpec(502, 0, None, "<html><body>502 Bad Gateway</body></html>"),
        WHATSAPP: FaultSpec(502, 0, None, "<html><body>502 Bad Gateway</body></html>"),
    },
    "timeout": {},  # sleeps, then answers normally
}


@dataclass(slots=True)
class Fault:
    mode: str
    remaining: int
    channel: str | None = None
    recipient: str | None = None
    delay_s: float = 30.0
    regain_minutes: int | None = None
    path: str | None = None

    def matches(self, channel: str, recipient: str | None, path: str = "") -> bool:
        return (
            (self.channel is None or self.channel == channel)
            and (self.recipient is None or self.recipient == recipient)
            and (self.path is None or self.path in path)
        )


class _ApiError(Exception):
    def __init__(
        self, code: int, message: str, subcode: int | None = None, details: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.subcode = subcode
        self.details = details


@dataclass(frozen=True, slots=True)
class EchoTarget:
    """Where the fake posts ``message_echoes`` for the Messenger messages it accepts (like Meta)."""

    url: str  # the bot's webhook, e.g. http://127.0.0.1:8000/webhooks/messenger
    app_secret: str  # signs X-Hub-Signature-256
    page_id: str = "1000000000000001"
    app_id: str = "555000111"
    attempts: int = 40  # retried with backoff (0.1 s doubling to 2 s) while the bot is down


class FakeGraphState:
    """The fake's memory: queued faults, recorded calls, id counters, the JSONL recorder."""

    def __init__(
        self,
        record_path: Path | None,
        access_token: str | None,
        app_secret: str | None,
        echo: EchoTarget | None = None,
    ) -> None:
        self.echo = echo
        self.echoes_delivered = 0
        self.echoes_failed = 0
        self._echo_tasks: set[asyncio.Task[None]] = set()
        self._echo_client: Any = None
        self.record_path = record_path
        self.access_token = access_token
        self.app_secret = app_secret
        self.faults: list[Fault] = []
        self.calls: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._fh: IO[str] | None = None
        self._last_flush = time.monotonic()

    def next_id(self) -> int:
        return next(self._ids)

    def schedule_echo(self, recipient: str, mid: str, message: object) -> None:
        """Post a signed echo of an accepted Messenger message to the bot's webhook (if configured)."""
        if self.echo is None or not isinstance(message, dict):
            return
        target = self.echo
        ts = int(time.time() * 1000)
        echoed: dict[str, Any] = {"mid": mid, "is_echo": True, "app_id": target.app_id}
        for key in ("text", "metadata", "attachment", "quick_replies"):
            if key in message:
                echoed[key] = message[key]
        item = {
            "sender": {"id": target.page_id},
            "recipient": {"id": recipient},
            "timestamp": ts,
            "message": echoed,
        }
        doc = {"object": "page", "entry": [{"id": target.page_id, "time": ts, "messaging": [item]}]}
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        task = asyncio.get_running_loop().create_task(self._post_echo(target, body))
        self._echo_tasks.add(task)
        task.add_done_callback(self._echo_tasks.discard)

    async def _post_echo(self, target: EchoTarget, body: bytes) -> None:
        import httpx

        if self._echo_client is None:
            self._echo_client = httpx.AsyncClient(timeout=5.0)
        signature = "sha256=" + hmac.new(target.app_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
        delay = 0.1
        for _ in range(target.attempts):
            try:
                response = await self._echo_client.post(target.url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    self.echoes_delivered += 1
                    return
                if response.status_code < 500 and response.status_code != 429:
                    break  # refused (bad signature, malformed): retrying will not help
            except httpx.HTTPError:
                pass  # the bot is down: retry, as Meta does
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        self.echoes_failed += 1

    async def aclose(self) -> None:
        for task in list(self._echo_tasks):
            task.cancel()
        if self._echo_client is not None:
            await self._echo_client.aclose()
            self._echo_client = None

    def take_fault(self, channel: str, recipient: str | None, path: str = "") -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.matches(channel, recipient, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[i]
                return fault
        return None

    def record(self, entry: dict[str, Any]) -> None:
        entry["seq"] = next(self._seq)
        self.calls.append(entry)
        if self.record_path is None:
            return
        if self._fh is None:
            self._fh = self.record_path.open("a", encoding="utf-8", buffering=1 << 16)
        self._fh.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if now - self._last_flush >= FLUSH_EVERY_S:
            self._fh.flush()
            self._last_flush = now

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# --- validation -----------------------------------------------------------------------------------

_MESSAGING_TYPES = frozenset({"RESPONSE", "UPDATE", "MESSAGE_TAG"})
_SENDER_ACTIONS = frozenset({"typing_on", "typing_off", "mark_seen", "react", "unreact"})
_QR_TYPES = frozenset({"text", "user_phone_number", "user_email"})
_BUTTON_TYPES = frozenset(
    {"web_url", "postback", "phone_number", "account_link", "account_unlink", "game_play"}
)


def _check_len(value: object, limit: int, name: str, code: int = 100) -> None:
    if isinstance(value, str) and utf16_len(value) > limit:
        raise _ApiError(code, f"(#{code}) Length of param {name} must be less than or equal to {limit}")


def validate_messenger(body: Mapping[str, Any]) -> None:
    """Raise the error the Send API would answer for ``body``; return quietly if it is valid."""
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not any(
        recipient.get(k) for k in ("id", "user_ref", "phone_number", "notification_messages_token")
    ):
        raise _ApiError(100, "(#100) The parameter recipient is required")
    message, action = body.get("message"), body.get("sender_action")
    if message is None and action is None:
        raise _ApiError(100, "(#100) Must send either message or sender_action")
    if message is not None and action is not None:
        raise _ApiError(100, "(#100) Cannot send both message and sender_action in the same request")
    if action is not None:
        if action not in _SENDER_ACTIONS:
            raise _ApiError(
                100, "(#100) Param sender_action must be one of {TYPING_ON, TYPING_OFF, MARK_SEEN}"
            )
        return
    messaging_type = body.get("messaging_type")
    if messaging_type not in _MESSAGING_TYPES:
        raise _ApiError(100, "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}")
    if messaging_type == "MESSAGE_TAG" and not body.get("tag"):
        raise _ApiError(100, "(#100) Param tag is required for messaging_type MESSAGE_TAG")
    if not isinstance(message, dict):
        raise _ApiError(100, "(#100) Param message must be a JSON object")
    text, attachment = message.get("text"), message.get("attachment")
    if (text is None) == (attachment is None):
        raise _ApiError(100, "(#100) Param message must contain exactly one of text or attachment")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(100, "(#100) Param message[text] must be a non-empty UTF-8 encoded string")
        _check_len(text, 2000, "message[text]")
    _check_len(message.get("metadata"), 1000, "message[metadata]")
    quick_replies = message.get("quick_replies")
    if quick_replies is not None:
        if not isinstance(quick_replies, list) or not quick_replies:
            raise _ApiError(100, "(#100) param message[quick_replies] must be a non-empty array")
        if len(quick_replies) > 13:
            raise _ApiError(105, "(#105) param message[quick_replies] has too many elements")
        for qr in quick_replies:
            if not isinstance(qr, dict) or qr.get("content_type") not in _QR_TYPES:
                raise _ApiError(100, "(#100) param message[quick_replies][content_type] is invalid")
            if qr["content_type"] == "text":
                if not qr.get("title") or not qr.get("payload"):
                    raise _ApiError(100, "(#100) Text quick replies need a title and a payload")
                _check_len(qr.get("payload"), 1000, "message[quick_replies][payload]")
                # Titles longer than 20 characters are truncated by Messenger, not refused.
    if attachment is not None:
        _validate_attachment(attachment)


HANDOVER_OPS = frozenset({"pass_thread_control", "take_thread_control", "request_thread_control"})


def validate_handover(operation: str, body: Mapping[str, Any]) -> None:
    """Raise the error the handover API would answer for ``body``; return quietly if it is valid."""
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not recipient.get("id"):
        raise _ApiError(100, "(#100) The parameter recipient is required")
    if operation == "pass_thread_control":
        target = body.get("target_app_id")
        if target is None or target == "":
            raise _ApiError(100, "(#100) The parameter target_app_id is required")
        if isinstance(target, bool) or not str(target).isdigit():
            raise _ApiError(100, "(#100) Param target_app_id must be a valid app id")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, str):
        raise _ApiError(100, "(#100) Param metadata must be a string")
    _check_len(metadata, 1000, "metadata")


def _validate_attachment(attachment: object) -> None:
    if not isinstance(attachment, dict) or not attachment.get("type"):
        raise _ApiError(100, "(#100) param message[attachment][type] is required")
    if attachment["type"] != "template":
        return
    payload = attachment.get("payload")
    if not isinstance(payload, dict):
        raise _ApiError(100, "(#100) param message[attachment][payload] is required")
    if payload.get("template_type") != "button":
        return  # generic, media... templates are accepted as-is
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _ApiError(100, "(#100) param message[attachment][payload][text] is required")
    _check_len(text, 640, "message[attachment][payload][text]")
    buttons = payload.get("buttons")
    if not isinstance(buttons, list) or not buttons:
        raise _ApiError(100, "(#100) param message[attachment][payload][buttons] must be a non-empty array")
    if len(buttons) > 3:
        raise _ApiError(105, "(#105) param message[attachment][payload][buttons] has too many elements")
    for button in buttons:
        if not isinstance(button, dict) or button.get("type") not in _BUTTON_TYPES:
            raise _ApiError(100, "(#100) param [buttons][type] is invalid")
        kind = button["type"]
        if kind in ("web_url", "account_link") and not button.get("url"):
            raise _ApiError(100, "(#100) param [buttons][url] is required")
        if kind == "account_link" and not str(button["url"]).startswith("https://"):
            raise _ApiError(100, "(#100) param [buttons][url] must be an https URL for account_link")
        if kind in ("web_url", "postback", "phone_number"):
            if not button.get("title"):
                raise _ApiError(100, "(#100) param [buttons][title] is required")
            _check_len(button.get("title"), 20, "[buttons][title]")
        if kind == "postback":
            _check_len(button.get("payload"), 1000, "[buttons][payload]")


def _wa_invalid(details: str) -> _ApiError:
    return _ApiError(131009, "(#131009) Parameter value is not valid", details=details)


def validate_whatsapp(body: Mapping[str, Any]) -> None:
    """Raise the error the Cloud API would answer for ``body``; return quietly if it is valid."""
    if body.get("messaging_product") != "whatsapp":
        raise _ApiError(100, "(#100) The parameter messaging_product is required.")
    if body.get("status") == "read":
        if not body.get("message_id"):
            raise _ApiError(100, "(#100) The parameter message_id is required.")
        return
    if not body.get("to"):
        raise _ApiError(100, "(#100) The parameter to is required.")
    kind = body.get("type", "text")
    if kind == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"].strip():
            raise _ApiError(100, "(#100) The parameter text['body'] is required.")
        if utf16_len(text["body"]) > 4096:
            raise _ApiError(100, "(#100) Param text['body'] must be at most 4096 characters long.")
        return
    if kind == "interactive":
        _validate_interactive(body.get("interactive"))
        return
    if kind in (
        "template",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
    ):
        if not isinstance(body.get(kind), dict):
            raise _ApiError(100, f"(#100) The parameter {kind} is required.")
        return
    raise _ApiError(100, f"(#100) Param type must be a supported message type, got {kind!r}")


def _validate_interactive(interactive: object) -> None:
    if not isinstance(interactive, dict):
        raise _ApiError(131008, "(#131008) Required parameter is missing", details="interactive is required")
    body = interactive.get("body")
    body_text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(body_text, str) or not body_text.strip():
        raise _ApiError(131008, "(#131008) Required parameter is missing", details="interactive.body.text")
    if utf16_len(body_text) > 1024:
        raise _wa_invalid("interactive.body.text is longer than 1024 characters")
    action = interactive.get("action")
    if not isinstance(action, dict):
        raise _ApiError(131008, "(#131008) Required parameter is missing", details="interactive.action")
    kind = interactive.get("type")
    if kind == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            raise _wa_invalid("action.buttons must have 1 to 3 buttons")
        ids: set[str] = set()
        for button in buttons:
            reply = button.get("reply") if isinstance(button, dict) else None
            if not isinstance(reply, dict) or not reply.get("id") or not reply.get("title"):
                raise _wa_invalid("each button needs reply.id and reply.title")
            if utf16_len(str(reply["title"])) > 20:
                raise _wa_invalid("button title is longer than 20 characters")
            if len(str(reply["id"])) > 256:
                raise _wa_invalid("button id is longer than 256 characters")
            if reply["id"] in ids:
                raise _wa_invalid("button ids must be unique")
            ids.add(str(reply["id"]))
        return
    if kind == "list":
        label = action.get("button")
        if not isinstance(label, str) or not label or utf16_len(label) > 20:
            raise _wa_invalid("action.button must be 1 to 20 characters")
        sections = action.get("sections")
        if not isinstance(sections, list) or not sections:
            raise _wa_invalid("action.sections is required")
        rows = [row for section in sections if isinstance(section, dict) for row in section.get("rows", [])]
        if not 1 <= len(rows) <= 10:
            raise _wa_invalid("a list message has 1 to 10 rows")
        for row in rows:
            if not isinstance(row, dict) or not row.get("id") or not row.get("title"):
                raise _wa_invalid("each row needs an id and a title")
            if utf16_len(str(row["title"])) > 24:
                raise _wa_invalid("row title is longer than 24 characters")
            if len(str(row["id"])) > 200:
                raise _wa_invalid("row id is longer than 200 characters")
        return
    if kind == "cta_url":
        params = action.get("parameters")
        if action.get("name") != "cta_url" or not isinstance(params, dict):
            raise _wa_invalid("action.name must be cta_url with parameters")
        display = params.get("display_text")
        if not isinstance(display, str) or not display or utf16_len(display) > 20:
            raise _wa_invalid("display_text must be 1 to 20 characters")
        if not isinstance(params.get("url"), str) or not params["url"].startswith(("https://", "http://")):
            raise _wa_invalid("url must be an http(s) URL")
        return
    raise _wa_invalid(f"unsupported interactive type {kind!r}")


# --- handlers -------------------------------------------------------------------------------------


def _error_body(state: FakeGraphState, err: _ApiError, channel: str) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": err.message,
        "type": "OAuthException",
        "code": err.code,
        "fbtrace_id": f"FakeTrace{state.next_id():08d}",
    }
    if err.subcode is not None:
        error["error_subcode"] = err.subcode
    if channel == WHATSAPP:
        error["error_data"] = {"messaging_product": "whatsapp", "details": err.details or err.message}
    if err.code in (1, 2, 1200, 613, 4, 32, 130429, 131000):
        error["is_transient"] = True
    return {"error": error}


@dataclass(slots=True)
class _Answer:
    status: int
    payload: dict[str, Any] | str  # str: a non-JSON (HTML) body
    headers: dict[str, str] | None = None


def _token_from(headers: Mapping[str, str], query: Mapping[str, str]) -> tuple[str | None, str]:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), "bearer"
    token = query.get("access_token")
    if token:
        return token, "query"
    return None, "none"


async def handle_send(
    state: FakeGraphState, path: str, raw: bytes, headers: Mapping[str, str], query: Mapping[str, str]
) -> _Answer:
    """One Send API call: authenticate, inject a queued fault, validate, answer; records the call."""
    token, auth = _token_from(headers, query)
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    body_dict: dict[str, Any] = body if isinstance(body, dict) else {}
    channel = WHATSAPP if body_dict.get("messaging_product") == "whatsapp" else MESSENGER
    if channel == WHATSAPP:
        recipient = body_dict.get("to")
    else:
        recipient_field = body_dict.get("recipient")
        recipient = recipient_field.get("id") if isinstance(recipient_field, dict) else None
    entry: dict[str, Any] = {
        "ts": time.time(),
        "channel": channel,
        "path": path,
        "auth": auth,
        "appsecret_proof": "appsecret_proof" in query,
        "recipient": recipient if isinstance(recipient, str) else None,
        "body": body if body is not None else raw.decode("utf-8", "replace"),
        "fault": None,
    }

    def answer(status: int, payload: dict[str, Any] | str, extra: dict[str, str] | None = None) -> _Answer:
        entry["status"] = status
        entry["response"] = payload
        state.record(entry)
        return _Answer(status, payload, extra)

    def fail(err: _ApiError) -> _Answer:
        return answer(400, _error_body(state, err, channel))

    if token is None:
        return fail(_ApiError(104, "An access token is required to request this resource."))
    if state.access_token is not None and not hmac.compare_digest(token, state.access_token):
        return fail(_ApiError(190, "Invalid OAuth access token - Cannot parse access token"))
    if state.app_secret is not None:
        proof = query.get("appsecret_proof", "")
        expected = hmac.new(state.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof, expected):
            return fail(_ApiError(100, "Invalid appsecret_proof provided in the API argument"))
    if not isinstance(body, dict):
        return fail(_ApiError(100, "(#100) The request body must be a JSON object"))

    fault = state.take_fault(channel, entry["recipient"], path)
    delay_s = 0.0
    if fault is not None:
        entry["fault"] = fault.mode
        if fault.mode == "timeout":
            # Processed (recorded, echoed) at once, answered only after the delay (longer than the
            # client's timeout): like a request that reached Meta and whose answer was lost.
            delay_s = fault.delay_s
        else:
            spec = FAULT_MODES[fault.mode][channel]
            if spec.code == 0:
                return answer(spec.status, spec.message)
            extra = None
            if fault.regain_minutes is not None:
                usage = {
                    "1000000000000001": [
                        {
                            "type": "messenger",
                            "call_count": 100,
                            "total_cputime": 10,
                            "total_time": 10,
                            "estimated_time_to_regain_access": fault.regain_minutes,
                        }
                    ]
                }
                extra = {"X-Business-Use-Case-Usage": json.dumps(usage)}
            err = _ApiError(spec.code, spec.message, spec.subcode)
            return answer(spec.status, _error_body(state, err, channel), extra)

    result = _deliver(state, body, channel, entry, answer, fail, path)
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    return result


def _deliver(
    state: FakeGraphState,
    body: dict[str, Any],
    channel: str,
    entry: dict[str, Any],
    answer: Callable[[int, dict[str, Any] | str], _Answer],
    fail: Callable[[_ApiError], _Answer],
    path: str = "",
) -> _Answer:
    """Validate a call that passed authentication and faults; answer it like the real API."""
    operation = path.rsplit("/", 1)[-1]
    if operation in HANDOVER_OPS:
        try:
            validate_handover(operation, body)
        except _ApiError as err:
            return fail(err)
        return answer(200, {"success": True})
    try:
        if channel == WHATSAPP:
            validate_whatsapp(body)
        else:
            validate_messenger(body)
    except _ApiError as err:
        return fail(err)

    n = state.next_id()
    if channel == WHATSAPP:
        if body.get("status") == "read":
            return answer(200, {"success": True})
        to = str(body["to"])
        return answer(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}],
                "messages": [{"id": f"wamid.FAKE{n:012d}"}],
            },
        )
    recipient_id = entry["recipient"] or ""
    if "sender_action" in body:
        return answer(200, {"recipient_id": recipient_id})
    mid = f"m_FAKE{n:012d}"
    state.schedule_echo(recipient_id, mid, body.get("message"))
    return answer(200, {"recipient_id": recipient_id, "message_id": mid})


def _is_send_path(path: str) -> bool:
    """``/{version}/me/messages``, ``/{version}/{id}/messages`` or ``/{version}/me/<handover op>``
    (never the ``/_fake`` control paths)."""
    parts = path.split("/")
    return (
        len(parts) == 4
        and (parts[3] == "messages" or (parts[2] == "me" and parts[3] in HANDOVER_OPS))
        and bool(parts[1])
        and bool(parts[2])
        and parts[1] != "_fake"
    )


class FakeGraphApp:
    """The ASGI app: Send API calls on a lean hot path, everything else (control, lifespan) via Starlette."""

    def __init__(self, state: FakeGraphState, control: Starlette) -> None:
        self.fake = state
        self.control = control
        self.state = control.state  # ``app.state.fake`` like any Starlette app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not _is_send_path(scope["path"]):
            await self.control(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query_string = scope.get("query_string", b"")
        query = dict(parse_qsl(query_string.decode("latin-1"))) if query_string else {}
        answer = await handle_send(self.fake, scope["path"], b"".join(chunks), headers, query)
        if isinstance(answer.payload, str):
            content, media = answer.payload.encode("utf-8"), b"text/html; charset=utf-8"
        else:
            content = json.dumps(answer.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            media = b"application/json"
        raw_headers = [(b"content-type", media), (b"content-length", str(len(content)).encode())]
        for key, value in (answer.headers or {}).items():
            raw_headers.append((key.lower().encode("latin-1"), value.encode("latin-1")))
        await send({"type": "http.response.start", "status": answer.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})


async def _faults(request: Request) -> Response:
    state: FakeGraphState = request.app.state.fake
    if request.method == "DELETE":
        state.faults.clear()
        return JSONResponse({"faults": []})
    if request.method == "POST":
        try:
            spec = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            spec = None
        if not isinstance(spec, dict) or spec.get("mode") not in FAULT_MODES:
            return JSONResponse(
                {"error": {"message": "mode must be one of " + ", ".join(sorted(FAULT_MODES))}},
                status_code=400,
            )
        try:
            fault = Fault(
                mode=str(spec["mode"]),
                remaining=int(spec.get("count", 1)),
                channel=spec.get("channel"),
                recipient=spec.get("recipient"),
                delay_s=float(spec.get("delay_s", 30.0)),
                regain_minutes=int(spec["regain_minutes"])
                if spec.get("regain_minutes") is not None
                else None,
                path=str(spec["path"]) if spec.get("path") is not None else None,
            )
        except (TypeError, ValueError):
            return JSONResponse({"error": {"message": "count, delay_s, regain_minutes must be numbers"}}, 400)
        if fault.remaining < 1 or fault.channel not in (None, MESSENGER, WHATSAPP):
            return JSONResponse({"error": {"message": "count must be >= 1; channel messenger|whatsapp"}}, 400)
        state.faults.append(fault)
    return JSONResponse({"faults": [asdict(f) for f in state.faults]})


async def _calls(request: Request) -> Response:
    state: FakeGraphState = request.app.state.fake
    if request.method == "DELETE":
        state.calls.clear()
        return JSONResponse({"count": 0, "calls": []})
    state.flush()
    channel = request.query_params.get("channel")
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError:
        since = 0
    calls = [c for c in state.calls if c["seq"] > since and (channel is None or c["channel"] == channel)]
    return JSONResponse({"count": len(calls), "calls": calls})


async def _flush(request: Request) -> Response:
    state: FakeGraphState = request.app.state.fake
    state.flush()
    return JSONResponse({"flushed": True})


def create_fake_graph_app(
    record_path: Path | None = None,
    *,
    access_token: str | None = None,
    app_secret: str | None = None,
    echo: EchoTarget | None = None,
) -> FakeGraphApp:
    """The fake Graph ASGI app. With ``access_token`` any other token gets error 190; with
    ``app_secret`` a correct ``appsecret_proof`` query parameter is required; with ``echo`` every
    accepted Messenger message is echoed to the bot's webhook. ``app.state.fake``
    is the :class:`FakeGraphState` (in-process tests may read it directly)."""
    state = FakeGraphState(record_path, access_token, app_secret, echo)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def flusher() -> None:
            while True:
                await asyncio.sleep(FLUSH_EVERY_S)
                state.flush()

        task = asyncio.create_task(flusher())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await state.aclose()
            state.close()

    app = Starlette(
        routes=[
            Route("/_fake/faults", _faults, methods=["GET", "POST", "DELETE"]),
            Route("/_fake/calls", _calls, methods=["GET", "DELETE"]),
            Route("/_fake/flush", _flush, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.fake = state
    return FakeGraphApp(state, app)


def serve_fake_graph(
    host: str = "127.0.0.1",
    port: int = 9100,
    record_path: Path | None = None,
    *,
    access_token: str | None = None,
    app_secret: str | None = None,
    echo: EchoTarget | None = None,
) -> None:
    """Run the fake with uvicorn until interrupted (``amanah fake-graph --port 9100 [--record F]``)."""
    import uvicorn

    app = create_fake_graph_app(record_path, access_token=access_token, app_secret=app_secret, echo=echo)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
