"""Server-side web sessions and failed logins on Amanah's database (tables in ``schema_web.py``).

Same rules as ``memory_web.py``. Timestamps are timezone-aware UTC; naive ones are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, or_, select

from amanah.adapters.storage.db import write_engine
from amanah.adapters.storage.records import require_aware
from amanah.adapters.storage.schema_web import login_failures, web_sessions
from amanah.app.web_sessions import WebSession


class SqlWebSessionStore:
    """The ``WebSessionStore`` port on the ``web_sessions`` table."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = write_engine(engine)

    def add(self, session: WebSession) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                web_sessions.insert().values(
                    id=session.id,
                    customer_id=session.customer_id,
                    created_at=require_aware(session.created_at, "created_at"),
                    last_seen_at=require_aware(session.last_seen_at, "last_seen_at"),
                    expires_at=require_aware(session.expires_at, "expires_at"),
                    revoked_at=require_aware(session.revoked_at, "revoked_at")
                    if session.revoked_at
                    else None,
                )
            )

    def get(self, session_id: str) -> WebSession | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(web_sessions).where(web_sessions.c.id == session_id)).first()
        if row is None:
            return None
        return WebSession(
            id=row.id,
            customer_id=int(row.customer_id),
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )

    def touch(self, session_id: str, at: datetime) -> None:
        at = require_aware(at, "at")
        with self._writer.begin() as conn:
            conn.execute(
                web_sessions.update()
                .where(web_sessions.c.id == session_id, web_sessions.c.last_seen_at < at)
                .values(last_seen_at=at)
            )

    def revoke(self, session_id: str, at: datetime) -> bool:
        at = require_aware(at, "at")
        with self._writer.begin() as conn:
            done = conn.execute(
                web_sessions.update()
                .where(web_sessions.c.id == session_id, web_sessions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            ).rowcount
        return bool(done)

    def revoke_customer(self, customer_id: int, at: datetime) -> int:
        at = require_aware(at, "at")
        with self._writer.begin() as conn:
            return int(
                conn.execute(
                    web_sessions.update()
                    .where(web_sessions.c.customer_id == customer_id, web_sessions.c.revoked_at.is_(None))
                    .values(revoked_at=at)
                ).rowcount
            )

    def purge(self, expired_before: datetime, idle_before: datetime) -> int:
        expired_before = require_aware(expired_before, "expired_before")
        idle_before = require_aware(idle_before, "idle_before")
        with self._writer.begin() as conn:
            return int(
                conn.execute(
                    web_sessions.delete().where(
                        or_(
                            web_sessions.c.revoked_at.is_not(None),
                            web_sessions.c.expires_at < expired_before,
                            web_sessions.c.last_seen_at < idle_before,
                        )
                    )
                ).rowcount
            )


class SqlLoginFailureStore:
    """The ``LoginFailureStore`` port on the ``login_failures`` table (shared by every process)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = write_engine(engine)

    def add(self, kind: str, subject: str, at: datetime) -> None:
        with self._writer.begin() as conn:
            conn.execute(
                login_failures.insert().values(kind=kind, subject=subject, failed_at=require_aware(at, "at"))
            )

    def recent(self, subject: str, since: datetime, limit: int) -> Sequence[datetime]:
        stmt = (
            select(login_failures.c.failed_at)
            .where(
                login_failures.c.subject == subject,
                login_failures.c.failed_at >= require_aware(since, "since"),
            )
            .order_by(login_failures.c.failed_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [r.failed_at for r in conn.execute(stmt).all()]

    def clear(self, subject: str) -> int:
        with self._writer.begin() as conn:
            return int(
                conn.execute(login_failures.delete().where(login_failures.c.subject == subject)).rowcount
            )

    def purge(self, before: datetime) -> int:
        before = require_aware(before, "before")
        with self._writer.begin() as conn:
            return int(
                conn.execute(login_failures.delete().where(login_failures.c.failed_at < before)).rowcount
            )
