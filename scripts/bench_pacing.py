"""Micro-benchmark of the outbox sender's pacing (docs/BENCHMARKS.md, "Outbox pacing").

1. CPU per row of ``OutboxSender._pace`` with the default buckets against buckets off, 20,000 users
   at 300 replies/s of simulated time (every bucket has tokens: the steady state), and of
   ``_claimable`` per claim.
2. Database cost of a paced row on SQLite: claim + ``finish`` of a deferred row (batched), against
   claim + ``finish`` of a sent row.

Run: ``.venv/bin/python scripts/bench_pacing.py`` (no network, a temporary SQLite file).
"""

from __future__ import annotations

import itertools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from amanah.adapters.channels.worker import OutboxSender
from amanah.adapters.clock import FixedClock
from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.migrate import migrate
from amanah.adapters.storage.sql_outbox import PENDING, SENT, OutboxRow, QueuedCall, SendResult, SqlOutbox
from amanah.domain.conversation import Channel

T0 = datetime(2026, 3, 15, 12, tzinfo=UTC)


def _sender(paced: bool) -> OutboxSender:
    off: dict[str, Any] = {} if paced else {"thread_rate_per_s": 0, "channel_rate_per_s": {}}
    return OutboxSender(
        outbox=None,  # type: ignore[arg-type]  # never touched by _pace / _claimable
        adapters=dict.fromkeys(Channel.__members__.values()),  # type: ignore[arg-type]
        endpoints={},
        clock=FixedClock(T0),
        typing=False,
        **off,
    )


def pace_us_per_row(paced: bool, n: int = 400_000, users: int = 20_000) -> float:
    rows = [
        OutboxRow(
            id=i,
            key=f"in{i}#0",
            channel=Channel.MESSENGER,
            user_id=str(2_000_000_000_000_000 + i),
            sequence=0,
            method="POST",
            path="me/messages",
            body=b"{}",
            attempts=0,
            was_unconfirmed=False,
            last_user_message_at=T0,
            created_at=T0,
        )
        for i in range(users)
    ]
    clock = [0.0]
    sender = _sender(paced)
    sender._monotonic = lambda: clock[0]
    cycle = itertools.cycle(rows)
    start = time.process_time()
    for _ in range(n):
        clock[0] += 1 / 300
        sender._pace(next(cycle), T0)
    return (time.process_time() - start) / n * 1e6


def claimable_us(paced: bool, n: int = 200_000) -> float:
    sender = _sender(paced)
    start = time.process_time()
    for _ in range(n):
        sender._claimable(64)
    return (time.process_time() - start) / n * 1e6


def db_ms_per_row(n: int = 3000) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'pacing.db'}"
        migrate(url)
        engine = make_engine(url)
        try:
            return _db_ms_per_row(SqlOutbox(engine), n)
        finally:
            engine.dispose()


def _db_ms_per_row(outbox: SqlOutbox, n: int) -> tuple[float, float]:
    calls = [
        QueuedCall(f"k{i}", Channel.MESSENGER, f"u{i}", 0, "POST", "me/messages", b"{}") for i in range(n)
    ]
    with outbox.writer.begin() as conn:
        outbox.enqueue(conn, calls, T0)

    def cycle(now: datetime, deferred: bool) -> float:
        done, start = 0, time.process_time()
        while rows := outbox.claim("bench", now=now, lease_s=30, limit=64):
            if deferred:
                later = {"next_attempt_at": now + timedelta(hours=1)}
                results = [SendResult(r.id, PENDING, later, deferred=True) for r in rows]
            else:
                done_values = {"attempts": 1, "sent_at": now, "message_id": "m"}
                results = [SendResult(r.id, SENT, done_values) for r in rows]
            outbox.finish("bench", results, now)
            done += len(rows)
        return (time.process_time() - start) / max(done, 1) * 1e3

    return cycle(T0, True), cycle(T0 + timedelta(hours=2), False)


def main() -> None:
    for n in range(3):
        off, on = pace_us_per_row(False), pace_us_per_row(True)
        c_off, c_on = claimable_us(False), claimable_us(True)
        print(
            f"round {n}: _pace {off:.2f} -> {on:.2f} µs/row (+{on - off:.2f}); "
            f"_claimable {c_off:.2f} -> {c_on:.2f} µs per claim"
        )
    deferred, sent = db_ms_per_row()
    print(f"SQLite, claim + finish: deferred row {deferred:.3f} ms CPU, sent row {sent:.3f} ms CPU")


if __name__ == "__main__":
    main()
