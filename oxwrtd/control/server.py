"""The control-plane QUIC server: shielded aioquic, one RPC per bidirectional stream.

Every datagram is judged before aioquic sees it: an Initial must carry a valid trailer from an
authorised key (mac.py), anything else must belong to a connection that was admitted that way.
Unauthorised peers get nothing back, not even version negotiation. The admitted key is bound to
the connection and handed to the RPC handler as `Peer`; mutating requests must arrive as a
`Signed` envelope over this connection's nonce (sent on server stream 3 at handshake end) and an
unused counter, its secrets signed as commitments and opened by the envelope (schema.wire
`open_commitments`) before the handler sees them. Bad frames get an `err` frame on their own
stream; the connection and the server carry on. Long handlers get `progress` frames every
`keepalive_secs` so nothing idles out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import Buffer  # type: ignore[attr-defined]  # re-exported from _buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicProtocolVersion, pull_quic_header

from oxwrtd.control import acl as acl_module
from oxwrtd.control.acl import Acl
from oxwrtd.control.identity import ServerIdentity
from oxwrtd.control.mac import Dropped, TrailerCheck
from oxwrtd.control.ratelimit import ConnectionCap, KeyRateLimit
from schema.config import Control
from schema.wire import (
    Err,
    FrameDecoder,
    Hello,
    Progress,
    Request,
    Response,
    Signed,
    WireError,
    decode_request,
    encode,
    is_initial,
    is_mutating,
    open_commitments,
    signing_payload,
    verify_signature,
)

log = logging.getLogger("oxwrtd.control")

ALPN: Final = "squic"
IDLE_TIMEOUT_SECS: Final = 30.0  # the reference's squic default
KEEPALIVE_SECS: Final = 10.0  # a third of the idle timeout: two may be lost before it expires
COUNTER_WINDOW: Final = 4096  # counters this far below the highest seen are refused as stale
STOP_MALFORMED: Final = 0x100  # application error code in STOP_SENDING after a bad frame
CLOSE_ACL_REVOKED: Final = 0x101
CAP_WARN_SECS: Final = 10.0


@dataclass(frozen=True)
class Signature:
    """What the journal stores to prove who asked: verify `signature` over `signed_bytes`.
    `committed` names the request fields signed as commitments (so not in clear in the bytes)."""

    signer: bytes  # Ed25519 public key
    signature: bytes
    signed_bytes: bytes
    committed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Peer:
    key: bytes  # the client's Ed25519 public key, as written in the ACL
    name: str  # its [[control.clients]] name or authorized_keys line
    address: tuple[Any, ...]
    signature: Signature | None = None


Handler = Callable[[Request, Peer], AsyncIterator[Response]]


@dataclass
class Limits:
    max_connections: int = 32
    max_rpcs_per_sec: float = 20.0
    keepalive_secs: float = KEEPALIVE_SECS
    idle_timeout_secs: float = IDLE_TIMEOUT_SECS


class ControlServer:
    """Owns the listeners, the ACL and the limits; `update` applies a reload without restart."""

    def __init__(
        self,
        identity: ServerIdentity,
        acl: Acl,
        handler: Handler,
        limits: Limits | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.acl = acl
        self.handler = handler
        self.limits = limits or Limits()
        self.wall_clock = wall_clock
        self.check = TrailerCheck(identity.x25519_secret, lambda: self.acl)
        self.cap = ConnectionCap(self.limits.max_connections)
        self.rate = KeyRateLimit(self.limits.max_rpcs_per_sec)
        self.connections: set[ControlProtocol] = set()
        self._listeners: dict[tuple[str, int], _ShieldedServer] = {}
        self._cap_warned_at = -CAP_WARN_SECS
        cert, key = identity.certificate()
        self.quic_config = QuicConfiguration(
            is_client=False,
            alpn_protocols=[ALPN],
            certificate=cert,
            private_key=key,
            idle_timeout=self.limits.idle_timeout_secs,
            supported_versions=[QuicProtocolVersion.VERSION_1],
        )

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind one listener; returns the bound address (useful with port 0)."""
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _ShieldedServer(self), local_addr=(host, port)
        )
        assert isinstance(proto, _ShieldedServer)
        sockname = transport.get_extra_info("sockname")
        self._listeners[(host, port or sockname[1])] = proto
        return sockname[0], sockname[1]

    @property
    def listening(self) -> list[tuple[str, int]]:
        return sorted(self._listeners)

    async def apply(self, control: Control) -> list[str]:
        """Apply a `[control]` section at start or on reload, without a restart: ACL, limits,
        and listeners (an ACL that stops or starts being empty changes where we listen).
        Returns the problems and notices to log. All or nothing: if an address cannot be bound
        (OSError) or parsed (ValueError), the previous ACL and listeners stay as they were.
        """
        acl, notes = acl_module.load(control)
        addresses, why = acl_module.listen_plan(control.listen, acl)
        if why:
            notes.append(why)
        added: list[tuple[str, int]] = []
        try:
            for host, port in addresses:
                if (host, port) not in self._listeners:
                    await self.listen(host, port)
                    added.append((host, port))
        except OSError:
            for address in added:
                self._listeners.pop(address).close()
            raise
        self.update(acl, control.max_connections, control.max_rpcs_per_sec)
        wanted = set(addresses)
        for address in [a for a in self._listeners if a not in wanted]:
            self._listeners.pop(address).close()
        self._drop_closed_connections()
        return notes

    def update(self, acl: Acl, max_connections: int, max_rpcs_per_sec: float) -> None:
        """Apply a reloaded `[control]`: new ACL and limits; revoked keys are disconnected."""
        self.acl = acl
        self.check.forget_keys_not_in(acl)
        self.cap.limit = max_connections
        self.rate.set_rate(max_rpcs_per_sec)
        for conn in list(self.connections):
            if conn.client_x25519 is not None and acl.lookup(conn.client_x25519) is None:
                log.info("closing a connection whose key left the ACL: %s", conn.peer_name)
                conn.close(error_code=CLOSE_ACL_REVOKED, reason_phrase="key no longer authorised")

    def close(self) -> None:
        """Close every connection (CONNECTION_CLOSE is sent) and every listener."""
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        self._drop_closed_connections()

    def _drop_closed_connections(self) -> None:
        """Connections of a closed listener never see ConnectionTerminated: forget them here."""
        for conn in list(self.connections):
            if conn.listener_closed:
                conn.transmit()  # sees the closed socket and disarms the connection's timer
                self.forget(conn)

    def warn_cap(self, addr: tuple[Any, ...], name: str) -> None:
        """Log a refused connection, at most once per CAP_WARN_SECS: a client retrying its
        Initial must not be able to flood the log."""
        now = time.monotonic()
        if now - self._cap_warned_at >= CAP_WARN_SECS:
            self._cap_warned_at = now
            log.warning(
                "connection cap %d reached: dropping new connections (latest from %s, %s)",
                self.cap.limit,
                addr[0],
                name,
            )

    def admit(self, conn: ControlProtocol) -> bool:
        if not self.cap.admit(conn):
            return False
        self.connections.add(conn)
        return True

    def forget(self, conn: ControlProtocol) -> None:
        self.cap.release(conn)
        self.connections.discard(conn)
        self.rate.forget_idle(conn._loop.time())


