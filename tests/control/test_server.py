"""The control server over real QUIC on 127.0.0.1 (pure tier: no namespaces, random ports)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aioquic.asyncio.server import QuicServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from clients.transport import Session, TransportError, connect
from oxwrtd.control import acl as aclmod
from oxwrtd.control.identity import ServerIdentity
from oxwrtd.control.server import ControlServer, Limits, Peer
from schema import wire

SIZED_REPLIES = {"big": wire.MAX_FRAME - 64, "huge": wire.MAX_FRAME + 10}
FAST = 0.6  # handshake timeout for peers that must get nothing back


class Lab:
    """One server with a recording handler, and keys for alice and bob."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.identity = ServerIdentity(os.urandom(32))
        self.seeds = {"alice": os.urandom(32), "bob": os.urandom(32), "mallory": os.urandom(32)}
        self.limits = limits or Limits()
        self.seen: list[tuple[wire.Request, Peer]] = []
        self.followers_done = 0
        self.server: ControlServer
        self.port = 0

    def acl(self, *names: str) -> aclmod.Acl:
        table, problems = aclmod.build(
            [(n, bytes(SigningKey(self.seeds[n]).verify_key).hex()) for n in names], None
        )
        assert problems == []
        return table

    async def handle(self, request: wire.Request, peer: Peer) -> AsyncIterator[wire.Response]:
        self.seen.append((request, peer))
        if isinstance(request, wire.Status):
            yield wire.StatusReply(supervisor_uptime_secs=1)
        elif isinstance(request, wire.Reload):
            await asyncio.sleep(0.35)
            yield wire.Ok()
        elif isinstance(request, wire.Logs) and request.follow:
            try:
                for i in range(1000):
                    await asyncio.sleep(0.01)
                    yield wire.LogLine(line=f"live {i}")
            finally:
                self.followers_done += 1
        elif isinstance(request, wire.Logs):
            for i in range(3):
                yield wire.LogLine(line=f"line {i}")
            yield wire.Ok()
        elif isinstance(request, wire.Get) and request.key in SIZED_REPLIES:
            yield wire.Value(value="y" * SIZED_REPLIES[request.key])
        elif isinstance(request, wire.Diag):
            raise RuntimeError("handler bug")
        else:
            yield wire.Value(value=f"{type(request).__name__} from {peer.name}")

    async def __aenter__(self) -> Lab:
        self.server = ControlServer(self.identity, self.acl("alice"), self.handle, self.limits)
        _, self.port = await self.server.listen("127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await asyncio.sleep(0)

    async def connect(
        self, name: str = "alice", timeout: float = 2.0, idle_timeout: float = 30.0
    ) -> Session:
        return await connect(
            "127.0.0.1",
            self.port,
            client_seed=self.seeds[name],
            server_key=self.identity.public_key,
            handshake_timeout=timeout,
            idle_timeout=idle_timeout,
        )


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_an_authorised_client_gets_answers_and_is_named() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            assert await s.call(wire.Status()) == wire.StatusReply(supervisor_uptime_secs=1)
            frames = [f async for f in s.stream(wire.Logs(service="dns"))]
            assert frames[-1] == wire.Ok()
            assert [f.line for f in frames[:-1]] == ["line 0", "line 1", "line 2"]  # type: ignore[union-attr]
            assert await s.call(wire.Get(key="hostname")) == wire.Value(value="Get from alice")
            _, peer = lab.seen[0]
            assert peer.key == bytes(SigningKey(lab.seeds["alice"]).verify_key)
            assert peer.signature is None

    run(scenario)


def test_an_unauthorised_key_times_out_and_the_server_stays_up() -> None:
    async def scenario() -> None:
        async with Lab() as lab:
            with pytest.raises(TransportError, match=r"no answer from 127\.0\.0\.1"):
                await lab.connect("mallory", timeout=FAST)
            async with await lab.connect() as s:
                assert isinstance(await s.call(wire.Status()), wire.StatusReply)

    run(scenario)


def probe(port: int, datagram: bytes, wait: float = 0.3) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait)
        sock.sendto(datagram, ("127.0.0.1", port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


# A long header with an unknown version: a stock QUIC server answers with version negotiation.
UNKNOWN_VERSION = (
    b"\xc0" + bytes.fromhex("1a2a3a4a") + b"\x08" + os.urandom(8) + b"\x00" + bytes(1186)
)


def test_scanners_get_nothing_not_even_version_negotiation() -> None:
    async def scenario() -> None:
        async with Lab() as lab:
            # the probe works: a stock aioquic server on the same identity answers it
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: QuicServer(configuration=lab.server.quic_config),
                local_addr=("127.0.0.1", 0),
            )
            stock_port = transport.get_extra_info("sockname")[1]
            reply = await asyncio.to_thread(probe, stock_port, UNKNOWN_VERSION)
            transport.close()
            assert reply is not None
            for datagram in (
                UNKNOWN_VERSION,
                b"\xc0\x00\x00\x00\x01" + os.urandom(1300),  # v1 Initial, forged trailer
                b"\xe0\x00\x00\x00\x01" + os.urandom(200),  # Handshake, unknown connection
                b"\x40" + os.urandom(100),  # short header
            ):
                assert await asyncio.to_thread(probe, lab.port, datagram) is None

    run(scenario)


def test_mutations_are_signed_and_the_signature_reaches_the_handler() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            assert await s.call(wire.Set(key="hostname", value="gw")) == wire.Value(
                value="Set from alice"
            )
            request, peer = lab.seen[-1]
            assert request == wire.Set(key="hostname", value="gw")
            assert peer.signature is not None
            sig = peer.signature
            assert wire.verify_signature(sig.signer, sig.signed_bytes, sig.signature)
            assert lab.identity.public_key in sig.signed_bytes

    run(scenario)


def test_unsigned_replayed_and_foreign_signatures_are_refused() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            unsigned = wire.encode(wire.Reset(confirm=True))
            reply = [f async for f in s.stream_raw(unsigned)]
            assert reply[-1].code == "signature_required"  # type: ignore[union-attr]
            assert "reset changes the router and must be signed" in reply[-1].message  # type: ignore[union-attr]

            nonce = await s.signing_nonce()
            seed, server = lab.seeds["alice"], lab.identity.public_key
            signed = wire.encode(
                wire.sign_request(wire.Reboot(confirm=True), seed, server, nonce, 41)
            )
            assert [f async for f in s.stream_raw(signed)] == [
                wire.Value(value="Reboot from alice")
            ]
            again = [f async for f in s.stream_raw(signed)]
            assert again[-1].code == "replay"  # type: ignore[union-attr]

            # bob's signature on alice's connection, and one made for another connection
            bob = wire.encode(wire.sign_request(wire.Reload(), lab.seeds["bob"], server, nonce, 50))
            assert [f async for f in s.stream_raw(bob)][-1].code == "signature_invalid"  # type: ignore[union-attr]
            async with await lab.connect() as other:
                stale = wire.encode(wire.sign_request(wire.Reload(), seed, server, nonce, 60))
                reply = [f async for f in other.stream_raw(stale)]
                assert reply[-1].code == "signature_invalid"  # type: ignore[union-attr]
            kinds = [type(r).__name__ for r, _ in lab.seen]
            assert kinds == ["Reboot"]  # nothing refused ever reached the handler

    run(scenario)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ((wire.MAX_FRAME + 1).to_bytes(4, "big") + b"x" * 5000, "frame_too_large"),
        (wire.frame(b"\xc1"), "malformed"),
        (b"\x00\x00\x00\x10abc", "truncated"),
        (wire.frame(b"\x81\xa2op\xa4nuke"), "unknown_op"),
        (wire.encode(wire.Get(key="k" * 10_000)), "invalid_field"),
        (
            wire.frame(wire.encode_body(wire.Get(key="k")).replace(b"\xa1k", b"\xc3")),
            "invalid_field",
        ),
    ],
    ids=["oversized", "garbage", "truncated", "unknown-op", "huge-string", "wrong-type"],
)
def test_bad_frames_get_an_err_frame_and_everyone_keeps_being_served(
    data: bytes, code: str
) -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            lab.server.update(lab.acl("alice", "bob"), 32, 100)
            async with await lab.connect("bob") as bob:
                reply = [f async for f in s.stream_raw(data)]
                assert len(reply) == 1
                assert isinstance(reply[0], wire.Err)
                assert reply[0].code == code
                assert isinstance(await s.call(wire.Status()), wire.StatusReply)
                assert isinstance(await bob.call(wire.Status()), wire.StatusReply)
            assert lab.seen == [(r, p) for r, p in lab.seen if isinstance(r, wire.Status)]

    run(scenario)


