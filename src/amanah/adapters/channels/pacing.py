"""Token buckets for the outbox sender: one per conversation thread, one per Page / phone number.

Meta throttles a Page above 300 Send API calls a second and "may" throttle a single thread that gets
too many messages; WhatsApp Cloud API allows 80 messages a second per business phone number by
default (inbound and outbound together) and about one message every 6 seconds to the same user, with
bursts (spec §2.8, §3, §7.3 rule 9; Meta's WhatsApp "Throughput" page). The sender paces itself below
these instead of waiting for the throttling errors.

:class:`TokenBucket` holds ``burst`` tokens per key, refilled at ``rate_per_s``. It is the generic
cell rate algorithm (GCRA): per key it keeps one float, the "theoretical arrival time" of the next
call, so a bucket costs one dictionary entry, and a full bucket (the usual case) costs nothing: keys
whose bucket is full again are dropped now and then. Times are seconds on any monotonic scale, passed
in by the caller (the sender's injectable monotonic clock), so tests need not sleep.

The buckets live in one process's memory. With N sender processes each applies its own, so a Page
may see up to N times the configured rate (and a thread, whose rows any process may take, somewhat
more than its rate): divide the rates by N (see README, "Pacing").
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

from amanah.domain.conversation import Channel

_EPS_S = 1e-5  # a token due within 10 µs counts as due (float error on clock values; the database keeps µs)

DEFAULT_CHANNEL_RATE_PER_S: Mapping[Channel, float] = {Channel.MESSENGER: 250.0, Channel.WHATSAPP: 60.0}
"""Calls a second per Page / phone number (``AMANAH_OUTBOX_{MESSENGER,WHATSAPP}_RATE_PER_S``): below
Meta's 300 calls/s per Page, and WhatsApp's default 80 messages/s per number (which counts inbound
messages too; a number upgraded to 1,000/s can be given more)."""

CHANNEL_BURST_S = 0.1
"""A channel bucket holds this many seconds' worth of its rate (at least one token): at most
``rate x (1 + CHANNEL_BURST_S)`` calls leave in any one second (250/s -> 275)."""


class TokenBucket:
    """Buckets of ``burst`` tokens refilled at ``rate_per_s``, one per key (GCRA, in memory)."""

    __slots__ = ("_interval", "_prune_at", "_tat", "_tolerance", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if not rate_per_s > 0 or not math.isfinite(rate_per_s):
            raise ValueError(f"a token bucket needs a positive rate, not {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"a token bucket needs a burst of at least 1, not {burst!r}")
        self.rate_per_s = float(rate_per_s)
        self.burst = int(burst)
        self._interval = 1.0 / self.rate_per_s
        self._tolerance = (self.burst - 1) * self._interval
        self._tat: dict[Hashable, float] = {}  # key -> when its bucket is full again
        self._prune_at = 4096

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` has a token (0.0: it has one now). Takes nothing."""
        tat = self._tat.get(key)
        if tat is None:
            return 0.0
        wait = tat - self._tolerance - now
        return wait if wait > _EPS_S else 0.0

    def take(self, key: Hashable, now: float) -> None:
        """Take one of ``key``'s tokens (after :meth:`wait` said one is there)."""
        tat = self._tat.get(key, now)
        self._tat[key] = (tat if tat > now else now) + self._interval
        if len(self._tat) > self._prune_at:
            self._prune(now)

    def available(self, key: Hashable, now: float) -> int:
        """How many tokens ``key`` has now (0 to ``burst``)."""
        tat = self._tat.get(key)
        if tat is None or tat <= now:
            return self.burst
        room = self._tolerance - (tat - now) + _EPS_S
        return 0 if room < 0 else min(self.burst, int(room // self._interval) + 1)

    def __len__(self) -> int:
        """Keys whose bucket may not be full (full ones are forgotten from time to time)."""
        return len(self._tat)

    def _prune(self, now: float) -> None:
        self._tat = {k: t for k, t in self._tat.items() if t > now}
        self._prune_at = max(4096, 2 * len(self._tat))


def channel_bucket(rate_per_s: float) -> TokenBucket | None:
    """The bucket of one Page / phone number at ``rate_per_s`` (0: not paced, None)."""
    if rate_per_s <= 0:
        return None
    return TokenBucket(rate_per_s, max(1, math.ceil(rate_per_s * CHANNEL_BURST_S)))


def thread_bucket(rate_per_s: float, burst: int) -> TokenBucket | None:
    """The per-thread buckets at ``rate_per_s`` with ``burst`` (rate 0: not paced, None)."""
    return TokenBucket(rate_per_s, burst) if rate_per_s > 0 else None


__all__ = ["CHANNEL_BURST_S", "DEFAULT_CHANNEL_RATE_PER_S", "TokenBucket", "channel_bucket", "thread_bucket"]
