"""Secrets in signed requests travel as salted commitments (schema/wire.py): the signed bytes,
which the journal keeps, hold no secret; the envelope's openings must match them exactly.
The pure functions first, then the same rules through the real server on loopback."""

from __future__ import annotations

import hashlib
import os

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from schema import wire
from tests.control.test_server import Lab, run

SEED, SERVER, NONCE = bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96))
SECRET = "hunter2-unique-xyz"
SECRET_BEARING: list[wire.Request] = [
    wire.ConfigPush(toml='hostname = "r"\n', secrets=f'[[wifi]]\npassphrase = "{SECRET}"\n'),
    wire.Set(key="wifi.home.passphrase", value=SECRET),
    wire.Restore(data_b64=f"base64-tarball-{SECRET}", confirm=True),
]


def sign(request: wire.Request, counter: int = 1) -> wire.Signed:
    return wire.sign_request(request, SEED, SERVER, NONCE, counter)


def signed_inner(envelope: wire.Signed) -> wire.Request:
    return wire.decode_request(envelope.request)


def test_a_commitment_is_the_domain_tagged_salted_sha256() -> None:
    salt = bytes(32)
    digest = hashlib.sha256(b"oxwrt-secret-commit-v1\x00" + salt + b"pw").hexdigest()
    assert wire.commitment(salt, "pw") == "oxwrt-commit:sha256:" + digest
    assert wire.commitment(os.urandom(32), "pw") != wire.commitment(salt, "pw")  # hiding


@pytest.mark.parametrize("request_", SECRET_BEARING, ids=lambda r: type(r).__name__)
def test_the_signed_body_holds_no_secret_and_opens_back_to_the_request(
    request_: wire.Request,
) -> None:
    envelope = sign(request_)
    assert SECRET.encode() not in envelope.request
    assert wire.verify_signature(
        envelope.key, wire.signing_payload(envelope.request, SERVER, NONCE, 1), envelope.signature
    )
    (field,) = wire.COMMITTED_FIELDS[type(request_)]
    assert getattr(signed_inner(envelope), field).startswith("oxwrt-commit:sha256:")
    assert set(envelope.openings) == {field}
    # through the frame codec, as the server receives it
    received = wire.decode_request(wire.encode_body(envelope))
    assert isinstance(received, wire.Signed)
    opened, committed = wire.open_commitments(signed_inner(received), received.openings)
    assert (opened, committed) == (request_, frozenset({field}))


def test_two_signatures_of_one_secret_commit_differently() -> None:
    request = SECRET_BEARING[1]
    assert signed_inner(sign(request)) != signed_inner(sign(request))  # a fresh salt each time


@pytest.mark.parametrize(
    "request_",
    [
        wire.Reload(confirm_within_secs=60, comment="vlan"),
        wire.Reboot(confirm=True),
        wire.ConfigPush(toml='hostname = "r"\n'),  # no secrets file: nothing to commit
    ],
    ids=lambda r: type(r).__name__,
)
def test_a_request_without_secrets_signs_exactly_as_before(request_: wire.Request) -> None:
    envelope = sign(request_, 7)
    old_body = wire.encode_body(request_)
    old_signature = SigningKey(SEED).sign(wire.signing_payload(old_body, SERVER, NONCE, 7))
    assert envelope.request == old_body
    assert envelope.signature == old_signature.signature
    assert envelope.openings == {}
    assert b"openings" not in wire.encode_body(envelope)  # the envelope is the old one too
    assert wire.open_commitments(request_, {}) == (request_, frozenset())


def tampered(envelope: wire.Signed, field: str, **change: object) -> wire.Signed:
    opening = msgspec.structs.replace(envelope.openings[field], **change)
    return msgspec.structs.replace(envelope, openings={**envelope.openings, field: opening})


@pytest.mark.parametrize("request_", SECRET_BEARING, ids=lambda r: type(r).__name__)
def test_a_wrong_salt_or_a_swapped_value_is_refused(request_: wire.Request) -> None:
    envelope = sign(request_)
    (field,) = envelope.openings
    for bad in (
        tampered(envelope, field, salt=os.urandom(32)),
        tampered(envelope, field, value=envelope.openings[field].value + "x"),
    ):
        with pytest.raises(wire.WireError) as err:
            wire.open_commitments(signed_inner(bad), bad.openings)
        assert err.value.code == "signature_invalid"
        assert str(err.value) == f"secrets do not match the signed commitment for field {field}"


def test_an_opening_for_a_field_that_is_not_committed_is_refused() -> None:
    opening = wire.Opening(salt=bytes(32), value="x")
    cases: list[tuple[wire.Request, str]] = [
        (wire.Reload(), "comment"),
        (wire.Set(key="hostname", value="gw"), "key"),
        (wire.ConfigPush(toml=""), "toml"),
    ]
    for request, field in cases:
        with pytest.raises(wire.WireError, match=f"no committed field '{field}'") as err:
            wire.open_commitments(request, {field: opening})
        assert err.value.code == "malformed"


