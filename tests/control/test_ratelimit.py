"""Per-key token buckets and the connection cap, on a manual clock."""

from __future__ import annotations

from oxwrtd.control.ratelimit import ConnectionCap, KeyRateLimit


def test_a_key_gets_a_burst_of_twice_the_rate_then_the_rate() -> None:
    limit = KeyRateLimit(rate_per_sec=2)
    assert [limit.take(b"a", 0.0) for _ in range(4)] == [0.0] * 4
    wait = limit.take(b"a", 0.0)
    assert wait == 0.5
    assert limit.take(b"a", 0.5) == 0.0
    assert limit.take(b"b", 0.5) == 0.0  # another key has its own bucket


def test_a_new_rate_applies_at_once() -> None:
    limit = KeyRateLimit(rate_per_sec=1)
    limit.take(b"a", 0.0)
    limit.take(b"a", 0.0)
    assert limit.take(b"a", 0.0) > 0
    limit.set_rate(10)
    assert limit.take(b"a", 0.0) == 0.0


def test_full_buckets_are_forgotten() -> None:
    limit = KeyRateLimit(rate_per_sec=1)
    limit.take(b"a", 0.0)
    limit.forget_idle(0.5)
    assert b"a" in limit.buckets
    limit.forget_idle(5.0)
    assert b"a" not in limit.buckets


def test_the_cap_admits_up_to_its_limit() -> None:
    cap = ConnectionCap(limit=2)
    a, b, c = object(), object(), object()
    assert cap.admit(a)
    assert cap.admit(b)
    assert cap.admit(a)
    assert not cap.admit(c)
    cap.release(a)
    assert cap.admit(c)
