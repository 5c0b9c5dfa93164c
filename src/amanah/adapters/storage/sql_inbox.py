"""The durable webhook inbox and the per-conversation leases of the workers that drain it.

Writing (the webhook's hot path): :meth:`SqlInbox.add_many` inserts every event of one or more
webhook requests with one ``INSERT ... ON CONFLICT (channel, dedup_key) DO NOTHING`` and commits:
duplicates are ignored, and the caller acknowledges only after the commit.

Claiming (the workers): :meth:`SqlInbox.claim` picks conversations that have pending events and
takes a lease on each in ``channel_threads`` (an upsert that succeeds only when the lease is free or
expired). On PostgreSQL the candidate rows are read ``FOR UPDATE SKIP LOCKED`` so concurrent workers
look at different rows, and the lease upserts run in a fixed order, so two workers never deadlock; on
SQLite the claim is one ``BEGIN IMMEDIATE`` transaction. A conversation's events are then handled by
the lease holder alone, in timestamp order. :meth:`SqlInbox.complete` marks an event done only while
the lease is still held and the row still pending, inside the caller's transaction (the one that
queues the reply), so a reply is queued exactly once even if a lease expired under a slow worker.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, event, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from amanah.adapters.channels.base import (
    Attachment,
    EventKind,
    InboundEvent,
    LinkingStatus,
)
from amanah.adapters.storage.db import write_engine
from amanah.adapters.storage.schema_channels import channel_inbox, channel_threads
from amanah.domain.conversation import Channel

PENDING = "pending"
DONE = "done"
FAILED = "failed"


def event_document(event: InboundEvent) -> dict[str, Any]:
    """The normalized event as a compact JSON document (no raw platform payload is kept)."""
    doc: dict[str, Any] = {
        "kind": event.kind.value,
        "account": event.account_id,
        "mid": event.message_id,
        "text": event.text,
        "payload": event.payload,
        "standby": event.standby or None,
        "subtype": event.subtype,
        "linking": event.linking_status.value if event.linking_status is not None else None,
        "code": event.authorization_code,
        "app": event.app_id,
        "meta": event.metadata,
        "ref": event.referral_ref,
        "wm": event.watermark_ms,
        "rel": list(event.related_ids) or None,
        "err": event.error_code,
        "att": [[a.type, a.url, a.media_id] for a in event.attachments] or None,
    }
    return {k: v for k, v in doc.items() if v is not None}


def event_from_row(
    channel: str, user_id: str, dedup_key: str, timestamp_ms: int, doc: Mapping[str, Any]
) -> InboundEvent:
    """Rebuild the :class:`InboundEvent` stored by :func:`event_document`."""
    linking = doc.get("linking")
    return InboundEvent(
        channel=Channel(channel),
        kind=EventKind(doc.get("kind", EventKind.UNSUPPORTED.value)),
        user_id=user_id,
        account_id=str(doc.get("account", "")),
        dedup_key=dedup_key,
        timestamp_ms=int(timestamp_ms),
        message_id=doc.get("mid"),
        text=doc.get("text"),
        payload=doc.get("payload"),
        attachments=tuple(Attachment(t, u, m) for t, u, m in doc.get("att") or ()),
        standby=bool(doc.get("standby", False)),
        subtype=doc.get("subtype"),
        linking_status=LinkingStatus(linking) if linking else None,
        authorization_code=doc.get("code"),
        app_id=doc.get("app"),
        metadata=doc.get("meta"),
        referral_ref=doc.get("ref"),
        watermark_ms=doc.get("wm"),
        related_ids=tuple(doc.get("rel") or ()),
        error_code=doc.get("err"),
    )


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One pending inbox row, claimed for processing."""

    id: int
    event: InboundEvent
    attempts: int


@dataclass(frozen=True, slots=True)
class ClaimedConversation:
    """A conversation leased to one worker, with its pending events in timestamp order."""

    channel: Channel
    user_id: str
    items: tuple[InboxItem, ...]
    muted: bool = False  # a human took over the thread: record, do not answer


_SERIALIZED: weakref.WeakSet[Engine] = weakref.WeakSet()


