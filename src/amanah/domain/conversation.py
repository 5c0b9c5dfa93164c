"""A conversation between one channel user and the bank, and the turns it is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Channel(StrEnum):
    WEBCHAT = "webchat"  # the bank's own web chat: first party
    CLI = "cli"  # the terminal, for operators and demos: first party
    MESSENGER = "messenger"  # Facebook Messenger: third party
    WHATSAPP = "whatsapp"  # WhatsApp Cloud API: third party

    @property
    def is_third_party(self) -> bool:
        return self in (Channel.MESSENGER, Channel.WHATSAPP)


class ConversationStatus(StrEnum):
    ACTIVE = "active"
    WAITING_AGENT = "waiting_agent"


@dataclass(slots=True)
class ConversationState:
    """Everything the assistant remembers about one (channel, user) between turns."""

    channel: Channel
    user_id: str
    customer_id: int | None = None
    language: str = "en"
    status: ConversationStatus = ConversationStatus.ACTIVE
    pending: dict[str, Any] | None = None  # a multi-turn flow waiting for the customer's answer
    id: int | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange. ``inbound_text`` is already redacted: credentials never reach storage."""

    at: datetime
    inbound_text: str
    intent: str
    confidence: float
    reply_text: str
    language: str
    meta: dict[str, Any] = field(default_factory=dict)
