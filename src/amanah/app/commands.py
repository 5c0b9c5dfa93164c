"""Commands: what an entrypoint asks the application to do."""

from __future__ import annotations

from dataclasses import dataclass

from amanah.domain.conversation import Channel


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer's message, already authenticated (or not) by its channel.

    ``customer_id`` is set only when the channel has a verified binding to a bank customer: a web
    chat login, or a Messenger/WhatsApp user who linked on the bank's site with consent. The
    platform's own identity is never an authentication factor.
    ``payload`` is the machine value of a tapped quick reply, when there was one.
    """

    channel: Channel
    user_id: str
    text: str
    customer_id: int | None = None
    payload: str | None = None
    language_hint: str | None = None