def serialize_sqlite_writes(engine: Engine) -> None:
    """Make writers queue for SQLite's write lock in the kernel, not in SQLite's busy loop.

    Several threads (the webhook's inbox writer, the inbox worker, the outbox sender, the assistant's
    and the ledger's writes) and several processes (``serve``, ``amanah worker``) share one SQLite
    file. SQLite makes a writer that finds the lock taken sleep (1, 2, 5, ... 100 ms) and retry, with
    no fairness: under load the webhook's writer starved for seconds behind a busy worker. Here every
    ``BEGIN IMMEDIATE`` (see ``db.write_engine``) first takes a process-wide lock and then an
    exclusive ``flock`` on ``<database>-amanah.lock``, both released when the connection goes back
    to the pool (after its commit or rollback): waiting writers are woken as soon as the lock is free.
    Writers that do not go through this engine still meet SQLite's own busy handling. No-op on
    PostgreSQL; idempotent per engine.
    """
    if engine.dialect.name != "sqlite" or engine in _SERIALIZED:
        return
    _SERIALIZED.add(engine)
    lock = threading.RLock()
    database = engine.url.database or ""
    lock_file: Any = None
    if database and database != ":memory:" and not database.startswith("file::memory:"):
        import fcntl

        lock_file = open(f"{database}-amanah.lock", "a+b")  # held as long as the engine
        weakref.finalize(engine, lock_file.close)
    held = threading.local()

    def take(conn: Connection) -> None:
        if conn.get_execution_options().get("amanah_sqlite_begin") != "immediate":
            return
        info = conn.connection.info
        if info.get("amanah_write_lock"):
            return
        lock.acquire()
        depth = getattr(held, "depth", 0)
        if depth == 0 and lock_file is not None:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        held.depth = depth + 1
        info["amanah_write_lock"] = True

    def give(dbapi_connection: Any, record: Any) -> None:
        if not record.info.pop("amanah_write_lock", False):
            return
        held.depth = getattr(held, "depth", 1) - 1
        if held.depth == 0 and lock_file is not None:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
        lock.release()

    event.listen(engine, "begin", take, insert=True)
    event.listen(engine.pool, "checkin", give)


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(channel_inbox).on_conflict_do_nothing(
            index_elements=["channel", "dedup_key"]
        )
    if dialect == "sqlite":
        return sqlite.insert(channel_inbox).on_conflict_do_nothing(index_elements=["channel", "dedup_key"])
    raise NotImplementedError(f"unsupported database {dialect!r}")  # pragma: no cover


def _thread_upsert(dialect: str) -> Any:
    return postgresql.insert(channel_threads) if dialect == "postgresql" else sqlite.insert(channel_threads)


