"""Conformance G (errors / retry, classification and window parts) of docs/messenger-platform.md §10:
the Graph error table, backoff bounds and the 24-hour window rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from amanah.adapters.channels.base import ErrorAction, OutboundMessage, OutcomeKind, SendOutcome
from amanah.adapters.channels.messenger import CAPABILITIES as MESSENGER_CAPS
from amanah.adapters.channels.messenger import MessengerAdapter
from amanah.adapters.channels.policy import (
    MAX_ATTEMPTS,
    WindowReason,
    backoff_s,
    retry_delay_s,
    send_decision,
    should_retry,
    window_open,
)
from amanah.adapters.channels.whatsapp import CAPABILITIES as WHATSAPP_CAPS
from amanah.adapters.channels.whatsapp import WhatsAppAdapter
from amanah.domain.conversation import Channel

MESSENGER = MessengerAdapter("vt", "s")
WHATSAPP = WhatsAppAdapter("vt", "s", "400000000000004")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def graph_error(code: int, subcode: int | None = None, **extra: object) -> bytes:
    error: dict[str, object] = {
        "message": f"(#{code}) x",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbC",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    return json.dumps({"error": error}).encode()


@pytest.mark.parametrize(
    ("code", "subcode", "kind", "action"),
    [
        (10, 2018278, OutcomeKind.PERMANENT, ErrorAction.WINDOW_CLOSED),  # G1
        (10, 2018065, OutcomeKind.PERMANENT, ErrorAction.WINDOW_CLOSED),
        (10, 1893063, OutcomeKind.PERMANENT, ErrorAction.ACCOUNT_RESTRICTED),
        (10, None, OutcomeKind.PERMANENT, ErrorAction.PERMISSION),
        (613, None, OutcomeKind.RETRY, ErrorAction.THROTTLED),  # G4
        (4, None, OutcomeKind.RETRY, ErrorAction.THROTTLED),
        (4, 2018354, OutcomeKind.PERMANENT, ErrorAction.FREQUENCY_CAPPED),
        (32, None, OutcomeKind.RETRY, ErrorAction.THROTTLED),
        (1200, None, OutcomeKind.RETRY, ErrorAction.TRANSIENT),  # G6
        (2, None, OutcomeKind.RETRY, ErrorAction.TRANSIENT),
        (1, None, OutcomeKind.RETRY, ErrorAction.TRANSIENT),
        (551, 1545041, OutcomeKind.PERMANENT, ErrorAction.RECIPIENT_UNREACHABLE),  # G8
        (190, None, OutcomeKind.PERMANENT, ErrorAction.BAD_TOKEN),  # G9
        (100, None, OutcomeKind.PERMANENT, ErrorAction.INVALID_REQUEST),  # G10
        (100, 2018001, OutcomeKind.PERMANENT, ErrorAction.UNKNOWN_RECIPIENT),
        (105, None, OutcomeKind.PERMANENT, ErrorAction.INVALID_REQUEST),
    ],
)
def test_messenger_error_table(
    code: int, subcode: int | None, kind: OutcomeKind, action: ErrorAction
) -> None:
    """G1/G4/G6/G8/G9/G10: Graph errors classify on code/subcode, keeping code, subcode and trace id."""
    outcome = MESSENGER.classify_error(400, graph_error(code, subcode))
    assert (outcome.kind, outcome.action) == (kind, action)
    assert (outcome.code, outcome.subcode, outcome.trace_id, outcome.http_status) == (
        code,
        subcode,
        "AbC",
        400,
    )


@pytest.mark.parametrize(
    ("code", "kind", "action"),
    [
        (130429, OutcomeKind.RETRY, ErrorAction.THROTTLED),
        (131056, OutcomeKind.RETRY, ErrorAction.THREAD_THROTTLED),
        (131048, OutcomeKind.RETRY, ErrorAction.THROTTLED),
        (80007, OutcomeKind.RETRY, ErrorAction.THROTTLED),
        (131047, OutcomeKind.PERMANENT, ErrorAction.WINDOW_CLOSED),
        (131026, OutcomeKind.PERMANENT, ErrorAction.RECIPIENT_UNREACHABLE),
        (131009, OutcomeKind.PERMANENT, ErrorAction.INVALID_REQUEST),
    ],
)
def test_whatsapp_error_table(code: int, kind: OutcomeKind, action: ErrorAction) -> None:
    """WhatsApp Cloud API codes: throughput/pair limits retry, re-engagement and undeliverable do not."""
    outcome = WHATSAPP.classify_error(400, graph_error(code))
    assert (outcome.kind, outcome.action) == (kind, action)


def test_success_shapes_are_delivered_with_ids() -> None:
    """Both success shapes are delivered with the mid / wamid; a sender_action answer has no id."""
    fb = MESSENGER.classify_error(200, b'{"recipient_id":"2","message_id":"m_OUT_7"}')
    wa = WHATSAPP.classify_error(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": "1", "wa_id": "1"}],
            "messages": [{"id": "wamid.X"}],
        },
    )
    typing = MESSENGER.classify_error(200, '{"recipient_id":"2"}')
    assert (fb.kind, fb.message_id) == (OutcomeKind.DELIVERED, "m_OUT_7")
    assert (wa.kind, wa.message_id) == (OutcomeKind.DELIVERED, "wamid.X")
    assert typing.delivered and typing.message_id is None


def test_handover_answers_success_true_delivered_false_permanent() -> None:
    """A thread-control answer {"success": true} is delivered; {"success": false} is a permanent failure."""
    assert MESSENGER.classify_error(200, b'{"success":true}').delivered
    refused = MESSENGER.classify_error(200, b'{"success":false}')
    assert (refused.kind, refused.action) == (OutcomeKind.PERMANENT, ErrorAction.UNKNOWN)


def test_unknown_codes_and_non_json_bodies() -> None:
    """Unknown codes retry only when transient or 5xx/429; non-JSON 5xx retries, non-JSON 4xx does not."""
    assert MESSENGER.classify_error(400, graph_error(99999)).kind is OutcomeKind.PERMANENT
    assert MESSENGER.classify_error(400, graph_error(99999, is_transient=True)).kind is OutcomeKind.RETRY
    assert MESSENGER.classify_error(503, graph_error(99999)).kind is OutcomeKind.RETRY
    assert MESSENGER.classify_error(502, b"<html>Bad Gateway</html>").action is ErrorAction.TRANSIENT
    assert MESSENGER.classify_error(429, None).action is ErrorAction.THROTTLED
    assert MESSENGER.classify_error(404, b"not found").kind is OutcomeKind.PERMANENT


def test_g4_usage_header_sets_minimum_wait() -> None:
    """G4: X-Business-Use-Case-Usage estimated_time_to_regain_access (minutes) becomes retry_after_s."""
    usage = {
        "1000000000000001": [{"type": "messenger", "call_count": 100, "estimated_time_to_regain_access": 3}]
    }
    outcome = MESSENGER.classify_error(
        400, graph_error(613), {"x-business-use-case-usage": json.dumps(usage)}
    )
    assert outcome.retry_after_s == 180.0
    assert retry_delay_s(outcome, 0, rng=lambda: 0.5) == 180.0
    assert MESSENGER.classify_error(503, None, {"Retry-After": "7"}).retry_after_s == 7.0


@pytest.mark.parametrize("attempt", [0, 1, 2, 5, 8, 20, 1000])
def test_backoff_bounds_full_jitter(attempt: int) -> None:
    """Backoff lies in [0, min(cap, base*2^attempt)]: 0 at rng=0, the ceiling at rng=1."""
    ceiling = min(300.0, 2.0**attempt)
    assert backoff_s(attempt, rng=lambda: 0.0) == 0.0
    assert backoff_s(attempt, rng=lambda: 1.0) == ceiling
    assert 0.0 <= backoff_s(attempt) <= ceiling


def test_g6_retries_are_bounded() -> None:
    """G6: retryable outcomes are retried until MAX_ATTEMPTS, permanent ones never."""
    transient = SendOutcome(OutcomeKind.RETRY, action=ErrorAction.TRANSIENT)
    permanent = SendOutcome(OutcomeKind.PERMANENT, action=ErrorAction.RECIPIENT_UNREACHABLE)
    assert MAX_ATTEMPTS == 6
    assert should_retry(transient, 5) and not should_retry(transient, 6)
    assert not should_retry(permanent, 1)


def test_window_open_24_hours() -> None:
    """The window is open for less than 24 h after the user's last message, closed after or if none."""
    assert window_open(NOW - timedelta(hours=23, minutes=59), NOW)
    assert not window_open(NOW - timedelta(hours=24), NOW)
    assert not window_open(None, NOW)
    assert window_open(NOW + timedelta(seconds=5), NOW)  # clock skew: open
    assert window_open((NOW - timedelta(hours=1)).replace(tzinfo=None), NOW)  # naive = UTC