class _ShieldedServer(QuicServer):
    """aioquic's QuicServer behind the trailer check; nothing unauthenticated reaches it."""

    def __init__(self, control: ControlServer) -> None:
        self._control = control
        super().__init__(
            configuration=control.quic_config,
            create_protocol=lambda quic, stream_handler=None: ControlProtocol(quic, control),
        )

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        assert isinstance(data, bytes)
        cid_len = self._configuration.connection_id_length
        if not is_initial(data):
            # Handshake, 0-RTT and short-header packets only for connections admitted earlier.
            try:
                header = pull_quic_header(Buffer(data=data), host_cid_length=cid_len)
            except ValueError:
                return
            protocol = self._protocols.get(header.destination_cid)
            if protocol is not None:
                protocol.datagram_received(data, addr)
            return
        verdict = self._control.check.check(data, self._control.wall_clock())
        if isinstance(verdict, Dropped):
            return
        try:
            header = pull_quic_header(Buffer(data=verdict.packet), host_cid_length=cid_len)
        except ValueError:
            return
        if header.version != QuicProtocolVersion.VERSION_1:
            return  # no version negotiation for anyone: we speak v1 only
        existing = self._protocols.get(header.destination_cid)
        if isinstance(existing, ControlProtocol):
            if existing.client_x25519 == verdict.client_x25519:
                existing.datagram_received(verdict.packet, addr)
            return
        if len(self._control.cap.live) >= self._control.cap.limit:
            self._control.warn_cap(addr, verdict.client.name)
            return
        super().datagram_received(verdict.packet, addr)
        created = self._protocols.get(header.destination_cid)
        if isinstance(created, ControlProtocol) and created.client_x25519 is None:
            created.bind(verdict.client.ed25519, verdict.client.name, verdict.client_x25519, addr)
            self._control.admit(created)


