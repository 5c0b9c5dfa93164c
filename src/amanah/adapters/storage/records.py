"""Records the storage adapters return beyond the ports' domain values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from amanah.domain.banking import CardStatus


@dataclass(frozen=True, slots=True)
class CardStatusChange:
    """One row of a card's append-only status history."""

    card_id: int
    from_status: CardStatus
    to_status: CardStatus
    reason: str
    at: datetime  # timezone-aware UTC


MAX_REASON_CHARS = 500


def clean_reason(reason: str) -> str:
    """The reason as stored: trimmed, at most 500 characters, never empty."""
    return " ".join(reason.split())[:MAX_REASON_CHARS] or "unspecified"


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape LIKE wildcards in ``text`` so it matches literally."""
    return text.replace(escape, escape * 2).replace("%", escape + "%").replace("_", escape + "_")


def json_roundtrip(value: Any) -> Any:
    """``value`` as it comes back from a JSON column (tuples become lists); TypeError if not JSON."""
    return None if value is None else json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))


def require_aware(value: datetime, what: str) -> datetime:
    """Refuse naive datetimes: every stored timestamp is timezone-aware UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime")
    return value.astimezone(UTC)
