"""What Messenger and WhatsApp share: Meta's webhook handshake and signature, and Graph API errors.

Signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>``. Only the literal
lowercase ``sha256=`` prefix is accepted (never the legacy ``sha1=`` header, never an algorithm taken
from the header); the digest must be 64 hex characters - uppercase hex is accepted because it is the
same MAC value. The comparison is constant-time. With no (non-empty) app secret configured,
everything is rejected.

Rotation (:class:`AppSecrets`): the current app secret, and the previous one until an optional
deadline. A signature is checked against both (each in constant time, no early exit); one that only
the previous secret verifies is accepted while the window is open, logged and counted in
``amanah_app_secret_previous_used_total`` so operators see when the rotation is over. Outgoing
``appsecret_proof`` always uses the current secret.

Messenger Extensions ``signed_request`` (:func:`verify_signed_request`): what
``MessengerExtensions.getContext`` gives a webview page, ``base64url(HMAC-SHA256(app_secret,
payload_b64)) + "." + payload_b64``. The MAC is checked before the payload is decoded.

Errors: classified on the Graph ``code`` / ``error_subcode``, never on the HTTP status alone (Graph
answers most errors, throttling included, with 400). :data:`GRAPH_ERROR_POLICY` is the one table.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from prometheus_client import Counter

from amanah.adapters.channels.base import ErrorAction, OutcomeKind, SendOutcome
from amanah.domain.errors import ValidationError

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX = frozenset("0123456789abcdefABCDEF")


def verify_hub_handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to echo when ``hub.mode`` is ``subscribe`` and the token matches, else None."""
    if not verify_token:
        return None
    if params.get("hub.mode") != "subscribe":
        return None
    given = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if given is None or challenge is None:
        return None
    if not hmac.compare_digest(given.encode("utf-8"), verify_token.encode("utf-8")):
        return None
    return challenge


