"""Tables of the egress guard: secure links and the hash-chained disclosure ledger.

* ``secure_links``: one row per link minted for withheld content. Only the SHA-256 of the token is
  kept (``token_sha256``); the token itself exists only in the URL sent to the customer. ``content``
  is what the link shows (the bank's own rendering of the withheld reply, or the parameters of a
  privacy report) and is cleared when the link is used; ``content_sha256`` stays as evidence.
* ``disclosures``: one row per message sent to a third-party platform. It holds *what kind* of data
  left and under which agreement, never the data: ``body_sha256`` is the hash of the exact bytes
  sent. ``hash`` chains each record to the previous one (see ``adapters/privacy/ledger.py``); the
  migration installs a trigger that refuses ``UPDATE``. ``customer_id`` is deliberately not a
  foreign key: the ledger outlives customers, and a cascade would break the chain.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Index, String, Table

from amanah.adapters.storage.schema import BigId, JsonDoc, UtcDateTime, id_column, metadata

SECURE_LINK_PURPOSES = ("withheld", "privacy_report")

secure_links = Table(
    "secure_links",
    metadata,
    id_column(),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("customer_id", BigId, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("purpose", String(32), nullable=False),
    Column("content", JsonDoc, nullable=True),  # cleared (NULL) once the link is used
    Column("content_sha256", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("used_at", UtcDateTime(), nullable=True),
    CheckConstraint("purpose IN ('withheld', 'privacy_report')", name="purpose"),
)

disclosures = Table(
    "disclosures",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("customer_id", BigInteger, nullable=True),
    Column("user_id", String(200), nullable=False),
    Column("categories", JsonDoc, nullable=False),  # {category: treatment applied}
    Column("agreement_id", String(100), nullable=False),
    Column("agreement_version", String(50), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Index("ix_disclosures_customer_id_channel_seq", "customer_id", "channel", "seq"),
)
