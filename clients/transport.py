"""oxctl's side of the control plane: one shielded, pinned QUIC connection, many RPCs.

- Every Initial datagram leaves with the 76-byte trailer (schema.wire), so the router admits us.
- Right after the handshake, before any request, the certificate's raw Ed25519 key must equal the
  pinned server key; a mismatch names both keys.
- Mutating requests are wrapped in a `Signed` envelope over the connection's nonce (server stream
  3) and a fresh counter; read-only requests go as they are.
- `close()` never waits for the graceful close (it costs ~100 ms and tells the user nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicProtocolVersion
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from schema.wire import (
    FrameDecoder,
    Hello,
    Request,
    Response,
    WireError,
    build_trailer,
    decode_hello,
    decode_response,
    encode_body,
    frame,
    is_initial,
    is_mutating,
    sign_request,
    x25519_public_from_ed25519,
    x25519_public_from_secret,
    x25519_secret_from_seed,
)

ALPN: Final = "squic"
SERVER_NAME: Final = "squic"
DEFAULT_PORT: Final = 51820
HANDSHAKE_TIMEOUT_SECS: Final = 10.0
IDLE_TIMEOUT_SECS: Final = 30.0
HELLO_TIMEOUT_SECS: Final = 5.0
STOP_ABANDONED: Final = 0x200  # application error code: the client no longer wants this reply


NO_FINAL_FRAME: Final = "the router ended the reply without a final frame"


class TransportError(Exception):
    """The router could not be reached or spoke out of turn; the message says what to check."""


class PinMismatch(TransportError):
    """The server proved a key other than the pinned one: a changed router or a man in the
    middle. Never retried."""


class _TrailerTransport:
    """Wraps the datagram transport: appends a fresh trailer to every Initial datagram."""

    def __init__(self, inner: Any, seed: bytes, server_key: bytes, clock: Callable[[], float]):
        self._inner = inner
        self._secret = x25519_secret_from_seed(seed)
        self._public = x25519_public_from_secret(self._secret)
        self._server_x25519 = x25519_public_from_ed25519(server_key)
        self._clock = clock

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if is_initial(data):
            data += build_trailer(
                data,
                client_secret=self._secret,
                client_public=self._public,
                server_x25519=self._server_x25519,
                timestamp=int(self._clock()),
                nonce=os.urandom(8),
            )
        self._inner.sendto(data, addr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ClientProtocol(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, seed: bytes, server_key: bytes, clock: Any) -> None:
        super().__init__(quic)
        self._trailer = (seed, server_key, clock)
        self.hello: asyncio.Future[Hello] = self._loop.create_future()
        # read-only sessions never await the nonce; mark a failure as seen so asyncio stays quiet
        self.hello.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._hello_decoder = FrameDecoder()
        self._decoders: dict[int, FrameDecoder] = {}
        # per open stream: where its replies go (a queue for streams, a future for calls)
        self.sinks: dict[int, Callable[[Response | Exception | None], None]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(_TrailerTransport(transport, *self._trailer))  # type: ignore[arg-type]

    def transmit(self) -> None:
        # After close() the socket is gone, but aioquic's closing timers would still fire and
        # try to send; stop them instead.
        if self._transport is not None and self._transport.is_closing():
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        super().transmit()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            if event.stream_id & 0x3 == 0x3:
                self._hello_data(event.data)
            else:
                self._stream_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, events.StreamReset):
            self._put(event.stream_id, TransportError("the router reset the stream"))
        elif isinstance(event, events.ConnectionTerminated):
            lost = TransportError(
                f"connection closed by the router: {event.reason_phrase or 'no reason given'}"
            )
            for sink in list(self.sinks.values()):
                sink(lost)
            if not self.hello.done():
                self.hello.set_exception(lost)

    def _hello_data(self, data: bytes) -> None:
        try:
            for body in self._hello_decoder.feed(data):
                if not self.hello.done():
                    self.hello.set_result(decode_hello(body))
        except WireError as e:
            if not self.hello.done():
                self.hello.set_exception(TransportError(f"bad hello from the router: {e}"))

    def _stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        decoder = self._decoders.setdefault(stream_id, FrameDecoder())
        try:
            for body in decoder.feed(data):
                self._put(stream_id, decode_response(body))
            if end:
                del self._decoders[stream_id]
                decoder.end_of_stream()
                self._put(stream_id, None)
        except WireError as e:
            self._decoders.pop(stream_id, None)
            self._put(stream_id, TransportError(f"bad reply from the router: {e}"))

    def _put(self, stream_id: int, item: Response | Exception | None) -> None:
        sink = self.sinks.get(stream_id)
        if sink is not None:
            sink(item)


class Session:
    """One connection to one router; reuse it for every step of a command."""

    def __init__(
        self,
        protocol: _ClientProtocol,
        transport: asyncio.BaseTransport,
        seed: bytes,
        server_key: bytes,
    ) -> None:
        self._protocol = protocol
        self._transport = transport
        self._seed = seed
        self._server_key = server_key
        self._counter = 0

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def stream(self, request: Request) -> AsyncIterator[Response]:
        """Every frame of the reply, progress included, ending with the terminal one."""
        async for response in self.stream_raw(frame(await self._body(request))):
            yield response

    async def stream_raw(self, data: bytes) -> AsyncIterator[Response]:
        """Send `data` as the whole request stream, unchecked (tests use it for bad input)."""
        queue: asyncio.Queue[Response | Exception | None] = asyncio.Queue()
        stream_id = self._send(data, queue.put_nowait)
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                if item is None:
                    raise TransportError(NO_FINAL_FRAME)
                finished = item.terminal
                yield item
                if finished:
                    return
        finally:
            self._forget(stream_id, finished)

    async def call(self, request: Request) -> Response:
        """The terminal reply (`ok`, `value`, `status` or `err`); progress frames are skipped."""
        return await self.call_raw(frame(await self._body(request)))

    async def call_raw(self, data: bytes) -> Response:
        reply: asyncio.Future[Response] = self._protocol._loop.create_future()

        def sink(item: Response | Exception | None) -> None:
            if reply.done():
                return
            if isinstance(item, Exception):
                reply.set_exception(item)
            elif item is None:
                reply.set_exception(TransportError(NO_FINAL_FRAME))
            elif item.terminal:
                reply.set_result(item)

        stream_id = self._send(data, sink)
        try:
            return await reply
        finally:
            self._forget(stream_id, reply.done() and not reply.cancelled())

    def _forget(self, stream_id: int, finished: bool) -> None:
        """Stop listening to a stream; if its reply is unfinished (the caller gave up, e.g.
        Ctrl-C on `logs -f`), tell the router to stop sending so its handler is cancelled."""
        del self._protocol.sinks[stream_id]
        if not finished:
            with contextlib.suppress(ValueError):  # the stream is already gone
                self._protocol._quic.stop_stream(stream_id, STOP_ABANDONED)
                self._protocol.transmit()

    def _send(self, data: bytes, sink: Callable[[Response | Exception | None], None]) -> int:
        quic = self._protocol._quic
        stream_id = quic.get_next_available_stream_id()
        self._protocol.sinks[stream_id] = sink
        quic.send_stream_data(stream_id, data, end_stream=True)
        self._protocol.transmit()
        return stream_id

    async def router_hello(self) -> Hello:
        """The router's `hello`: the nonce signatures must cover, and what it can open."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._protocol.hello), HELLO_TIMEOUT_SECS)
        except TimeoutError:
            raise TransportError("the router sent no signing nonce") from None

    async def signing_nonce(self) -> bytes:
        """This connection's nonce from the router (its `hello`), which signatures must cover."""
        return (await self.router_hello()).nonce

    async def _body(self, request: Request) -> bytes:
        if not is_mutating(request):
            return encode_body(request)
        hello = await self.router_hello()
        self._counter += 1
        signed = sign_request(
            request,
            self._seed,
            self._server_key,
            hello.nonce,
            self._counter,
            commit=hello.commitments,
        )
        return encode_body(signed)

    def close(self) -> None:
        """Send CONNECTION_CLOSE and drop the socket; never waits for the peer."""
        self._protocol.close()
        self._transport.close()
        self._protocol.transmit()  # sees the closed socket and disarms the connection's timer


