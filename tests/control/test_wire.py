"""schema/wire.py: frames, messages, signatures, the trailer maths."""

from __future__ import annotations

import contextlib
import os

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schema import wire

REQUESTS: list[wire.Request] = [
    wire.Status(),
    wire.Get(key="lan.address"),
    wire.Set(key="hostname", value="gw"),
    wire.Reload(confirm_within_secs=60, comment="new vlan"),
    wire.ReloadDryRun(),
    wire.Logs(service="dnsmasq", follow=True),
    wire.Collection(collection="rule", action=wire.CrudUpdate(name="r", json="{}")),
    wire.Rollback(confirm=True, to=3),
    wire.FwUpdate(size=10, sha256="0" * 64),
    wire.Diff(rev1=1),
]
RESPONSES: list[wire.Response] = [
    wire.Ok(),
    wire.Value(value="x"),
    wire.StatusReply(services=[wire.ServiceStatus(name="dns", state="running", pid=3)]),
    wire.LogLine(line="hello"),
    wire.FwProgress(bytes_received=5),
    wire.Progress(message="working"),
    wire.Err(message="no", code="x"),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_round_trip_through_a_frame(request_: wire.Request) -> None:
    (body,) = wire.FrameDecoder().feed(wire.encode(request_))
    assert wire.decode_request(body) == request_


@pytest.mark.parametrize("response", RESPONSES, ids=lambda r: type(r).__name__)
def test_responses_round_trip_through_a_frame(response: wire.Response) -> None:
    (body,) = wire.FrameDecoder().feed(wire.encode(response))
    assert wire.decode_response(body) == response


def test_tags_are_the_reference_lower_case_names() -> None:
    assert msgspec.msgpack.decode(wire.encode_body(wire.ReloadDryRun())) == {"op": "reloaddryrun"}
    assert msgspec.msgpack.decode(wire.encode_body(wire.LogLine(line="a")))["kind"] == "logline"
    action = msgspec.msgpack.decode(
        wire.encode_body(wire.Collection(collection="z", action=wire.CrudList()))
    )
    assert action["action"] == {"crud": "list"}


def test_unknown_fields_are_skipped() -> None:
    body = msgspec.msgpack.encode({"op": "get", "key": "hostname", "added_in_v9": [1, 2]})
    assert wire.decode_request(body) == wire.Get(key="hostname")


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (msgspec.msgpack.encode({"op": "selfdestruct"}), "unknown_op", "unknown op 'selfdestruct'"),
        (msgspec.msgpack.encode({"key": "x"}), "unknown_op", "no `op` field"),
        (msgspec.msgpack.encode({"op": "get", "key": 5}), "invalid_field", "$.key"),
        (msgspec.msgpack.encode({"op": "get", "key": "k" * 300}), "invalid_field", "length <= 256"),
        (msgspec.msgpack.encode({"op": "get"}), "invalid_field", "key"),
        (b"\xc1\xc1", "malformed", "not msgpack"),
        (msgspec.msgpack.encode([1, 2]), "unknown_op", "no `op` field"),
        (b"", "malformed", "not msgpack"),
    ],
)
def test_bad_request_bodies_get_a_named_error(body: bytes, code: str, words: str) -> None:
    with pytest.raises(wire.WireError) as e:
        wire.decode_request(body)
    assert e.value.code == code
    assert words in str(e.value)


def test_unknown_response_kind_is_a_clean_error() -> None:
    with pytest.raises(wire.WireError, match="unknown kind 'teapot'"):
        wire.decode_response(msgspec.msgpack.encode({"kind": "teapot"}))