def test_g2_bot_message_after_24h_blocked() -> None:
    """G2: a bot message more than 24 h after the user's last message is blocked before any call."""
    decision = send_decision(MESSENGER_CAPS, NOW - timedelta(hours=25), NOW)
    assert not decision.allowed and decision.reason is WindowReason.WINDOW_CLOSED
    inside = send_decision(MESSENGER_CAPS, NOW - timedelta(hours=2), NOW)
    assert (inside.allowed, inside.messaging_type, inside.tag) == (True, "RESPONSE", None)
    assert send_decision(MESSENGER_CAPS, None, NOW).reason is WindowReason.NEVER_MESSAGED


def test_g3_human_agent_tag_until_7_days() -> None:
    """G3: a human agent at 3 days gets MESSAGE_TAG + HUMAN_AGENT; at 8 days, or on WhatsApp, blocked."""
    three = send_decision(MESSENGER_CAPS, NOW - timedelta(days=3), NOW, human_agent=True)
    assert (three.allowed, three.messaging_type, three.tag) == (True, "MESSAGE_TAG", "HUMAN_AGENT")
    assert not send_decision(MESSENGER_CAPS, NOW - timedelta(days=8), NOW, human_agent=True).allowed
    assert not send_decision(MESSENGER_CAPS, NOW - timedelta(days=3), NOW, human_agent=False).allowed
    assert not send_decision(WHATSAPP_CAPS, NOW - timedelta(days=3), NOW, human_agent=True).allowed
    tagged = three.apply(OutboundMessage(channel=Channel.MESSENGER, user_id="2", texts=("hi",)))
    assert tagged.tag == "HUMAN_AGENT"
    with pytest.raises(ValueError):
        send_decision(MESSENGER_CAPS, None, NOW).apply(tagged)