def client_configuration(idle_timeout: float = IDLE_TIMEOUT_SECS) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name=SERVER_NAME,
        # No CA: the server certificate is checked by pinning its key right after the handshake.
        verify_mode=ssl.CERT_NONE,
        idle_timeout=idle_timeout,
        supported_versions=[QuicProtocolVersion.VERSION_1],
    )


def presented_key(protocol: QuicConnectionProtocol) -> bytes | None:
    """The raw Ed25519 key of the certificate the server proved it holds (CertificateVerify)."""
    cert = protocol._quic.tls._peer_certificate  # aioquic offers no public accessor
    if cert is None:
        return None
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey):
        return None
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


async def connect(
    host: str,
    port: int,
    *,
    client_seed: bytes,
    server_key: bytes,
    handshake_timeout: float = HANDSHAKE_TIMEOUT_SECS,
    idle_timeout: float = IDLE_TIMEOUT_SECS,
    clock: Callable[[], float] = time.time,
) -> Session:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise TransportError(f"{host}: cannot resolve: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
    quic = QuicConnection(configuration=client_configuration(idle_timeout))
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _ClientProtocol(quic, client_seed, server_key, clock), sock=sock
    )
    assert isinstance(protocol, _ClientProtocol)
    session = Session(protocol, transport, client_seed, server_key)
    try:
        protocol.connect(addr)
        await asyncio.wait_for(protocol.wait_connected(), handshake_timeout)
    except (TimeoutError, ConnectionError):
        session.close()
        from clients.keys import public_key

        raise TransportError(
            f"no answer from {host}:{port} within {handshake_timeout:g}s. The router drops "
            "unauthenticated packets without a word, so check: the pinned server key "
            f"{server_key.hex()} matches `oxwrtd --print-server-key`; this client's key "
            f"{public_key(client_seed).hex()} is in [[control.clients]] or authorized_keys; "
            "the clocks agree within 120 s; the address and port."
        ) from None
    presented = presented_key(protocol)
    if presented is None or not hmac.compare_digest(presented, server_key):
        session.close()
        raise PinMismatch(
            f"server key mismatch: pinned {server_key.hex()} (SQUIC_SERVER_KEY/--server-key), "
            f"the server presented {presented.hex() if presented else 'a non-ed25519 key'}. "
            "If the router's key changed on purpose, update the pin; otherwise someone is "
            "in the middle."
        )
    return session


__all__ = [
    "DEFAULT_PORT",
    "PinMismatch",
    "Session",
    "TransportError",
    "client_configuration",
    "connect",
]