class ControlProtocol(QuicConnectionProtocol):
    """One admitted connection: per-stream request decoding, signing state, RPC tasks."""

    def __init__(self, quic: QuicConnection, control: ControlServer) -> None:
        super().__init__(quic)
        self._control = control
        self.client_x25519: bytes | None = None
        self.client_key = b""
        self.peer_name = ""
        self.peer_address: tuple[Any, ...] = ()
        self.nonce = os.urandom(32)
        self._decoders: dict[int, FrameDecoder] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # streams whose request was taken or refused but whose client side is still open
        self._answered: set[int] = set()
        self._counters: set[int] = set()
        self._counter_high = -1

    def bind(self, key: bytes, name: str, x25519: bytes, address: tuple[Any, ...]) -> None:
        self.client_key, self.peer_name, self.client_x25519 = key, name, x25519
        self.peer_address = address

    @property
    def listener_closed(self) -> bool:
        return self._transport is not None and self._transport.is_closing()

    def transmit(self) -> None:
        # Once the listener is closed, aioquic's timers must not try to send on its socket.
        if self.listener_closed:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        super().transmit()

    # events

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self._stream_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, events.HandshakeCompleted):
            hello = Hello(
                nonce=self.nonce, server_key=self._control.identity.public_key, commitments=True
            )
            stream_id = self._quic.get_next_available_stream_id(is_unidirectional=True)
            self._quic.send_stream_data(stream_id, encode(hello), end_stream=True)
        elif isinstance(event, events.StreamReset | events.StopSendingReceived):
            if isinstance(event, events.StreamReset):  # the client sends nothing more on it
                self._answered.discard(event.stream_id)
                self._decoders.pop(event.stream_id, None)
            task = self._tasks.pop(event.stream_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(event, events.ConnectionTerminated):
            for task in self._tasks.values():
                task.cancel()
            self._tasks.clear()
            self._control.forget(self)

    def _stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if stream_id & 0x2:
            return  # unidirectional streams carry no RPCs
        if stream_id in self._answered:  # one request frame per stream: the rest is ignored
            if end:
                self._answered.discard(stream_id)  # nothing more can arrive on it
            return
        decoder = self._decoders.setdefault(stream_id, FrameDecoder())
        try:
            bodies = decoder.feed(data)
            if not bodies and end:
                decoder.end_of_stream()
                raise WireError("stream ended before a request frame", "truncated")
        except WireError as e:
            self._refuse(stream_id, e, end)
            return
        if bodies:
            del self._decoders[stream_id]
            if not end:
                self._answered.add(stream_id)
            task = self._loop.create_task(self._rpc(stream_id, bodies[0]))
            self._tasks[stream_id] = task
            task.add_done_callback(functools.partial(self._task_done, stream_id))

    def _task_done(self, stream_id: int, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(stream_id, None)

    def _refuse(self, stream_id: int, error: WireError, end: bool) -> None:
        self._decoders.pop(stream_id, None)
        if not end:
            self._answered.add(stream_id)
        self._send(stream_id, Err(message=str(error), code=error.code), end=True)
        with contextlib.suppress(ValueError):  # the peer already finished the stream
            self._quic.stop_stream(stream_id, STOP_MALFORMED)
        self.transmit()

    def _send(self, stream_id: int, response: Response, end: bool = False) -> None:
        try:
            data = encode(response)
        except WireError as e:
            data, end = encode(Err(message=f"reply not sent: {e}", code=e.code)), True
        try:
            self._quic.send_stream_data(stream_id, data, end_stream=end)
        except (RuntimeError, ValueError):
            return  # the client reset or stopped the stream: nobody is listening any more
        if end:
            self.transmit()  # the reply is complete: send it now, with any pending ACK
        else:
            self._transmit_soon()

    # one RPC

    async def _rpc(self, stream_id: int, body: bytes) -> None:
        # The rate limit comes first so a flood cannot make us decode and verify signatures.
        wait = self._control.rate.take(self.client_key, self._loop.time())
        if wait > 0:
            rate = self._control.rate.rate_per_sec
            self._send(
                stream_id,
                Err(
                    message=f"rate limit: more than {rate:g} RPCs/s from this key; "
                    f"retry in {wait:.2f}s",
                    code="rate_limited",
                ),
                end=True,
            )
            return
        try:
            request, peer = self._authorise(decode_request(body))
        except WireError as e:
            self._send(stream_id, Err(message=str(e), code=e.code), end=True)
            return
        keepalive = _KeepAlive(self, stream_id, self._control.limits.keepalive_secs)
        replies = self._control.handler(request, peer)
        try:
            while True:
                try:
                    response = await anext(replies)
                except StopAsyncIteration:
                    self._send(
                        stream_id, Err(message="no reply from the handler", code="internal"), True
                    )
                    return
                keepalive.bump()
                self._send(stream_id, response, end=response.terminal)
                if response.terminal:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            # The one boundary that catches everything: a handler bug must cost one RPC, not the
            # server. The traceback goes to the log; the client gets a short error.
            log.exception("RPC handler failed for %s", type(request).__name__.lower())
            self._send(
                stream_id, Err(message="internal error (see router log)", code="internal"), True
            )
        finally:
            keepalive.cancel()
            # Close the handler's generator here: left to the garbage collector, asyncio would
            # finalise it with a task and a self-pipe wake-up per RPC.
            close = getattr(replies, "aclose", None)
            if close is not None:
                await close()

    def _authorise(self, request: Request) -> tuple[Request, Peer]:
        peer = Peer(key=self.client_key, name=self.peer_name, address=self.peer_address)
        if not isinstance(request, Signed):
            if is_mutating(request):
                op = type(request).__struct_config__.tag
                raise WireError(
                    f"{op} changes the router and must be signed by the client key "
                    "(send it as a `signed` envelope)",
                    "signature_required",
                )
            return request, peer
        if request.key != self.client_key:
            raise WireError(
                f"signed by {request.key.hex()}, but this connection authenticated as "
                f"{self.client_key.hex()}",
                "signature_invalid",
            )
        if request.counter in self._counters or request.counter <= (
            self._counter_high - COUNTER_WINDOW
        ):
            raise WireError(f"counter {request.counter} already used: replay refused", "replay")
        payload = signing_payload(
            request.request, self._control.identity.public_key, self.nonce, request.counter
        )
        if not verify_signature(request.key, payload, request.signature):
            raise WireError(
                "bad signature (signed for another server or connection?)", "signature_invalid"
            )
        self._counters.add(request.counter)
        self._counter_high = max(self._counter_high, request.counter)
        if len(self._counters) > COUNTER_WINDOW:
            floor = self._counter_high - COUNTER_WINDOW
            self._counters = {c for c in self._counters if c > floor}
        inner = decode_request(request.request)
        if isinstance(inner, Signed):
            raise WireError("a signed envelope cannot contain another", "malformed")
        # Refused here, before the handler: a commitment must never be applied as a literal.
        opened, committed = open_commitments(inner, request.openings)
        signature = Signature(request.key, request.signature, payload, committed)
        return opened, replace(peer, signature=signature)


class _KeepAlive:
    """Sends a `progress` frame whenever the handler has been quiet for `interval` seconds."""

    def __init__(self, conn: ControlProtocol, stream_id: int, interval: float) -> None:
        self._conn, self._stream_id, self._interval = conn, stream_id, interval
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + interval, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        if now - self._last >= self._interval:
            self._conn._send(self._stream_id, Progress(message="working"))
            self._last = now
        self._timer = self._loop.call_at(self._last + self._interval, self._fire)

    def bump(self) -> None:
        self._last = self._loop.time()  # cheap: the timer re-arms itself from this when it fires

    def cancel(self) -> None:
        self._timer.cancel()


__all__ = ["ALPN", "ControlProtocol", "ControlServer", "Handler", "Limits", "Peer", "Signature"]
