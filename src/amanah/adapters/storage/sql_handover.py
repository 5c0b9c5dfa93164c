"""Who controls a Messenger/WhatsApp thread, handover tickets, and who wrote an outbox message.

The columns come with migration ``0006_handover`` (see ``schema_channels.py``):

* ``channel_threads.muted`` / ``control_app_id``: the bot is silent in a muted thread; on Messenger
  ``control_app_id`` names the app that owns the thread when it is not ours (the Page Inbox after a
  handover), so a release knows it must ``take_thread_control`` first;
* ``agent_notes`` rows with a ``ticket``: a conversation handed to a person. The ticket id is random
  and opaque (it travels through Meta in the handover ``metadata``); a thread has at most one open
  ticket, resolved when the thread is given back to the bot;
* ``channel_outbox.agent``: the bank agent who wrote a message (NULL: the assistant).

Every write takes the caller's connection: it belongs to the caller's transaction (the one that
queues the platform calls and their disclosure records).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from amanah.adapters.storage.schema_channels import agent_notes, channel_outbox, channel_threads
from amanah.domain.conversation import Channel

TICKET_PREFIX = "t_"


def new_ticket() -> str:
    """A random, opaque ticket id (``t_`` + 16 URL-safe characters): it says nothing about anyone."""
    return TICKET_PREFIX + secrets.token_urlsafe(12)


@dataclass(frozen=True, slots=True)
class ThreadControl:
    """What the handover path needs to know about one thread."""

    last_user_message_at: datetime | None
    muted: bool
    control_app_id: str | None


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    ticket: str
    reason: str
    created: bool  # False: the thread already had this open ticket


class SqlHandover:
    """Thread control, tickets and message authorship on the channel tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- threads --------------------------------------------------------------------------------

    def thread(self, conn: Connection, channel: Channel, user_id: str) -> ThreadControl | None:
        t = channel_threads
        row = conn.execute(
            select(t.c.last_user_message_at, t.c.muted, t.c.control_app_id).where(
                t.c.channel == channel.value, t.c.user_id == user_id
            )
        ).first()
        if row is None:
            return None
        return ThreadControl(row.last_user_message_at, bool(row.muted), row.control_app_id)

    def set_thread(
        self,
        conn: Connection,
        channel: Channel,
        user_id: str,
        *,
        muted: bool,
        control_app_id: str | None,
        now: datetime,
    ) -> None:
        """Mute or unmute the bot in the thread and record who controls it (creates the row if needed)."""
        t = channel_threads
        insert = postgresql.insert(t) if self._dialect == "postgresql" else sqlite.insert(t)
        conn.execute(
            insert.values(
                channel=channel.value,
                user_id=user_id,
                muted=muted,
                control_app_id=control_app_id,
                updated_at=now,
            ).on_conflict_do_update(
                index_elements=["channel", "user_id"],
                set_={"muted": muted, "control_app_id": control_app_id, "updated_at": now},
            )
        )

    # --- tickets --------------------------------------------------------------------------------

    def open_ticket(self, conn: Connection, channel: Channel, user_id: str) -> Ticket | None:
        """The thread's open ticket, if it has one."""
        n = agent_notes
        row = conn.execute(
            select(n.c.id, n.c.ticket, n.c.reason)
            .where(
                n.c.channel == channel.value,
                n.c.user_id == user_id,
                n.c.ticket.is_not(None),
                n.c.resolved_at.is_(None),
            )
            .order_by(n.c.id.desc())
            .limit(1)
        ).first()
        return Ticket(row.id, row.ticket, row.reason, created=False) if row is not None else None

    def ensure_ticket(
        self, conn: Connection, channel: Channel, user_id: str, *, reason: str, text: str, now: datetime
    ) -> Ticket:
        """The thread's open ticket, or a new one (an agent note with a fresh opaque ticket id)."""
        existing = self.open_ticket(conn, channel, user_id)
        if existing is not None:
            return existing
        ticket = new_ticket()
        result = conn.execute(
            agent_notes.insert().values(
                channel=channel.value,
                user_id=user_id,
                reason=reason,
                text=text,
                ticket=ticket,
                created_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        return Ticket(int(key[0]), ticket, reason, created=True)

    def close_tickets(self, conn: Connection, channel: Channel, user_id: str, now: datetime) -> list[str]:
        """Resolve the thread's open tickets; returns their ids."""
        n = agent_notes
        open_ = [
            r.ticket
            for r in conn.execute(
                select(n.c.ticket).where(
                    n.c.channel == channel.value,
                    n.c.user_id == user_id,
                    n.c.ticket.is_not(None),
                    n.c.resolved_at.is_(None),
                )
            )
        ]
        if open_:
            conn.execute(
                update(n)
                .where(
                    n.c.channel == channel.value,
                    n.c.user_id == user_id,
                    n.c.ticket.is_not(None),
                    n.c.resolved_at.is_(None),
                )
                .values(resolved_at=now)
            )
        return open_

    def tickets(self, *, open_only: bool = True, limit: int = 100) -> list[dict[str, Any]]:
        """Handover tickets, newest first, for agents and operators."""
        n = agent_notes
        stmt = select(n).where(n.c.ticket.is_not(None)).order_by(n.c.id.desc()).limit(limit)
        if open_only:
            stmt = stmt.where(n.c.resolved_at.is_(None))
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r._mapping.items()}
            for r in rows
        ]

    # --- authorship -----------------------------------------------------------------------------

    def mark_agent(self, conn: Connection, keys: Iterable[str], agent: str) -> None:
        """Record that the bank agent ``agent`` wrote the outbox rows with these keys."""
        keys = list(keys)
        if keys:
            o = channel_outbox
            conn.execute(update(o).where(o.c.key.in_(keys)).values(agent=agent))
