"""Tables of the bank's own site: server-side sessions and failed logins (migration ``0005_web``).

* ``web_sessions``: one row per login. ``id`` is the SHA-256 hex of the opaque token the session
  cookie carries (the token itself is never stored). A row ends when revoked (logout), after
  ``expires_at`` (absolute lifetime) or when idle too long; ``amanah purge`` deletes ended rows.
* ``login_failures``: one row per failed login, per subject (``user``: a username; ``address``: a
  client address), stored only as a keyed hash, for throttling across processes.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table

from amanah.adapters.storage.schema import BigId, UtcDateTime, id_column, metadata

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", BigId, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    CheckConstraint("length(id) = 64", name="id_len"),
)

login_failures = Table(
    "login_failures",
    metadata,
    id_column(),
    Column("kind", String(8), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("failed_at", UtcDateTime(), nullable=False, index=True),
    CheckConstraint("kind IN ('user', 'address')", name="kind"),
    Index("ix_login_failures_subject_failed_at", "subject", "failed_at"),
)

WEB_TABLES = (web_sessions, login_failures)
