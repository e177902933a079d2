"""The pre-handshake check on QUIC Initial datagrams (upstream-control-plane.md §1.3), sans-IO.

A datagram passes only if its 76-byte trailer has a timestamp within ±120 s of `now`, a client
X25519 key in the ACL, a MAC1 made with the X25519 secret shared with that key, and a (key, nonce)
pair not seen in the last 240 s (twice the window, so a replay cannot outlive the cache). The
replay cache is filled only after the MAC verified, so forged packets cannot evict real entries.
Every failure is a silent drop; `reason` exists for counters and tests, never for the peer.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nacl import bindings as sodium

from oxwrtd.control.acl import Acl, AllowedKey
from schema.wire import mac1, split_trailer

WINDOW_SECS: Final = 120
REPLAY_TTL_SECS: Final = 2 * WINDOW_SECS
REPLAY_CACHE_MAX: Final = 100_000  # ~5 MB worst case; beyond that, fail closed (drop)


@dataclass(frozen=True)
class Passed:
    packet: bytes  # the QUIC datagram with the trailer stripped
    client: AllowedKey
    client_x25519: bytes


@dataclass(frozen=True)
class Dropped:
    reason: str


class TrailerCheck:
    def __init__(self, server_x25519_secret: bytes, acl: Callable[[], Acl]) -> None:
        self._secret = server_x25519_secret
        self._acl = acl
        self._shared: dict[bytes, bytes] = {}
        self._seen: set[tuple[bytes, bytes]] = set()
        self._expiry: deque[tuple[float, tuple[bytes, bytes]]] = deque()

    def check(self, datagram: bytes, now: float) -> Passed | Dropped:
        split = split_trailer(datagram)
        if split is None:
            return Dropped("too short for a trailer")
        packet, t = split
        if abs(t.timestamp - int(now)) > WINDOW_SECS:
            return Dropped("timestamp outside the window")
        client = self._acl().lookup(t.client_key)
        if client is None:
            return Dropped("client key not in the ACL")
        shared = self._shared.get(t.client_key)
        if shared is None:
            try:
                shared = bytes(sodium.crypto_scalarmult(self._secret, t.client_key))
            except Exception:  # libsodium refuses low-order points with a RuntimeError
                return Dropped("degenerate client key")
            self._shared[t.client_key] = shared
        if not hmac.compare_digest(mac1(shared, packet, t.timestamp_bytes, t.nonce), t.mac1):
            return Dropped("bad MAC1")
        self._expire(now)
        entry = (t.client_key, t.nonce)
        if entry in self._seen:
            return Dropped("replayed nonce")
        if len(self._seen) >= REPLAY_CACHE_MAX:
            return Dropped("replay cache full")
        self._seen.add(entry)
        self._expiry.append((now + REPLAY_TTL_SECS, entry))
        return Passed(packet, client, t.client_key)

    def forget_keys_not_in(self, acl: Acl) -> None:
        """After an ACL change: drop cached shared secrets of removed keys."""
        for key in [k for k in self._shared if acl.lookup(k) is None]:
            del self._shared[key]

    def _expire(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, entry = self._expiry.popleft()
            self._seen.discard(entry)


__all__ = ["REPLAY_TTL_SECS", "WINDOW_SECS", "Dropped", "Passed", "TrailerCheck"]
