"""What the customer wants, as understood by a classifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Intent(StrEnum):
    BALANCE = "balance"
    TRANSACTIONS = "transactions"
    SPENDING = "spending"
    CARD_FREEZE = "card_freeze"
    CARD_UNFREEZE = "card_unfreeze"
    CARD_LOST = "card_lost"
    FAQ = "faq"
    HUMAN_AGENT = "human_agent"
    GREETING = "greeting"
    THANKS = "thanks"
    GOODBYE = "goodbye"
    HELP = "help"
    AFFIRM = "affirm"
    DENY = "deny"
    UNLINK = "unlink"
    PRIVACY_REPORT = "privacy_report"
    OUT_OF_SCOPE = "out_of_scope"


@dataclass(frozen=True, slots=True)
class Classification:
    """The top intent with its confidence in [0, 1], and the runners-up, best first."""

    intent: Intent
    confidence: float
    ranked: tuple[tuple[Intent, float], ...] = field(default=())
