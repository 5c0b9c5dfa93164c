"""The outbox sender's token buckets (``adapters/channels/pacing.py``): GCRA on an injected clock."""

from __future__ import annotations

import pytest

from amanah.adapters.channels.pacing import TokenBucket, channel_bucket, thread_bucket

T = 1_773_576_000.0  # an epoch-sized clock value: float rounding must not make a due token late


def admitted(bucket: TokenBucket, key: str, times: list[float]) -> list[float]:
    """Offer one call at each time; return the times that got a token."""
    out = []
    for t in times:
        if bucket.wait(key, t) == 0.0:
            bucket.take(key, t)
            out.append(t)
    return out


def test_burst_then_one_per_interval() -> None:
    """1/s with burst 3: three calls at once, the fourth waits exactly 1 s, then one a second."""
    bucket = TokenBucket(1.0, 3)
    for _ in range(3):
        assert bucket.wait("u", T) == 0.0
        bucket.take("u", T)
    assert bucket.wait("u", T) == pytest.approx(1.0)
    assert bucket.wait("u", T + 0.4) == pytest.approx(0.6)
    assert bucket.wait("u", T + 1.0) == 0.0
    bucket.take("u", T + 1.0)
    assert bucket.wait("u", T + 1.0) == pytest.approx(1.0)


def test_offered_every_100_ms_for_5_s_admits_burst_plus_rate() -> None:
    """Calls offered every 100 ms for 5 s: 3 in the first instant, then one per second (3 + 5)."""
    times = [T + i / 10 for i in range(51)]
    got = admitted(TokenBucket(1.0, 3), "u", times)
    assert [round(t - T, 1) for t in got] == [0.0, 0.1, 0.2, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_a_quiet_spell_refills_the_burst_but_never_more() -> None:
    """After 100 s of silence the bucket holds its burst (3), not 100 tokens."""
    bucket = TokenBucket(1.0, 3)
    admitted(bucket, "u", [T] * 3)
    assert bucket.available("u", T) == 0
    assert bucket.available("u", T + 1.5) == 1
    assert bucket.available("u", T + 100) == 3
    assert admitted(bucket, "u", [T + 100] * 5) == [T + 100] * 3


def test_keys_are_independent() -> None:
    """One key's empty bucket does not delay another key."""
    bucket = TokenBucket(1.0, 1)
    bucket.take("busy", T)
    assert bucket.wait("busy", T) > 0
    assert bucket.wait("calm", T) == 0.0 and bucket.available("calm", T) == 1


def test_waiting_takes_nothing() -> None:
    """Asking how long to wait, however often, does not use a token."""
    bucket = TokenBucket(2.0, 1)
    for _ in range(10):
        assert bucket.wait("u", T) == 0.0
    bucket.take("u", T)
    for _ in range(10):
        assert bucket.wait("u", T) == pytest.approx(0.5)
    assert bucket.wait("u", T + 0.5) == 0.0


def test_full_buckets_are_forgotten_and_busy_ones_kept() -> None:
    """Many one-off keys do not pile up in memory; a key still paced keeps its state through a prune."""
    bucket = TokenBucket(1.0, 1)
    bucket.take("busy", T + 10)
    for n in range(10_000):
        bucket.take(n, T + n / 1000)
    assert len(bucket) < 5_000
    assert bucket.wait("busy", T + 10) == pytest.approx(1.0)


def test_channel_bucket_holds_a_tenth_of_a_second_and_zero_disables() -> None:
    """A Page bucket at 250/s holds 25 tokens (at most 275 calls in any second); 0 means no bucket."""
    bucket = channel_bucket(250.0)
    assert bucket is not None and bucket.burst == 25
    assert len(admitted(bucket, "messenger", [T] * 40)) == 25
    fresh = channel_bucket(250.0)
    assert fresh is not None
    times = [T + i / 1000 for i in range(1000)]  # offered 1,000/s for one second
    assert 270 <= len(admitted(fresh, "messenger", times)) <= 275
    slow = channel_bucket(2.0)
    assert slow is not None and slow.burst == 1
    assert channel_bucket(0) is None
    assert thread_bucket(0, 3) is None


@pytest.mark.parametrize(("rate", "burst"), [(-1.0, 3), (float("inf"), 3), (float("nan"), 3), (1.0, 0)])
def test_nonsense_is_refused(rate: float, burst: int) -> None:
    """A bucket needs a positive finite rate and a burst of at least one."""
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)
