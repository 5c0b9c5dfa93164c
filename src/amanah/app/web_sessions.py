"""Server-side sessions and login throttling for the bank's own site.

Sessions: the browser's (signed) session cookie carries only an opaque 256-bit token; the database
keeps its SHA-256 (``WebSession.id``), the customer, and when the session was created, last used,
ends at the latest (absolute lifetime) and was revoked. Every authenticated request looks the token
up, so logging out (which revokes the row) ends the session even for a copy of the cookie, and a
session ends after ``idle_s`` without a request or ``absolute_s`` after login, whatever the cookie
says. Each login starts a new session (no fixation).

Login throttling: failed logins are counted per username and per client address over a sliding
window; over the limit, logins are refused (HTTP 429) until the window has room again, without
checking the password. Failures are stored (in the database in production, so every process sees
them) only as keyed hashes: a password typed into the username field never reaches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from amanah.app.ports import Clock

IDLE_S = 30 * 60
ABSOLUTE_S = 12 * 3600
TOUCH_EVERY_S = 30  # last_seen_at is written at most this often per session
LOGIN_WINDOW_S = 15 * 60
MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20  # higher: several customers may share one address (NAT, an office)

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class WebSession:
    """One login on the bank's site. ``id`` is the SHA-256 hex of the cookie's token."""

    id: str
    customer_id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # absolute end, whatever the activity
    revoked_at: datetime | None = None


class WebSessionStore(Protocol):
    """Where sessions live (the ``web_sessions`` table, or a dict in tests)."""

    def add(self, session: WebSession) -> None: ...

    def get(self, session_id: str) -> WebSession | None: ...

    def touch(self, session_id: str, at: datetime) -> None:
        """Set ``last_seen_at`` (only ever forward)."""
        ...

    def revoke(self, session_id: str, at: datetime) -> bool:
        """Mark an open session revoked; True if it was open."""
        ...

    def revoke_customer(self, customer_id: int, at: datetime) -> int:
        """Revoke every open session of the customer; how many."""
        ...

    def purge(self, expired_before: datetime, idle_before: datetime) -> int:
        """Delete sessions revoked, past ``expires_at`` < ``expired_before``, or idle since before
        ``idle_before``; how many."""
        ...


class LoginFailureStore(Protocol):
    """Failed logins by subject (a keyed hash of a username or a client address)."""

    def add(self, kind: str, subject: str, at: datetime) -> None: ...

    def recent(self, subject: str, since: datetime, limit: int) -> Sequence[datetime]:
        """The subject's failures at or after ``since``, newest first, at most ``limit``."""
        ...

    def clear(self, subject: str) -> int: ...

    def purge(self, before: datetime) -> int:
        """Delete failures older than ``before``; how many."""
        ...


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def looks_like_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN_RE.fullmatch(value) is not None


class WebSessions:
    """Start, check, end and purge server-side sessions."""

    def __init__(
        self,
        store: WebSessionStore,
        clock: Clock,
        *,
        idle_s: int = IDLE_S,
        absolute_s: int = ABSOLUTE_S,
        touch_every_s: int = TOUCH_EVERY_S,
    ) -> None:
        self.store = store
        self.clock = clock
        self.idle = timedelta(seconds=idle_s)
        self.absolute = timedelta(seconds=absolute_s)
        self.touch_every = timedelta(seconds=min(touch_every_s, max(idle_s // 4, 1)))

    def start(self, customer_id: int) -> str:
        """A new session for ``customer_id``; returns its token (for the cookie, never stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock.now()
        self.store.add(
            WebSession(
                id=token_hash(token),
                customer_id=customer_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + self.absolute,
            )
        )
        return token

    def customer(self, token: object) -> int | None:
        """The customer of a live session (and note the activity); None if unknown, revoked or over."""
        if not looks_like_token(token):
            return None
        assert isinstance(token, str)
        session = self.store.get(token_hash(token))
        if session is None or session.revoked_at is not None:
            return None
        now = self.clock.now()
        if now >= session.expires_at or now - session.last_seen_at >= self.idle:
            return None
        if now - session.last_seen_at >= self.touch_every:
            self.store.touch(session.id, now)
        return session.customer_id

    def end(self, token: object) -> bool:
        """Revoke the session (logout); True if it was open."""
        if not looks_like_token(token):
            return False
        assert isinstance(token, str)
        return self.store.revoke(token_hash(token), self.clock.now())

    def end_all(self, customer_id: int) -> int:
        """Revoke every session of the customer (e.g. after a password change)."""
        return self.store.revoke_customer(customer_id, self.clock.now())

    def purge(self) -> int:
        """Forget sessions that can no longer be used."""
        now = self.clock.now()
        return self.store.purge(now, now - self.idle)


class LoginThrottle:
    """Counts failed logins per username and per client address; answers how long to wait."""

    def __init__(
        self,
        store: LoginFailureStore,
        clock: Clock,
        *,
        secret: bytes | str,
        window_s: int = LOGIN_WINDOW_S,
        max_per_user: int = MAX_FAILURES_PER_USER,
        max_per_address: int = MAX_FAILURES_PER_ADDRESS,
    ) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._key = hashlib.sha256(b"amanah-login-throttle\x00" + raw).digest()
        self.store = store
        self.clock = clock
        self.window = timedelta(seconds=window_s)
        self.max_per_user = max_per_user
        self.max_per_address = max_per_address

    def _subject(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()

    def _subjects(self, username: str, address: str | None) -> list[tuple[str, str, int]]:
        found = [("user", self._subject("user", username.strip().lower()), self.max_per_user)]
        if address:
            found.append(("address", self._subject("address", address), self.max_per_address))
        return found

    def retry_after(self, username: str, address: str | None) -> int | None:
        """Seconds until a login for ``username`` from ``address`` may be tried; None if it may now."""
        now = self.clock.now()
        wait = 0.0
        for _kind, subject, limit in self._subjects(username, address):
            times = self.store.recent(subject, now - self.window, limit)
            if len(times) >= limit:
                wait = max(wait, (times[limit - 1] + self.window - now).total_seconds())
        return max(1, math.ceil(wait)) if wait > 0 else None

    def failed(self, username: str, address: str | None) -> None:
        now = self.clock.now()
        for kind, subject, _limit in self._subjects(username, address):
            self.store.add(kind, subject, now)

    def succeeded(self, username: str) -> None:
        """A correct password: the username's count starts again (the address's does not)."""
        self.store.clear(self._subject("user", username.strip().lower()))

    def purge(self) -> int:
        """Forget failures older than the window."""
        return self.store.purge(self.clock.now() - self.window)