class SqlInbox:
    """The ``channel_inbox`` table plus the conversation leases in ``channel_threads``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        self._dialect = engine.dialect.name
        self._insert = _insert(self._dialect)
        i, t = channel_inbox, channel_threads
        self._complete = (
            update(i)
            .where(i.c.id == bindparam("iid"), i.c.status == PENDING)
            .values(status=DONE, outcome=bindparam("outcome"), processed_at=bindparam("now"), event=None)
        )
        self._any_pending = select(i.c.id).where(i.c.status == PENDING).limit(1)
        self._release = (
            update(t)
            .where(
                t.c.channel == bindparam("ch"),
                t.c.user_id == bindparam("user"),
                t.c.lease_owner == bindparam("owner"),
            )
            .values(lease_owner=None, lease_until=None)
        )
        self._renew = (
            update(t)
            .where(
                t.c.channel == bindparam("ch"),
                t.c.user_id == bindparam("user"),
                t.c.lease_owner == bindparam("owner"),
            )
            .values(lease_until=bindparam("until"))
        )

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- writing (webhook hot path) ----------------------------------------------------------------

    @staticmethod
    def rows_for(
        channel: Channel, events: Iterable[InboundEvent], received_at: datetime
    ) -> list[dict[str, Any]]:
        """Insert parameters for ``events`` (built in the request handler, outside any transaction)."""
        return [
            {
                "channel": channel.value,
                "dedup_key": e.dedup_key[:255],
                "user_id": e.user_id[:200],
                "kind": e.kind.value,
                "timestamp_ms": e.timestamp_ms,
                "event": event_document(e),
                "status": PENDING,
                "attempts": 0,
                "received_at": received_at,
            }
            for e in events
        ]

    def add_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (from :meth:`rows_for`) in one transaction; duplicates are skipped."""
        if not rows:
            return
        with self._writer.begin() as conn:
            conn.execute(self._insert, list(rows))

    def add(
        self, channel: Channel, events: Sequence[InboundEvent], received_at: datetime | None = None
    ) -> None:
        self.add_many(self.rows_for(channel, events, received_at or datetime.now(UTC)))

    # --- claiming ----------------------------------------------------------------------------------

    def claim(
        self, owner: str, *, now: datetime, lease_s: float, conversations: int = 50, scan: int = 500
    ) -> list[ClaimedConversation]:
        """Lease up to ``conversations`` conversations with pending events; return their events."""
        until = now + timedelta(seconds=lease_s)
        if self._dialect == "sqlite":
            # Look before taking the write lock: an idle poll must not queue behind the writers.
            with self._engine.connect() as conn:
                if conn.execute(self._any_pending).first() is None:
                    return []
        with self._writer.begin() as conn:
            i, t = channel_inbox, channel_threads
            # Only conversations nobody else holds: with several workers, the oldest pending events
            # are mostly those of conversations another worker is answering right now.
            stmt = (
                select(i.c.channel, i.c.user_id)
                .select_from(i.outerjoin(t, and_(t.c.channel == i.c.channel, t.c.user_id == i.c.user_id)))
                .where(
                    i.c.status == PENDING,
                    or_(t.c.lease_owner.is_(None), t.c.lease_until < now, t.c.lease_owner == owner),
                )
                .order_by(i.c.id)
                .limit(scan)
            )
            # No row locks here: the lease on the conversation (channel_threads) is what is claimed.
            seen: dict[tuple[str, str], None] = {}
            for channel, user_id in conn.execute(stmt):
                seen.setdefault((channel, user_id), None)
                if len(seen) >= conversations:
                    break
            if not seen:
                return []
            leased_rows = self._lease(conn, sorted(seen), owner, now, until)
            if not leased_rows:
                return []
            leased = [(ch, user) for ch, user, _muted in leased_rows]
            muted = {(ch, user): m for ch, user, m in leased_rows}
            rows = conn.execute(
                select(
                    channel_inbox.c.id,
                    channel_inbox.c.channel,
                    channel_inbox.c.user_id,
                    channel_inbox.c.dedup_key,
                    channel_inbox.c.timestamp_ms,
                    channel_inbox.c.event,
                    channel_inbox.c.attempts,
                )
                .where(
                    channel_inbox.c.status == PENDING,
                    tuple_(channel_inbox.c.channel, channel_inbox.c.user_id).in_(leased),
                )
                .order_by(channel_inbox.c.timestamp_ms, channel_inbox.c.id)
            ).all()
        grouped: dict[tuple[str, str], list[InboxItem]] = {}
        for r in rows:
            event = event_from_row(r.channel, r.user_id, r.dedup_key, r.timestamp_ms, r.event or {})
            grouped.setdefault((r.channel, r.user_id), []).append(InboxItem(r.id, event, r.attempts))
        return [
            ClaimedConversation(Channel(ch), user, tuple(items), muted=bool(muted.get((ch, user))))
            for (ch, user), items in sorted(grouped.items(), key=lambda kv: kv[1][0].id)
        ]

    def _lease(
        self,
        conn: Connection,
        keys: Sequence[tuple[str, str]],
        owner: str,
        now: datetime,
        until: datetime,
    ) -> list[tuple[str, str, bool]]:
        t = channel_threads
        if self._dialect == "postgresql" and keys:
            # Skip conversations whose thread row another transaction holds (a worker writing its
            # batch, another claim): waiting for them, in whatever order, is how two workers would
            # deadlock; they are leased by someone else anyway, or free again at the next claim.
            held = conn.execute(
                select(t.c.channel, t.c.user_id)
                .where(tuple_(t.c.channel, t.c.user_id).in_(list(keys)))
                .order_by(t.c.channel, t.c.user_id)
                .with_for_update(skip_locked=True)
            ).all()
            mine = {(r.channel, r.user_id) for r in held}
            existing = {
                (r.channel, r.user_id)
                for r in conn.execute(
                    select(t.c.channel, t.c.user_id).where(tuple_(t.c.channel, t.c.user_id).in_(list(keys)))
                )
            }
            keys = [k for k in keys if k in mine or k not in existing]
            if not keys:
                return []
        ins = _thread_upsert(self._dialect)
        values = [
            {
                "channel": ch,
                "user_id": user,
                "muted": False,
                "lease_owner": owner,
                "lease_until": until,
                "updated_at": now,
            }
            for ch, user in keys
        ]
        stmt = (
            ins.values(values)
            .on_conflict_do_update(
                index_elements=["channel", "user_id"],
                set_={"lease_owner": owner, "lease_until": until},
                where=or_(t.c.lease_owner.is_(None), t.c.lease_until < now, t.c.lease_owner == owner),
            )
            .returning(t.c.channel, t.c.user_id, t.c.muted)
        )
        return [(r.channel, r.user_id, bool(r.muted)) for r in conn.execute(stmt)]

    def renew(self, conn: Connection, channel: Channel, user_id: str, owner: str, until: datetime) -> bool:
        """Extend the lease in the caller's transaction; False if ``owner`` lost it."""
        result = conn.execute(
            self._renew, {"ch": channel.value, "user": user_id, "owner": owner, "until": until}
        )
        return result.rowcount == 1

    def release(self, channel: Channel, user_id: str, owner: str, conn: Connection | None = None) -> None:
        """Give the conversation's lease back (in ``conn``'s transaction, or a transaction of its own)."""
        params = {"ch": channel.value, "user": user_id, "owner": owner}
        if conn is not None:
            conn.execute(self._release, params)
            return
        with self._writer.begin() as own:
            own.execute(self._release, params)

    # --- completing --------------------------------------------------------------------------------

    def complete(self, conn: Connection, inbox_id: int, outcome: str, now: datetime) -> bool:
        """Mark a pending row done (clearing the stored event) in the caller's transaction.

        False when the row is no longer pending (another worker finished it): roll back then.
        """
        result = conn.execute(self._complete, {"iid": inbox_id, "outcome": outcome[:32], "now": now})
        return result.rowcount == 1

    def record_failure(self, inbox_id: int, error: str, now: datetime, *, max_attempts: int) -> bool:
        """Count a failed attempt; after ``max_attempts`` the row is ``failed``. True if it gave up."""
        with self._writer.begin() as conn:
            row = conn.execute(
                select(channel_inbox.c.attempts).where(
                    channel_inbox.c.id == inbox_id, channel_inbox.c.status == PENDING
                )
            ).first()
            if row is None:
                return False
            attempts = int(row.attempts) + 1
            give_up = attempts >= max_attempts
            values: dict[str, Any] = {"attempts": attempts, "error": error[:500]}
            if give_up:
                values.update(status=FAILED, processed_at=now, outcome="error")
            conn.execute(update(channel_inbox).where(channel_inbox.c.id == inbox_id).values(**values))
            return give_up

    # --- inspection --------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(channel_inbox.c.status, func.count()).group_by(channel_inbox.c.status)
            ).all()
        return {str(status): int(n) for status, n in rows}

    def pending_count(self) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(channel_inbox).where(channel_inbox.c.status == PENDING)
                ).scalar_one()
            )

    def purge(self, before: datetime) -> int:
        """Delete processed rows received before ``before`` (keep ≥ 7 days for WhatsApp dedup)."""
        with self._writer.begin() as conn:
            result = conn.execute(
                channel_inbox.delete().where(
                    and_(channel_inbox.c.status != PENDING, channel_inbox.c.received_at < before)
                )
            )
        return int(result.rowcount or 0)