@pytest.mark.parametrize("request_", SECRET_BEARING, ids=lambda r: type(r).__name__)
def test_a_commitment_without_its_opening_is_refused(request_: wire.Request) -> None:
    envelope = sign(request_)
    (field,) = envelope.openings
    with pytest.raises(wire.WireError, match=f"field {field} of .* no opening was sent") as err:
        wire.open_commitments(signed_inner(envelope), {})
    assert err.value.code == "malformed"


def test_an_old_client_request_in_clear_opens_to_itself() -> None:
    request = wire.Set(key="wifi.home.passphrase", value=SECRET)
    assert wire.open_commitments(request, {}) == (request, frozenset())


def test_an_opening_salt_must_be_32_bytes() -> None:
    body = msgspec.msgpack.encode(
        {
            "op": "signed",
            "request": b"",
            "key": bytes(32),
            "signature": bytes(64),
            "counter": 1,
            "openings": {"value": {"salt": bytes(31), "value": "x"}},
        }
    )
    with pytest.raises(wire.WireError) as err:
        wire.decode_request(body)
    assert err.value.code == "invalid_field"


@given(value=st.text(max_size=200), salt=st.binary(min_size=32, max_size=32))
def test_any_value_round_trips_through_its_commitment(value: str, salt: bytes) -> None:
    request = wire.Set(key="k", value=wire.commitment(salt, value))
    opening = wire.Opening(salt=salt, value=value)
    assert wire.open_commitments(request, {"value": opening}) == (
        wire.Set(key="k", value=value),
        frozenset({"value"}),
    )
    envelope = sign(wire.Set(key="k", value=value))
    received = wire.decode_request(wire.encode(envelope)[4:])
    assert isinstance(received, wire.Signed)
    opened, _ = wire.open_commitments(signed_inner(received), received.openings)
    assert opened == wire.Set(key="k", value=value)


# ---------------------------------------------------------------- through the server


def test_the_server_hands_the_handler_clear_values_and_the_committed_bytes() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            request = SECRET_BEARING[0]
            assert await s.call(request) == wire.Value(value="ConfigPush from alice")
            seen, peer = lab.seen[-1]
            assert seen == request
            assert peer.signature is not None
            sig = peer.signature
            assert sig.committed == frozenset({"secrets"})
            assert wire.verify_signature(sig.signer, sig.signed_bytes, sig.signature)
            assert SECRET.encode() not in sig.signed_bytes

    run(scenario)


def test_the_server_refuses_bad_openings_before_the_handler_and_carries_on() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            nonce, server = await s.signing_nonce(), lab.identity.public_key
            seed = lab.seeds["alice"]
            good = wire.sign_request(SECRET_BEARING[1], seed, server, nonce, 100)
            forgot = wire.sign_request(SECRET_BEARING[1], seed, server, nonce, 101)
            reload = wire.sign_request(wire.Reload(), seed, server, nonce, 102)
            stray = wire.Opening(salt=bytes(32), value="x")
            cases = [
                (tampered(good, "value", value="attacker-chosen"), "signature_invalid", "match"),
                (msgspec.structs.replace(forgot, openings={}), "malformed", "no opening was sent"),
                (msgspec.structs.replace(reload, openings={"comment": stray}), "malformed", "no"),
            ]
            for envelope, code, says in cases:
                reply = [f async for f in s.stream_raw(wire.encode(envelope))]
                assert isinstance(reply[-1], wire.Err)
                assert reply[-1].code == code
                assert says in reply[-1].message
            assert lab.seen == []  # nothing refused reached the handler
            # the connection and its counters still work for honest requests
            assert await s.call(SECRET_BEARING[1]) == wire.Value(value="Set from alice")
            assert [r for r, _ in lab.seen] == [SECRET_BEARING[1]]

    run(scenario)


def test_a_push_at_the_clients_size_limit_still_fits_one_frame() -> None:
    from clients.cmd_change import FRAME_MARGIN

    room = wire.MAX_FRAME - FRAME_MARGIN  # what `oxctl config-push` lets through
    push = wire.ConfigPush(toml="t" * (room // 2), secrets="s" * (room - room // 2), comment="c")
    assert len(wire.encode(sign(push))) <= wire.MAX_FRAME + wire.HEADER.size


def test_a_router_that_does_not_offer_commitments_gets_the_request_in_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A router from before commitments would apply `oxwrt-commit:...` as the literal value, so
    the client commits only when the router's hello says it can open them."""
    from oxwrtd.control import server as server_module

    def old_hello(*, nonce: bytes, server_key: bytes, commitments: bool = False) -> wire.Hello:
        return wire.Hello(nonce=nonce, server_key=server_key)  # no `commitments`: an old router

    monkeypatch.setattr(server_module, "Hello", old_hello)

    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            request = SECRET_BEARING[1]
            assert await s.call(request) == wire.Value(value="Set from alice")
            seen, peer = lab.seen[-1]
            assert seen == request
            assert peer.signature is not None
            assert peer.signature.committed == frozenset()
            assert SECRET.encode() in peer.signature.signed_bytes  # in clear: runtime withholds

    run(scenario)