def hub_signature(raw_body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta would send for ``raw_body`` (for tests and the fake)."""
    digest = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def _hub_mac(header: str | None) -> bytes | None:
    """The 32-byte MAC an ``X-Hub-Signature-256`` header carries, or None if it is not well formed."""
    if not header or not header.startswith(_PREFIX):
        return None
    given_hex = header[len(_PREFIX) :]
    if len(given_hex) != 64 or not _HEX.issuperset(given_hex):
        return None
    return bytes.fromhex(given_hex)


def verify_hub_signature(raw_body: bytes, header: str | None, app_secrets: Iterable[str]) -> bool:
    """True when ``header`` is a valid SHA-256 signature of ``raw_body`` under one of the secrets."""
    given = _hub_mac(header)
    if given is None:
        return False
    return _match(given, raw_body, [(s, SecretMatch.CURRENT) for s in app_secrets]) is not None


# --- app secret rotation --------------------------------------------------------------------------


class SecretMatch(StrEnum):
    """Which app secret verified a signature."""

    CURRENT = "current"
    PREVIOUS = "previous"


@dataclass(frozen=True, slots=True)
class AppSecrets:
    """A channel's app secret, and during a rotation the previous one (until ``previous_until``).

    ``previous_until`` must be timezone-aware; None means "until it is removed from the configuration".
    Secrets are kept out of ``repr``.
    """

    current: str = field(repr=False)
    previous: str = field(default="", repr=False)
    previous_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.previous_until is not None and self.previous_until.utcoffset() is None:
            raise ValueError("previous_until must be a timezone-aware datetime")

    @classmethod
    def of(cls, value: AppSecrets | str | Iterable[str]) -> AppSecrets:
        """``value`` as :class:`AppSecrets`: a single secret, or ``[current, previous]`` (no deadline)."""
        if isinstance(value, AppSecrets):
            return value
        if isinstance(value, str):
            return cls(value)
        secrets = [s for s in value if s]
        if len(secrets) > 2:
            raise ValueError("at most two app secrets: the current one and the previous one")
        return cls(secrets[0], secrets[1] if len(secrets) > 1 else "") if secrets else cls("")

    @property
    def configured(self) -> bool:
        return bool(self.current)

    def previous_open(self, now: datetime) -> bool:
        """True while the previous secret is still accepted at ``now``."""
        if not self.previous or self.previous == self.current:
            return False
        return self.previous_until is None or now < self.previous_until

    def candidates(self, now: datetime) -> list[tuple[str, SecretMatch]]:
        """The secrets a signature may be made with at ``now``, current first (none without a current
        secret: a previous one alone never turns a channel on)."""
        if not self.current:
            return []
        found = [(self.current, SecretMatch.CURRENT)]
        if self.previous_open(now):
            found.append((self.previous, SecretMatch.PREVIOUS))
        return found

    def describe(self, now: datetime) -> str:
        """The rotation state in words, for the start-up log (never a secret)."""
        if not self.previous or self.previous == self.current:
            return "no previous app secret"
        if self.previous_until is None:
            return "the previous app secret is accepted until it is removed from the configuration"
        if now >= self.previous_until:
            return f"the previous app secret expired at {self.previous_until.isoformat()}; remove it"
        return f"the previous app secret is accepted until {self.previous_until.isoformat()}"


APP_SECRET_PREVIOUS_USED = Counter(
    "amanah_app_secret_previous_used_total",
    "Requests authenticated with the previous app secret during a rotation",
    ["channel", "use"],
)


def note_previous_secret(channel: str, use: str) -> None:
    """Log and count a request accepted on the previous app secret (``use``: webhook, signed_request)."""
    APP_SECRET_PREVIOUS_USED.labels(channel, use).inc()
    log.info(
        "%s %s accepted on the previous app secret: rotation still in progress at the platform",
        channel,
        use,
    )


def _match(given: bytes, message: bytes, candidates: Iterable[tuple[str, SecretMatch]]) -> SecretMatch | None:
    """Which candidate secret's HMAC-SHA256 of ``message`` equals ``given``.

    No early exit: every candidate is computed and compared in constant time.
    """
    found: SecretMatch | None = None
    for secret, which in candidates:
        if not secret:
            continue
        expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
        if hmac.compare_digest(expected, given) and found is None:
            found = which
    return found


def match_hub_signature(
    raw_body: bytes, header: str | None, secrets: AppSecrets, now: datetime
) -> SecretMatch | None:
    """Which secret ``header`` is a valid ``X-Hub-Signature-256`` of ``raw_body`` under, at ``now``.

    The previous secret counts only while its window is open; None if no accepted secret verifies.
    """
    given = _hub_mac(header)
    if given is None:
        return None
    return _match(given, raw_body, secrets.candidates(now))


# --- Messenger Extensions signed_request ----------------------------------------------------------

SIGNED_REQUEST_ALGORITHM = "HMAC-SHA256"
SIGNED_REQUEST_MAX_AGE_S = 300  # getContext runs when the page opens: 5 minutes is plenty
SIGNED_REQUEST_MAX_SKEW_S = 60  # issued_at may be this far in our future (clock skew)
MAX_SIGNED_REQUEST = 4096
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_PSID_RE = re.compile(r"[A-Za-z0-9_:-]{1,200}")


class SignedRequestError(ValidationError):
    """A ``signed_request`` that must be refused. ``reason`` is one of :data:`SIGNED_REQUEST_REASONS`.

    ``malformed`` is bad input (HTTP 400); every other reason is a failed verification (403).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def status(self) -> int:
        return 400 if self.reason == "malformed" else 403


SIGNED_REQUEST_REASONS = ("malformed", "bad_signature", "algorithm", "stale", "future", "wrong_page")


@dataclass(frozen=True, slots=True)
class MessengerContext:
    """The verified payload of a Messenger Extensions ``signed_request``."""

    psid: str
    page_id: str
    thread_type: str
    tid: str
    issued_at: datetime
    secret: SecretMatch  # which app secret verified it


def _b64url_decode(text: str) -> bytes:
    """base64url with or without ``=`` padding; SignedRequestError on anything else."""
    if not _B64URL_RE.fullmatch(text):
        raise SignedRequestError("malformed", "signed_request is not base64url")
    bare = text.rstrip("=")
    if len(bare) % 4 == 1:
        raise SignedRequestError("malformed", "signed_request has a truncated base64url part")
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the pattern rules these out
        raise SignedRequestError("malformed", "signed_request is not base64url") from exc


def sign_request(payload: Mapping[str, Any], app_secret: str) -> str:
    """A ``signed_request`` for ``payload`` as Meta makes it (for tests and the fake)."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    payload_b64 = base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")
    mac = hmac.new(app_secret.encode("utf-8"), payload_b64.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=") + "." + payload_b64


def verify_signed_request(
    signed_request: object,
    app_secrets: AppSecrets | str | Iterable[str],
    *,
    now: datetime,
    max_age_s: int = SIGNED_REQUEST_MAX_AGE_S,
    max_skew_s: int = SIGNED_REQUEST_MAX_SKEW_S,
    page_id: str = "",
) -> MessengerContext:
    """The payload of a Messenger Extensions ``signed_request``, or :class:`SignedRequestError`.

    Checks, in order: shape (``<mac>.<payload>``, base64url with or without padding, at most
    :data:`MAX_SIGNED_REQUEST` characters); the MAC over the payload part exactly as received, against
    the current app secret and the previous one while its window is open (constant time, before the
    payload is decoded); ``algorithm == "HMAC-SHA256"``; ``issued_at`` at most ``max_age_s`` old and
    at most ``max_skew_s`` in the future; a PSID; and ``page_id`` when one is configured.
    """
    secrets = AppSecrets.of(app_secrets)
    if (
        not isinstance(signed_request, str)
        or not signed_request
        or len(signed_request) > MAX_SIGNED_REQUEST
        or not signed_request.isascii()
        or signed_request.count(".") != 1
    ):
        raise SignedRequestError("malformed", "signed_request is missing or malformed")
    mac_b64, payload_b64 = signed_request.split(".")
    given = _b64url_decode(mac_b64)
    if len(given) != hashlib.sha256().digest_size or not payload_b64:
        raise SignedRequestError("malformed", "signed_request is malformed")
    _b64url_decode(payload_b64)  # shape only: nothing is interpreted before the MAC verifies
    which = _match(given, payload_b64.encode("ascii"), secrets.candidates(now))
    if which is None:
        raise SignedRequestError("bad_signature", "signed_request does not verify")
    try:
        doc = json.loads(_b64url_decode(payload_b64))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignedRequestError("malformed", "signed_request payload is not JSON") from exc
    if not isinstance(doc, dict):
        raise SignedRequestError("malformed", "signed_request payload is not a JSON object")
    if doc.get("algorithm") != SIGNED_REQUEST_ALGORITHM:
        raise SignedRequestError("algorithm", "signed_request algorithm is not HMAC-SHA256")
    issued = json_int(doc.get("issued_at"))
    if issued is None or isinstance(doc.get("issued_at"), float):
        raise SignedRequestError("malformed", "signed_request has no issued_at")
    age = now.timestamp() - issued
    if age > max_age_s:
        raise SignedRequestError("stale", "signed_request is too old")
    if age < -max_skew_s:
        raise SignedRequestError("future", "signed_request is issued in the future")
    psid = json_str(doc.get("psid"))
    if psid is None or not _PSID_RE.fullmatch(psid):
        raise SignedRequestError("malformed", "signed_request has no valid psid")
    page = json_str(doc.get("page_id")) or ""
    if page_id and page != page_id:
        raise SignedRequestError("wrong_page", "signed_request is for another Page")
    return MessengerContext(
        psid=psid,
        page_id=page,
        thread_type=json_str(doc.get("thread_type")) or "",
        tid=json_str(doc.get("tid")) or "",
        issued_at=datetime.fromtimestamp(issued, UTC),
        secret=which,
    )


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """``appsecret_proof`` for a Graph call: hex HMAC-SHA256 of the access token with the app secret."""
    return hmac.new(app_secret.encode("utf-8"), access_token.encode("utf-8"), hashlib.sha256).hexdigest()


# --- Graph errors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorRule:
    retry: bool
    action: ErrorAction
    meaning: str


_R = ErrorRule
# (code, subcode) -> rule; (code, None) is the rule for any other subcode of that code.
# Sources: messenger-platform.md §2.8 (Messenger) and §3 (WhatsApp Cloud API). [verify] = ours.
GRAPH_ERROR_POLICY: Mapping[tuple[int, int | None], ErrorRule] = {
    # --- retryable: throttling -------------------------------------------------------------------
    (4, None): _R(True, ErrorAction.THROTTLED, "application request limit reached"),
    (17, None): _R(True, ErrorAction.THROTTLED, "user request limit reached [verify]"),
    (32, None): _R(True, ErrorAction.THROTTLED, "Page request limit reached"),
    (613, None): _R(True, ErrorAction.THROTTLED, "calls to this API have exceeded the rate limit"),
    (80007, None): _R(True, ErrorAction.THROTTLED, "WhatsApp Business Account rate limit [verify]"),
    (130429, None): _R(True, ErrorAction.THROTTLED, "WhatsApp throughput limit reached"),
    (131048, None): _R(True, ErrorAction.THROTTLED, "WhatsApp spam rate limit hit [verify]"),
    (131056, None): _R(True, ErrorAction.THREAD_THROTTLED, "WhatsApp pair rate limit (same user)"),
    # --- retryable: transient --------------------------------------------------------------------
    (1, None): _R(True, ErrorAction.TRANSIENT, "unknown error"),
    (2, None): _R(True, ErrorAction.TRANSIENT, "temporary service error (can also mean blocked)"),
    (1200, None): _R(True, ErrorAction.TRANSIENT, "temporary send failure"),
    (131000, None): _R(True, ErrorAction.TRANSIENT, "WhatsApp: something went wrong [verify]"),
    (131016, None): _R(True, ErrorAction.TRANSIENT, "WhatsApp service unavailable [verify]"),
    # --- permanent -------------------------------------------------------------------------------
    (4, 2018354): _R(False, ErrorAction.FREQUENCY_CAPPED, "marketing message frequency limit"),
    (9, 2018352): _R(False, ErrorAction.FREQUENCY_CAPPED, "marketing message frequency limit"),
    (10, 2018278): _R(False, ErrorAction.WINDOW_CLOSED, "sent outside the allowed window"),
    (10, 2018065): _R(False, ErrorAction.WINDOW_CLOSED, "outside the window, needs a permission"),
    (10, 1893063): _R(False, ErrorAction.ACCOUNT_RESTRICTED, "Page temporarily restricted from sending"),
    (10, None): _R(False, ErrorAction.PERMISSION, "permission error"),
    (100, 2018001): _R(False, ErrorAction.UNKNOWN_RECIPIENT, "no matching user found"),
    (100, None): _R(False, ErrorAction.INVALID_REQUEST, "invalid parameter"),
    (105, None): _R(False, ErrorAction.INVALID_REQUEST, "too many elements in a parameter"),
    (104, None): _R(False, ErrorAction.BAD_TOKEN, "an access token is required"),
    (190, None): _R(False, ErrorAction.BAD_TOKEN, "invalid or expired access token"),
    (200, None): _R(False, ErrorAction.PERMISSION, "permission error"),
    (230, None): _R(False, ErrorAction.PERMISSION, "permission error"),
    (551, None): _R(False, ErrorAction.RECIPIENT_UNREACHABLE, "this person isn't available right now"),
    (131026, None): _R(False, ErrorAction.RECIPIENT_UNREACHABLE, "WhatsApp message undeliverable"),
    (131047, None): _R(False, ErrorAction.WINDOW_CLOSED, "WhatsApp re-engagement: outside 24 h window"),
    (131008, None): _R(False, ErrorAction.INVALID_REQUEST, "WhatsApp required parameter missing"),
    (131009, None): _R(False, ErrorAction.INVALID_REQUEST, "WhatsApp parameter value not valid"),
    (131051, None): _R(False, ErrorAction.INVALID_REQUEST, "WhatsApp unsupported message type"),
}


def error_rule(code: int, subcode: int | None) -> ErrorRule | None:
    """The table's rule for ``code``/``subcode`` (exact subcode first, then the code's default)."""
    if subcode is not None and (code, subcode) in GRAPH_ERROR_POLICY:
        return GRAPH_ERROR_POLICY[(code, subcode)]
    return GRAPH_ERROR_POLICY.get((code, None))


def _decode(body: bytes | str | Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, Mapping):
        return body
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    if text and _ASCII_INT.fullmatch(text):
        return int(text)
    return None


_ASCII_INT = re.compile(r"-?[0-9]{1,19}")
ALSO = {"en": "Also:", "ar": "أيضاً:"}  # heads the suggestions a platform cannot show as buttons


def json_str(value: object) -> str | None:
    """A JSON id or text field as a string (platforms send some ids as numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def json_int(value: object) -> int | None:
    """A non-negative JSON integer, possibly sent as a string of ASCII digits ("²" is not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def retry_hint_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the platform asks us to wait: ``Retry-After``, or the largest
    ``estimated_time_to_regain_access`` (minutes) in ``X-Business-Use-Case-Usage``."""
    hints: list[float] = []
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        try:
            hints.append(max(0.0, float(retry_after)))
        except ValueError:
            pass
    usage = _header(headers, "X-Business-Use-Case-Usage")
    if usage:
        try:
            doc = json.loads(usage)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            for entries in doc.values():
                for item in entries if isinstance(entries, list) else []:
                    minutes = item.get("estimated_time_to_regain_access") if isinstance(item, dict) else None
                    if isinstance(minutes, int | float) and not isinstance(minutes, bool) and minutes > 0:
                        hints.append(float(minutes) * 60.0)
    return max(hints) if hints else None


def _message_id(doc: Mapping[str, Any]) -> str | None:
    mid = doc.get("message_id")
    if isinstance(mid, str):
        return mid
    messages = doc.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        wamid = messages[0].get("id")
        if isinstance(wamid, str):
            return wamid
    return None


def classify_graph_response(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
) -> SendOutcome:
    """Turn a Graph Send API answer into a :class:`SendOutcome` using :data:`GRAPH_ERROR_POLICY`.

    2xx without an ``error`` object is delivered (with the mid / wamid when present), unless it says
    ``"success": false`` (thread-control calls): then it is a permanent failure. Known codes
    follow the table. Unknown codes: retry when Graph flags ``is_transient`` or the HTTP status is 5xx
    or 429, else permanent. A 5xx/429 without a JSON error is retried.
    """
    doc = _decode(body)
    error = doc.get("error") if doc is not None else None
    hint = retry_hint_s(headers)
    if 200 <= status < 300 and not isinstance(error, dict):
        if doc is not None and doc.get("success") is False:
            # Thread-control calls answer {"success": false} when Meta did not do it [verify].
            return SendOutcome(
                OutcomeKind.PERMANENT,
                action=ErrorAction.UNKNOWN,
                http_status=status,
                message="success: false",
            )
        return SendOutcome(OutcomeKind.DELIVERED, message_id=_message_id(doc or {}), http_status=status)
    if not isinstance(error, dict):
        if status >= 500 or status == 429:
            action = ErrorAction.THROTTLED if status == 429 else ErrorAction.TRANSIENT
            return SendOutcome(OutcomeKind.RETRY, action=action, retry_after_s=hint, http_status=status)
        return SendOutcome(
            OutcomeKind.PERMANENT, action=ErrorAction.UNKNOWN, http_status=status, message="no error body"
        )
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    message = str(error.get("message", ""))[:500]
    trace = error.get("fbtrace_id")
    trace_id = trace if isinstance(trace, str) else None
    rule = error_rule(code, subcode) if code is not None else None
    if rule is not None:
        retry, action = rule.retry, rule.action
    elif error.get("is_transient") is True or status >= 500:
        retry, action = True, ErrorAction.TRANSIENT
    elif status == 429:
        retry, action = True, ErrorAction.THROTTLED
    else:
        retry, action = False, ErrorAction.UNKNOWN
    return SendOutcome(
        OutcomeKind.RETRY if retry else OutcomeKind.PERMANENT,
        action=action,
        retry_after_s=hint if retry else None,
        http_status=status,
        code=code,
        subcode=subcode,
        message=message,
        trace_id=trace_id,
    )
