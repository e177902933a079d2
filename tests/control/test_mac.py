"""The pre-handshake trailer check: window, ACL, MAC1, replay cache."""

from __future__ import annotations

import os

from nacl.signing import SigningKey

from oxwrtd.control import acl as aclmod
from oxwrtd.control.mac import Dropped, Passed, TrailerCheck
from schema import wire

NOW = 1_800_000_000.0


class Pair:
    def __init__(self) -> None:
        self.server_seed = os.urandom(32)
        self.client_seed = os.urandom(32)
        client_pub = bytes(SigningKey(self.client_seed).verify_key)
        self.acl, _ = aclmod.build([("laptop", client_pub.hex())], None)
        server_secret = wire.x25519_secret_from_seed(self.server_seed)
        self.check = TrailerCheck(server_secret, lambda: self.acl)
        self.server_x = wire.x25519_public_from_secret(server_secret)

    def datagram(
        self, ts: float = NOW, nonce: bytes | None = None, seed: bytes | None = None
    ) -> bytes:
        packet = b"\xc3" + os.urandom(1199)
        secret = wire.x25519_secret_from_seed(seed or self.client_seed)
        return packet + wire.build_trailer(
            packet,
            client_secret=secret,
            client_public=wire.x25519_public_from_secret(secret),
            server_x25519=self.server_x,
            timestamp=int(ts),
            nonce=nonce or os.urandom(8),
        )


def test_an_authorised_datagram_passes_stripped_and_named() -> None:
    pair = Pair()
    data = pair.datagram()
    verdict = pair.check.check(data, NOW)
    assert isinstance(verdict, Passed)
    assert verdict.packet == data[:-76]
    assert verdict.client.name == "laptop"


def test_the_same_datagram_twice_is_a_replay() -> None:
    pair = Pair()
    data = pair.datagram()
    assert isinstance(pair.check.check(data, NOW), Passed)
    assert pair.check.check(data, NOW + 1) == Dropped("replayed nonce")


def test_clock_skew_beyond_120_seconds_is_dropped() -> None:
    pair = Pair()
    assert isinstance(pair.check.check(pair.datagram(ts=NOW - 120), NOW), Passed)
    assert pair.check.check(pair.datagram(ts=NOW - 121), NOW) == Dropped(
        "timestamp outside the window"
    )
    assert pair.check.check(pair.datagram(ts=NOW + 121), NOW) == Dropped(
        "timestamp outside the window"
    )


def test_unknown_keys_forged_macs_and_stubs_are_dropped() -> None:
    pair = Pair()
    assert pair.check.check(pair.datagram(seed=os.urandom(32)), NOW) == Dropped(
        "client key not in the ACL"
    )
    data = bytearray(pair.datagram())
    data[10] ^= 1  # the MAC covers the whole QUIC packet
    assert pair.check.check(bytes(data), NOW) == Dropped("bad MAC1")
    assert pair.check.check(b"\xc3" * 50, NOW) == Dropped("too short for a trailer")


def test_a_forged_datagram_does_not_burn_the_real_nonce() -> None:
    pair = Pair()
    data = pair.datagram(nonce=b"n" * 8)
    forged = bytearray(data)
    forged[5] ^= 1
    assert pair.check.check(bytes(forged), NOW) == Dropped("bad MAC1")
    assert isinstance(pair.check.check(data, NOW), Passed)


def test_an_acl_change_is_seen_by_the_next_datagram() -> None:
    pair = Pair()
    pair.acl = aclmod.Acl()
    pair.check.forget_keys_not_in(pair.acl)
    assert pair.check.check(pair.datagram(), NOW) == Dropped("client key not in the ACL")