def test_a_client_that_stops_following_cancels_the_handler() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            lines = []
            async for frame in s.stream(wire.Logs(service="dns", follow=True)):
                lines.append(frame)
                if len(lines) == 3:
                    break
            for _ in range(100):
                if lab.followers_done:
                    break
                await asyncio.sleep(0.01)
            assert lab.followers_done == 1
            assert isinstance(await s.call(wire.Status()), wire.StatusReply)

    run(scenario)


def test_a_handler_crash_costs_one_rpc() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            reply = await s.call(wire.Diag(name="links"))
            assert reply == wire.Err(message="internal error (see router log)", code="internal")
            assert isinstance(await s.call(wire.Status()), wire.StatusReply)

    run(scenario)


def test_long_operations_send_progress_frames() -> None:
    async def scenario() -> None:
        async with Lab(Limits(keepalive_secs=0.1)) as lab, await lab.connect() as s:
            frames = [f async for f in s.stream(wire.Reload())]
            assert frames[-1] == wire.Ok()
            assert len(frames) >= 3
            assert all(isinstance(f, wire.Progress) for f in frames[:-1])
            assert await s.call(wire.Reload()) == wire.Ok()  # call() skips them

    run(scenario)


@pytest.mark.parametrize("keepalive", [0.05, 10.0], ids=["keepalive", "no-keepalive"])
def test_progress_frames_keep_a_quiet_operation_from_idling_out(keepalive: float) -> None:
    async def scenario() -> None:
        limits = Limits(keepalive_secs=keepalive, idle_timeout_secs=0.2)
        async with Lab(limits) as lab, await lab.connect(idle_timeout=0.2) as s:
            if keepalive < 0.2:
                assert await s.call(wire.Reload()) == wire.Ok()  # the handler sleeps 0.35 s
            else:
                with pytest.raises(TransportError, match="connection closed"):
                    await s.call(wire.Reload())

    run(scenario)


