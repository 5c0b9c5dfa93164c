"""Pure sending policy: the messaging window, and retry backoff. No clock, no randomness of its own.

Window (Messenger and WhatsApp): a business may send free-form messages only inside the standard
messaging window, 24 hours after the user's last message. Messenger lets a *human* agent answer with
``MESSAGE_TAG`` + ``HUMAN_AGENT`` up to 7 days; bots never self-apply tags. Outside, nothing is sent:
the outbox reroutes (bank-owned channel) or waits for the user. WhatsApp's templates are out of scope.

Retry: exponential backoff with full jitter (``uniform(0, min(cap, base * 2**attempt))``), at most
:data:`MAX_ATTEMPTS` attempts, and never sooner than the platform's own hint.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from amanah.adapters.channels.base import Capabilities, OutboundMessage, SendOutcome

MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0

RESPONSE = "RESPONSE"
MESSAGE_TAG = "MESSAGE_TAG"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def window_open(last_user_message_at: datetime | None, now: datetime, *, hours: float = 24.0) -> bool:
    """True while ``now`` is less than ``hours`` after the user's last message (naive = UTC).

    No message from the user yet means closed. A last message "in the future" (clock skew) is open.
    """
    if last_user_message_at is None:
        return False
    return _aware(now) - _aware(last_user_message_at) < timedelta(hours=hours)


class WindowReason(StrEnum):
    NO_WINDOW = "no_window"  # the channel has no messaging window (web chat, Telegram)
    INSIDE_WINDOW = "inside_window"
    HUMAN_AGENT_TAG = "human_agent_tag"
    WINDOW_CLOSED = "window_closed"
    NEVER_MESSAGED = "never_messaged"
    NOT_A_MESSAGE = "not_a_message"  # a thread-control call (handover): the window does not apply


@dataclass(frozen=True, slots=True)
class SendDecision:
    """Whether the outbox may send now, and how (``messaging_type`` / ``tag`` for Messenger)."""

    allowed: bool
    reason: WindowReason
    messaging_type: str | None = None  # RESPONSE or MESSAGE_TAG when allowed
    tag: str | None = None

    def apply(self, outbound: OutboundMessage) -> OutboundMessage:
        """``outbound`` carrying this decision's tag; raises ``ValueError`` if sending is not allowed."""
        if not self.allowed:
            raise ValueError(f"sending is not allowed: {self.reason}")
        if outbound.tag == self.tag:
            return outbound
        return OutboundMessage(
            channel=outbound.channel,
            user_id=outbound.user_id,
            texts=outbound.texts,
            quick_replies=outbound.quick_replies,
            buttons=outbound.buttons,
            kind=outbound.kind,
            key=outbound.key,
            language=outbound.language,
            tag=self.tag,
            reply_to=outbound.reply_to,
        )


def send_decision(
    capabilities: Capabilities,
    last_user_message_at: datetime | None,
    now: datetime,
    *,
    human_agent: bool = False,
) -> SendDecision:
    """Decide before any platform call whether a message may go out, and with which messaging type.

    Inside the window: ``RESPONSE``. Outside: only a message authored by a logged-in human agent, on a
    channel with a human-agent tag, within that tag's period (``MESSAGE_TAG`` + tag). Else blocked.
    """
    if capabilities.window_hours is None:
        return SendDecision(True, WindowReason.NO_WINDOW, RESPONSE)
    if last_user_message_at is None:
        return SendDecision(False, WindowReason.NEVER_MESSAGED)
    if window_open(last_user_message_at, now, hours=capabilities.window_hours):
        return SendDecision(True, WindowReason.INSIDE_WINDOW, RESPONSE)
    if (
        human_agent
        and capabilities.human_agent_window_hours is not None
        and capabilities.human_agent_tag is not None
        and window_open(last_user_message_at, now, hours=capabilities.human_agent_window_hours)
    ):
        return SendDecision(True, WindowReason.HUMAN_AGENT_TAG, MESSAGE_TAG, capabilities.human_agent_tag)
    return SendDecision(False, WindowReason.WINDOW_CLOSED)


def backoff_s(
    attempt: int,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    rng: Callable[[], float] = random.random,
) -> float:
    """Full-jitter exponential backoff for retry number ``attempt`` (0 = first retry), in seconds.

    Always within ``[0, min(cap_s, base_s * 2**attempt)]``.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt, 0), 62))
    return rng() * ceiling


def should_retry(outcome: SendOutcome, attempts_made: int, *, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """True when ``outcome`` is retryable and fewer than ``max_attempts`` attempts were made."""
    return outcome.retryable and attempts_made < max_attempts


def retry_delay_s(
    outcome: SendOutcome,
    attempt: int,
    *,
    base_s: float = BACKOFF_BASE_S,
    cap_s: float = BACKOFF_CAP_S,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying: the jittered backoff, but at least the platform's hint."""
    delay = backoff_s(attempt, base_s=base_s, cap_s=cap_s, rng=rng)
    return max(delay, outcome.retry_after_s or 0.0)
