"""Web sessions and failed logins in dictionaries, for unit tests and in-memory containers.

Same rules as ``sql_web.py``; state lives in this process only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from amanah.adapters.storage.records import require_aware
from amanah.app.web_sessions import WebSession


class InMemoryWebSessionStore:
    """The ``WebSessionStore`` port on a dict. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sessions: dict[str, WebSession] = {}

    def add(self, session: WebSession) -> None:
        require_aware(session.created_at, "created_at")
        with self._lock:
            if session.id in self.sessions:
                raise ValueError("a session with this id already exists")
            self.sessions[session.id] = session

    def get(self, session_id: str) -> WebSession | None:
        with self._lock:
            return self.sessions.get(session_id)

    def touch(self, session_id: str, at: datetime) -> None:
        at = require_aware(at, "at")
        with self._lock:
            found = self.sessions.get(session_id)
            if found is not None and found.last_seen_at < at:
                self.sessions[session_id] = replace(found, last_seen_at=at)

    def revoke(self, session_id: str, at: datetime) -> bool:
        at = require_aware(at, "at")
        with self._lock:
            found = self.sessions.get(session_id)
            if found is None or found.revoked_at is not None:
                return False
            self.sessions[session_id] = replace(found, revoked_at=at)
            return True

    def revoke_customer(self, customer_id: int, at: datetime) -> int:
        at = require_aware(at, "at")
        with self._lock:
            open_ = [
                s for s in self.sessions.values() if s.customer_id == customer_id and s.revoked_at is None
            ]
            for s in open_:
                self.sessions[s.id] = replace(s, revoked_at=at)
            return len(open_)

    def purge(self, expired_before: datetime, idle_before: datetime) -> int:
        with self._lock:
            ended = [
                k
                for k, s in self.sessions.items()
                if s.revoked_at is not None or s.expires_at < expired_before or s.last_seen_at < idle_before
            ]
            for k in ended:
                del self.sessions[k]
            return len(ended)


class InMemoryLoginFailureStore:
    """The ``LoginFailureStore`` port on a list. Thread-safe; counts only this process's failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failures: list[tuple[str, str, datetime]] = []

    def add(self, kind: str, subject: str, at: datetime) -> None:
        at = require_aware(at, "at")
        with self._lock:
            self.failures.append((kind, subject, at))

    def recent(self, subject: str, since: datetime, limit: int) -> Sequence[datetime]:
        with self._lock:
            times = [at for _k, s, at in self.failures if s == subject and at >= since]
        return sorted(times, reverse=True)[:limit]

    def clear(self, subject: str) -> int:
        with self._lock:
            before = len(self.failures)
            self.failures = [f for f in self.failures if f[1] != subject]
            return before - len(self.failures)

    def purge(self, before: datetime) -> int:
        with self._lock:
            kept = [f for f in self.failures if f[2] >= before]
            removed = len(self.failures) - len(kept)
            self.failures = kept
            return removed