def test_acl_changes_apply_without_restart() -> None:
    async def scenario() -> None:
        async with Lab() as lab:
            alice = await lab.connect()
            with pytest.raises(TransportError):
                await lab.connect("bob", timeout=FAST)
            lab.server.update(lab.acl("bob"), 32, 20)
            async with await lab.connect("bob") as bob:
                assert isinstance(await bob.call(wire.Status()), wire.StatusReply)
            with pytest.raises(TransportError, match="key no longer authorised"):
                await alice.call(wire.Status())
            alice.close()
            with pytest.raises(TransportError):
                await lab.connect("alice", timeout=FAST)

    run(scenario)


def test_the_connection_cap_holds_and_can_be_raised_live(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with Lab(Limits(max_connections=1)) as lab:
            lab.server.update(lab.acl("alice", "bob"), 1, 20)
            async with await lab.connect() as first:
                with pytest.raises(TransportError):
                    await lab.connect("bob", timeout=FAST)
                assert isinstance(await first.call(wire.Status()), wire.StatusReply)
                warnings = [r for r in caplog.records if "connection cap" in r.getMessage()]
                assert len(warnings) == 1  # bob retried his Initial; the log says it once
                lab.server.update(lab.acl("alice", "bob"), 2, 20)
                async with await lab.connect("bob") as second:
                    assert isinstance(await second.call(wire.Status()), wire.StatusReply)

    run(scenario)


def test_the_rate_limit_is_per_key_not_per_connection() -> None:
    async def scenario() -> None:
        async with Lab(Limits(max_rpcs_per_sec=1)) as lab:
            lab.server.update(lab.acl("alice", "bob"), 32, 1)
            async with await lab.connect() as a, await lab.connect() as a2:
                assert isinstance(await a.call(wire.Status()), wire.StatusReply)
                assert isinstance(await a.call(wire.Status()), wire.StatusReply)
                limited = await a2.call(wire.Status())  # a fresh connection buys nothing
                assert isinstance(limited, wire.Err)
                assert limited.code == "rate_limited"
                assert "more than 1 RPCs/s from this key" in limited.message
                async with await lab.connect("bob") as b:
                    assert isinstance(await b.call(wire.Status()), wire.StatusReply)

    run(scenario)


def test_many_concurrent_rpcs_on_one_connection() -> None:
    async def scenario() -> None:
        async with Lab(Limits(max_rpcs_per_sec=1000)) as lab, await lab.connect() as s:
            replies: list[Any] = await asyncio.gather(
                *(s.call(wire.Get(key=f"k{i}")) for i in range(50))
            )
            assert all(r == wire.Value(value="Get from alice") for r in replies)

    run(scenario)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_apply_rebinds_listeners_and_loads_the_acl_on_reload(tmp_path: Any) -> None:
    from schema.config import Control, ControlClient

    async def scenario() -> None:
        async with Lab() as lab:
            lab.server.close()
            alice = bytes(SigningKey(lab.seeds["alice"]).verify_key).hex()
            first, second = free_port(), free_port()
            control = Control(
                listen=[f"127.0.0.1:{first}"],
                authorized_keys=str(tmp_path / "authorized_keys"),
                clients=[ControlClient(name="alice", key=alice)],
            )
            assert await lab.server.apply(control) == []
            assert lab.server.listening == [("127.0.0.1", first)]
            lab.port = first
            async with await lab.connect() as s:
                assert isinstance(await s.call(wire.Status()), wire.StatusReply)

            bob = bytes(SigningKey(lab.seeds["bob"]).verify_key).hex()
            (tmp_path / "authorized_keys").write_text(f"{bob}\n")
            moved = msgspec.structs.replace(control, listen=[f"127.0.0.1:{second}"], clients=[])
            assert await lab.server.apply(moved) == []
            assert lab.server.listening == [("127.0.0.1", second)]
            lab.port = second
            async with await lab.connect("bob") as s:
                assert isinstance(await s.call(wire.Status()), wire.StatusReply)
            with pytest.raises(TransportError):
                await lab.connect("alice", timeout=FAST)

            (tmp_path / "authorized_keys").write_text("")
            notes = await lab.server.apply(
                msgspec.structs.replace(moved, listen=[f"[::1]:{second}", f"192.0.2.1:{second}"])
            )
            assert lab.server.listening == [("::1", second)]  # never the documentation address
            assert any("loopback only" in n for n in notes)

    run(scenario)


def test_frames_near_the_cap_pass_both_ways() -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            big = "x" * (wire.MAX_FRAME - 512)  # room for the signed envelope
            assert await s.call(wire.ConfigPush(toml=big)) == wire.Value(
                value="ConfigPush from alice"
            )
            request, _ = lab.seen[-1]
            assert request == wire.ConfigPush(toml=big)
            with pytest.raises(wire.WireError, match="exceeds"):  # the client refuses to send it
                await s.call(wire.ConfigPush(toml=big + "x" * 1000))
            reply = await s.call(wire.Get(key="big"))
            assert isinstance(reply, wire.Value)
            assert len(reply.value) == SIZED_REPLIES["big"]
            too_big = await s.call(wire.Get(key="huge"))  # the server refuses to send it
            assert isinstance(too_big, wire.Err)
            assert too_big.code == "frame_too_large"
            assert "reply not sent" in too_big.message

    run(scenario)


def test_a_client_clock_off_by_more_than_120_seconds_gets_nothing() -> None:
    async def scenario() -> None:
        async with Lab() as lab:
            for skew in (-200.0, 200.0):
                with pytest.raises(TransportError, match="clocks agree within 120 s"):
                    await connect(
                        "127.0.0.1",
                        lab.port,
                        client_seed=lab.seeds["alice"],
                        server_key=lab.identity.public_key,
                        handshake_timeout=FAST,
                        clock=lambda skew=skew: time.time() + skew,
                    )
            async with await lab.connect() as s:  # the same key with a right clock is fine
                assert isinstance(await s.call(wire.Status()), wire.StatusReply)

    run(scenario)


def test_apply_is_all_or_nothing_when_an_address_cannot_be_bound(tmp_path: Any) -> None:
    from schema.config import Control, ControlClient

    async def scenario() -> None:
        async with Lab() as lab:
            before = lab.server.listening
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
                taken.bind(("127.0.0.1", 0))
                busy = taken.getsockname()[1]
                control = Control(
                    listen=[f"127.0.0.1:{free_port()}", f"127.0.0.1:{busy}"],
                    authorized_keys=str(tmp_path / "none"),
                    clients=[
                        ControlClient(
                            name="x", key=bytes(SigningKey(lab.seeds["bob"]).verify_key).hex()
                        )
                    ],
                )
                with pytest.raises(OSError):
                    await lab.server.apply(control)
            assert lab.server.listening == before
            async with await lab.connect() as s:  # alice's ACL is still the live one
                assert isinstance(await s.call(wire.Status()), wire.StatusReply)

    run(scenario)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=2000))
def test_any_request_bytes_get_one_final_frame_and_the_server_carries_on(data: bytes) -> None:
    async def scenario() -> None:
        async with Lab() as lab, await lab.connect() as s:
            reply = [f async for f in s.stream_raw(data)]
            assert reply[-1].terminal
            assert all(not f.terminal for f in reply[:-1])
            assert isinstance(await s.call(wire.Status()), wire.StatusReply)

    run(scenario)
