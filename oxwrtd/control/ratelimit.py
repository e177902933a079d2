"""Load limits for the control plane, sans-IO (`now` comes in, in seconds).

- `TokenBucket` per client key: capacity 2x the rate, refilled continuously (the reference's shape,
  but keyed by the authenticated key instead of the connection, so reconnecting buys nothing).
- `ConnectionCap`: at most `limit` live connections across every listener.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float
    updated: float

    def level(self, now: float) -> float:
        return min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)

    def take(self, now: float) -> float:
        """0.0 if a token was taken; otherwise the seconds until one is available."""
        self.tokens = self.level(now)
        self.updated = max(self.updated, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else float("inf")


@dataclass
class KeyRateLimit:
    rate_per_sec: float
    buckets: dict[bytes, TokenBucket] = field(default_factory=dict)

    def take(self, key: bytes, now: float) -> float:
        bucket = self.buckets.get(key)
        if bucket is None:
            cap = max(1.0, 2.0 * self.rate_per_sec)
            bucket = self.buckets[key] = TokenBucket(self.rate_per_sec, cap, cap, now)
        return bucket.take(now)

    def set_rate(self, rate_per_sec: float) -> None:
        """Apply a reloaded `max_rpcs_per_sec`; buckets restart full at the new size."""
        if rate_per_sec != self.rate_per_sec:
            self.rate_per_sec = rate_per_sec
            self.buckets.clear()

    def forget_idle(self, now: float) -> None:
        """Drop buckets that are full again: they carry no state worth keeping."""
        for key in [k for k, b in self.buckets.items() if b.level(now) >= b.capacity]:
            del self.buckets[key]


@dataclass
class ConnectionCap:
    limit: int
    live: set[object] = field(default_factory=set)

    def admit(self, conn: object) -> bool:
        if conn in self.live:
            return True
        if len(self.live) >= self.limit:
            return False
        self.live.add(conn)
        return True

    def release(self, conn: object) -> None:
        self.live.discard(conn)


__all__ = ["ConnectionCap", "KeyRateLimit", "TokenBucket"]
