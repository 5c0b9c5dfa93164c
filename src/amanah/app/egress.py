"""The egress port: the single exit every outbound reply passes through.

A channel never renders a :class:`~amanah.domain.replies.Reply` itself. It asks the guard to
``prepare`` it for a channel and customer: the guard looks up the channel's data-sharing agreement,
renders every typed value under the agreement's treatment, scans free text with the detectors,
replaces withheld content by a secure link to the bank's own site, and says what it applied. When the
exact bytes for the platform are known, the channel calls ``record`` inside the same database
transaction that queues them, so every disclosure is in the hash-chained ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from amanah.app.render import RenderedReply
from amanah.domain.categories import DataCategory, Treatment
from amanah.domain.conversation import Channel
from amanah.domain.replies import Reply


@dataclass(frozen=True, slots=True)
class PreparedReply:
    """A reply rendered for one channel under one agreement, ready to be turned into platform bytes."""

    rendered: RenderedReply
    treatments: Mapping[DataCategory, Treatment]  # what was applied to each category the reply carried
    agreement_id: str
    agreement_version: str
    channel: Channel
    customer_id: int | None


class EgressGuard(Protocol):
    def prepare(self, channel: Channel, customer_id: int | None, reply: Reply) -> PreparedReply: ...

    def screen(
        self, channel: Channel, customer_id: int | None, text: str, origin: str = "agent"
    ) -> frozenset[DataCategory]:
        """The categories the free-text detectors find in ``text`` that ``prepare`` would not let
        reach ``channel`` in clear (masked or withheld). Empty: the text would go out unchanged.

        For text a person wrote (a bank agent's reply): refuse it instead of sending a redacted copy.
        """
        ...

    def lock(self, conn: Any) -> None:
        """Take the disclosure ledger's lock now, at the start of a transaction that will ``record``
        several replies: taken before any row lock, writers queue on it instead of deadlocking."""
        ...

    def record(
        self,
        conn: Any,
        *,
        prepared: PreparedReply,
        user_id: str,
        body: bytes,
        at: datetime,
    ) -> None:
        """Append one disclosure record for ``body`` (the exact bytes sent) in the caller's transaction."""
        ...
