"""The oxctl transport over real QUIC on 127.0.0.1: trailers, pinning, one connection reused."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aioquic.asyncio.server import QuicServer
from nacl.signing import SigningKey

from clients.transport import PinMismatch, TransportError, connect
from oxwrtd.control import acl as aclmod
from oxwrtd.control.identity import ServerIdentity
from oxwrtd.control.server import ControlServer, Peer
from schema import wire


class Impostor(QuicServer):
    """A man in the middle: strips the trailer without checking it, serves its own certificate."""

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        assert isinstance(data, bytes)
        if wire.is_initial(data):
            data = data[: -wire.TRAILER_LEN]
        super().datagram_received(data, addr)


async def answer(request: wire.Request, peer: Peer) -> AsyncIterator[wire.Response]:
    yield wire.Value(value=type(request).__name__)


def test_a_wrong_server_key_is_a_clear_error_with_both_keys() -> None:
    async def scenario() -> None:
        real, fake = ServerIdentity(os.urandom(32)), ServerIdentity(os.urandom(32))
        loop = asyncio.get_running_loop()
        impostor_config = ControlServer(fake, aclmod.Acl(), answer).quic_config
        transport, _ = await loop.create_datagram_endpoint(
            lambda: Impostor(configuration=impostor_config), local_addr=("127.0.0.1", 0)
        )
        port = transport.get_extra_info("sockname")[1]
        try:
            with pytest.raises(PinMismatch) as e:
                await connect(
                    "127.0.0.1", port, client_seed=os.urandom(32), server_key=real.public_key
                )
            assert real.public_hex in str(e.value)
            assert fake.public_hex in str(e.value)
        finally:
            transport.close()

    asyncio.run(scenario())


def test_one_connection_carries_a_multi_step_command() -> None:
    async def scenario() -> None:
        ident, seed = ServerIdentity(os.urandom(32)), os.urandom(32)
        table, _ = aclmod.build([("ops", bytes(SigningKey(seed).verify_key).hex())], None)
        server = ControlServer(ident, table, answer)
        _, port = await server.listen("127.0.0.1", 0)
        try:
            async with await connect(
                "localhost", port, client_seed=seed, server_key=ident.public_key
            ) as s:
                steps = [
                    wire.ConfigDump(),
                    wire.VpnKeyUpload(name="a", private_key_b64="x"),
                    wire.ConfigPush(toml=""),
                ]
                replies = [await s.call(step) for step in steps]
                assert replies == [wire.Value(value=type(x).__name__) for x in steps]
                assert len(server.connections) == 1
        finally:
            server.close()

    asyncio.run(scenario())


def test_an_unresolvable_host_is_named() -> None:
    async def scenario() -> None:
        with pytest.raises(TransportError, match=r"no-such-host\.invalid: cannot resolve"):
            await connect(
                "no-such-host.invalid", 1, client_seed=os.urandom(32), server_key=os.urandom(32)
            )

    asyncio.run(scenario())
