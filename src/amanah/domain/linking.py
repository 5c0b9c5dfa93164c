"""Bindings between a third-party platform user and a bank customer, and the consent behind each.

A Messenger PSID or WhatsApp wa_id is never an authentication factor. It identifies a customer only
through a :class:`Binding`, which exists only while the customer's consent (a :class:`ConsentRecord`,
given on the bank's own site or recorded by an operator) stands. Withdrawing consent removes the
binding at once; the consent record stays, with when and how it was withdrawn, as proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from amanah.domain.conversation import Channel

LINKABLE_CHANNELS = (Channel.MESSENGER, Channel.WHATSAPP)


class ConsentMethod(StrEnum):
    """How a customer gave consent to link a platform user."""

    MESSENGER_ACCOUNT_LINKING = "messenger_account_linking"  # Messenger's account_link button flow
    MESSENGER_EXTENSIONS = "messenger_extensions"  # a webview's verified signed_request (web, desktop)
    WHATSAPP_LINK = "whatsapp_link"  # a one-time link sent in the WhatsApp chat
    OPERATOR_CLI = "operator_cli"  # recorded by an operator (`amanah link`), e.g. for tests and demos


class WithdrawalMethod(StrEnum):
    """How a consent was withdrawn (and its binding removed)."""

    CHAT = "chat"  # the customer typed "unlink" / "stop" / "ألغِ الربط" in the chat
    PLATFORM = "platform_unlink"  # the platform told us (Messenger's account_linking "unlinked")
    WEBSITE = "website"  # the bank's site, /settings/channels
    OPERATOR_CLI = "operator_cli"  # `amanah unlink`
    RELINKED = "relinked"  # the same platform user linked again (maybe to another customer)


class GrantKind(StrEnum):
    """One-time secrets handed out during linking (stored only as hashes)."""

    MESSENGER_CODE = "messenger_code"  # the authorization_code passed back through Messenger
    WHATSAPP_TOKEN = "whatsapp_token"  # noqa: S105 - a kind name, not a secret


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """Proof that ``customer_id`` agreed that ``channel`` user ``user_id`` may act for them."""

    id: int
    customer_id: int
    channel: Channel
    user_id: str
    agreement_id: str
    agreement_version: str
    method: ConsentMethod
    given_at: datetime
    withdrawn_at: datetime | None = None
    withdrawn_how: WithdrawalMethod | None = None

    @property
    def active(self) -> bool:
        return self.withdrawn_at is None

    @property
    def agreement_label(self) -> str:
        return f"{self.agreement_id}@{self.agreement_version}"


@dataclass(frozen=True, slots=True)
class Binding:
    """A live link: messages from (``channel``, ``user_id``) are the customer's, under ``consent_id``."""

    channel: Channel
    user_id: str
    customer_id: int
    consent_id: int
    linked_at: datetime
    agreement_id: str
    agreement_version: str
    method: ConsentMethod


@dataclass(frozen=True, slots=True)
class LinkGrant:
    """A one-time secret (by its SHA-256 hash), what it is bound to, and whether it was used.

    Messenger codes carry the customer who accepted, the agreement they saw, and, when the link button
    was minted for a known PSID, that PSID (``user_id``); ``context_hash`` is the hash of Messenger's
    ``account_linking_token``. WhatsApp tokens carry the wa_id they were sent to (``user_id``).
    """

    kind: GrantKind
    token_hash: str
    channel: Channel
    issued_at: datetime
    expires_at: datetime
    customer_id: int | None = None
    user_id: str | None = None
    context_hash: str | None = None
    agreement_id: str | None = None
    agreement_version: str | None = None
    used_at: datetime | None = None

    def usable(self, at: datetime) -> bool:
        return self.used_at is None and at < self.expires_at