def test_frames_over_the_cap_are_refused_both_ways() -> None:
    with pytest.raises(wire.WireError) as e:
        wire.frame(bytes(wire.MAX_FRAME + 1))
    assert e.value.code == "frame_too_large"
    assert len(wire.frame(bytes(wire.MAX_FRAME))) == wire.MAX_FRAME + 4
    decoder = wire.FrameDecoder()
    with pytest.raises(wire.WireError, match="exceeds the 1048576-byte limit"):
        decoder.feed((wire.MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(wire.WireError):  # poisoned: the framing is lost for good
        decoder.feed(wire.encode(wire.Ok()))


def test_a_stream_ending_inside_a_frame_is_truncated() -> None:
    decoder = wire.FrameDecoder()
    assert decoder.feed(wire.encode(wire.Ok())[:-1]) == []
    with pytest.raises(wire.WireError) as e:
        decoder.end_of_stream()
    assert e.value.code == "truncated"
    wire.FrameDecoder().end_of_stream()  # nothing pending: a clean end


def _feed_split(data: bytes, cuts: list[int]) -> list[bytes] | str:
    decoder = wire.FrameDecoder(max_frame=64)
    out: list[bytes] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    try:
        for a, b in zip([0, *points], [*points, len(data)], strict=True):
            out += decoder.feed(data[a:b])
        decoder.end_of_stream()
    except wire.WireError as e:
        return e.code
    return out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=12))
def test_any_bytes_split_anywhere_decode_the_same_or_fail_cleanly(
    data: bytes, cuts: list[int]
) -> None:
    assert _feed_split(data, cuts) == _feed_split(data, [])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=64), max_size=8), st.lists(st.integers(min_value=0), max_size=12)
)
def test_valid_frames_split_anywhere_come_back_whole(bodies: list[bytes], cuts: list[int]) -> None:
    data = b"".join(wire.frame(b) for b in bodies)
    assert _feed_split(data, cuts) == bodies


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_body_decodes_or_raises_wire_error(body: bytes) -> None:
    for decode in (wire.decode_request, wire.decode_response, wire.decode_hello):
        with contextlib.suppress(wire.WireError):  # anything else fails the test
            decode(body)


def test_mutating_requests_are_classified() -> None:
    assert wire.is_mutating(wire.Set(key="a", value="b"))
    assert wire.is_mutating(wire.Collection(collection="rule", action=wire.CrudRemove(name="x")))
    assert not wire.is_mutating(wire.Collection(collection="rule", action=wire.CrudList()))
    assert wire.is_mutating(wire.Diag(name="stall"))
    assert not wire.is_mutating(wire.Diag(name="links"))
    assert not wire.is_mutating(wire.Status())


def test_a_signature_covers_request_server_nonce_and_counter() -> None:
    seed, server, nonce = os.urandom(32), os.urandom(32), os.urandom(32)
    signed = wire.sign_request(wire.Reload(), seed, server, nonce, 7)
    payload = wire.signing_payload(signed.request, server, nonce, 7)
    assert wire.verify_signature(signed.key, payload, signed.signature)
    for other in (
        wire.signing_payload(signed.request, os.urandom(32), nonce, 7),
        wire.signing_payload(signed.request, server, os.urandom(32), 7),
        wire.signing_payload(signed.request, server, nonce, 8),
        wire.signing_payload(wire.encode_body(wire.Reset(confirm=True)), server, nonce, 7),
    ):
        assert not wire.verify_signature(signed.key, other, signed.signature)
    assert wire.decode_request(wire.encode_body(signed)) == signed


def test_trailer_layout_and_mac() -> None:
    client_seed, server_seed = os.urandom(32), os.urandom(32)
    from nacl.signing import SigningKey

    server_pub = bytes(SigningKey(server_seed).verify_key)
    secret = wire.x25519_secret_from_seed(client_seed)
    public = wire.x25519_public_from_secret(secret)
    packet = b"\xc0" + os.urandom(1199)
    trailer = wire.build_trailer(
        packet,
        client_secret=secret,
        client_public=public,
        server_x25519=wire.x25519_public_from_ed25519(server_pub),
        timestamp=1_700_000_000,
        nonce=b"N" * 8,
    )
    assert len(trailer) == wire.TRAILER_LEN
    split = wire.split_trailer(packet + trailer)
    assert split is not None
    stripped, t = split
    assert stripped == packet
    assert (t.client_key, t.timestamp, t.nonce) == (public, 1_700_000_000, b"N" * 8)
    assert trailer[-16:] == bytes(16)  # MAC2 unused
    assert wire.split_trailer(b"\xc0" * 76) is None


def test_a_non_point_is_not_an_ed25519_key() -> None:
    with pytest.raises(ValueError, match="not a valid ed25519 public key"):
        wire.x25519_public_from_ed25519(b"\x02" + bytes(30) + b"\x80")
