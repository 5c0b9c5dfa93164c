"""Tables for linking Messenger/WhatsApp users to customers (migration ``0003_linking``).

* ``channel_consents``: proof of each consent, never deleted. Withdrawing fills ``withdrawn_at`` and
  ``withdrawn_how`` once; the migration installs a trigger refusing any other change.
* ``channel_bindings``: the live links, one per (channel, user_id); a row is deleted when its consent
  is withdrawn, so nothing identifies the platform user any more.
* ``link_grants``: one-time secrets (Messenger authorization codes, WhatsApp link tokens), stored as
  SHA-256 hashes only, with expiry and the time they were used.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table, UniqueConstraint

from amanah.adapters.storage.schema import BigId, UtcDateTime, id_column, metadata
from amanah.domain.linking import LINKABLE_CHANNELS, ConsentMethod, GrantKind, WithdrawalMethod


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


CHANNELS = tuple(c.value for c in LINKABLE_CHANNELS)
CONSENT_METHODS = tuple(m.value for m in ConsentMethod)
WITHDRAWAL_METHODS = tuple(m.value for m in WithdrawalMethod)
GRANT_KINDS = tuple(k.value for k in GrantKind)

channel_consents = Table(
    "channel_consents",
    metadata,
    id_column(),
    Column("customer_id", BigId, ForeignKey("customers.id"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("agreement_id", String(100), nullable=False),
    Column("agreement_version", String(50), nullable=False),
    Column("method", String(32), nullable=False),
    Column("given_at", UtcDateTime(), nullable=False),
    Column("withdrawn_at", UtcDateTime(), nullable=True),
    Column("withdrawn_how", String(32), nullable=True),
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
    CheckConstraint(_in("method", CONSENT_METHODS), name="method"),
    CheckConstraint(
        f"withdrawn_how IS NULL OR {_in('withdrawn_how', WITHDRAWAL_METHODS)}", name="withdrawn_how"
    ),
    CheckConstraint("(withdrawn_at IS NULL) = (withdrawn_how IS NULL)", name="withdrawn_both"),
    Index("ix_channel_consents_customer_id_id", "customer_id", "id"),
)

channel_bindings = Table(
    "channel_bindings",
    metadata,
    id_column(),
    Column("channel", String(16), nullable=False),
    Column("user_id", String(200), nullable=False),
    Column("customer_id", BigId, ForeignKey("customers.id"), nullable=False, index=True),
    Column("consent_id", BigId, ForeignKey("channel_consents.id"), nullable=False, unique=True),
    Column("linked_at", UtcDateTime(), nullable=False),
    UniqueConstraint("channel", "user_id"),
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
)

link_grants = Table(
    "link_grants",
    metadata,
    id_column(),
    Column("kind", String(24), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("channel", String(16), nullable=False),
    Column("customer_id", BigId, ForeignKey("customers.id"), nullable=True),
    Column("user_id", String(200), nullable=True),
    Column("context_hash", String(64), nullable=True),
    Column("agreement_id", String(100), nullable=True),
    Column("agreement_version", String(50), nullable=True),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("used_at", UtcDateTime(), nullable=True),
    CheckConstraint(_in("kind", GRANT_KINDS), name="kind"),
    CheckConstraint(_in("channel", CHANNELS), name="channel"),
    CheckConstraint("length(token_hash) = 64", name="token_hash_len"),
)
