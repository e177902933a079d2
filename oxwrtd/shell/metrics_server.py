"""The `[metrics]` endpoint: a small HTTP/1.1 server answering GET /metrics in Prometheus text.

One request per connection, then close. Other paths get 404, other methods 405, a request head
over `max_request` bytes 431, a client that has not sent its head (or read the reply) within
`read_timeout` is dropped, and at most `max_clients` connections are served at once, so a slow
or hostile client cannot hold the endpoint. `apply(listen, config)` starts, re-binds or stops it
as the config changes. It never listens on a WAN-facing address: only loopback, or an address
of a LAN or simple network that is not in a masquerading zone; anything else is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from typing import Final

from oxwrtd.core.metrics_text import CONTENT_TYPE, Labels, render
from schema.config import Config, Wan
from schema.values import parse_socket_addr

log = logging.getLogger("oxwrtd")

READ_TIMEOUT_SECONDS: Final = 5.0  # a scraper sends its request at once; Prometheus' own is 10 s
MAX_REQUEST_BYTES: Final = 8192  # request line + headers; a GET carries no body
MAX_CLIENTS: Final = 16

SnapshotFn = Callable[[], Mapping[str, float | Mapping[Labels, float]]]


class MetricsListenError(ValueError):
    """`[metrics].listen` cannot be served: malformed, WAN-facing, or the bind failed."""


def check_listen(listen: str, config: Config | None) -> tuple[str, int]:
    """(host, port) to bind for `listen`, or MetricsListenError saying why not. Without a config
    only loopback is allowed."""
    where = "metrics.listen"
    try:
        addr, port = parse_socket_addr(listen)
    except ValueError as exc:
        raise MetricsListenError(f"{where}: {exc}") from None
    if addr.is_unspecified:
        raise MetricsListenError(
            f"{where}: {listen!r} listens on every interface, WAN included; give a loopback or "
            "LAN address"
        )
    if addr.is_loopback:
        return str(addr), port
    allowed, wan = _addresses(config) if config is not None else ({}, {})
    if addr in wan:
        raise MetricsListenError(
            f"{where}: {addr} is an address of network {wan[addr]!r}, which faces the WAN; the "
            "metrics endpoint has no authentication"
        )
    if addr not in allowed:
        known = ", ".join(sorted(str(a) for a in allowed)) or "none"
        raise MetricsListenError(
            f"{where}: {addr} is neither loopback nor an address of a LAN or simple network "
            f"(those are: {known})"
        )
    return str(addr), port


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _addresses(config: Config) -> tuple[dict[IPAddress, str], dict[IPAddress, str]]:
    """Router addresses that may serve metrics, and those that face the WAN (-> network name).
    A LAN or simple network sharing a zone with a WAN, or in a masquerading zone, faces the WAN."""
    wan_names = {n.name for n in config.networks if isinstance(n, Wan)}
    wan_zoned = {
        name
        for zone in config.firewall.zones
        if zone.masquerade or wan_names.intersection(zone.networks)
        for name in zone.networks
    }
    allowed: dict[IPAddress, str] = {}
    wan: dict[IPAddress, str] = {}
    for net in config.networks:
        if isinstance(net, Wan):
            texts, target = [net.address], wan
        else:
            texts = [net.address, net.ipv6_address]
            target = wan if net.name in wan_zoned else allowed
        for text in texts:
            if text:
                with contextlib.suppress(ValueError):
                    target[ipaddress.ip_address(text)] = net.name
    return allowed, wan


class MetricsServer:
    def __init__(
        self,
        snapshot: SnapshotFn,
        *,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        max_request: int = MAX_REQUEST_BYTES,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self._snapshot = snapshot
        self.read_timeout = read_timeout
        self.max_request = max_request
        self.max_clients = max_clients
        self._server: asyncio.Server | None = None
        self._listen: str | None = None
        self._clients = 0

    @property
    def listening(self) -> tuple[str, int] | None:
        """The bound (host, port), with the real port when `listen` asked for port 0."""
        if self._server is None or not self._server.sockets:
            return None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def apply(self, listen: str | None, config: Config | None = None) -> None:
        """Serve on `listen` (None: stop). Unchanged: nothing happens. Refused or failed: the
        endpoint stops and MetricsListenError says why (the config no longer wants the old one)."""
        if listen is None:
            await self.close()
            return
        try:
            host, port = check_listen(listen, config)
        except MetricsListenError:
            await self.close()
            raise
        if listen == self._listen and self._server is not None:
            return
        await self.close()
        try:
            self._server = await asyncio.start_server(
                self._serve_one, host, port, reuse_address=True, limit=self.max_request
            )
        except OSError as exc:
            raise MetricsListenError(
                f"metrics.listen: cannot listen on {listen}: {exc.strerror or exc}"
            ) from None
        self._listen = listen
        log.info("metrics: serving http://%s/metrics", listen)

    async def close(self) -> None:
        server, self._server, self._listen = self._server, None, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= self.max_clients:
            writer.close()
            return
        self._clients += 1
        try:
            status, body = await self._answer(reader)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: "
                f"{CONTENT_TYPE if status.startswith('200') else 'text/plain; charset=utf-8'}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n"
            )
            if status.startswith("405"):
                head += "Allow: GET\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(writer.drain(), self.read_timeout)
        except ConnectionError:
            pass
        finally:
            self._clients -= 1
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[str, bytes]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.read_timeout)
        except TimeoutError:
            return "408 Request Timeout", b"request not received in time\n"
        except asyncio.LimitOverrunError:
            return "431 Request Header Fields Too Large", b"request too large\n"
        except asyncio.IncompleteReadError as exc:
            if len(exc.partial) >= self.max_request:
                return "431 Request Header Fields Too Large", b"request too large\n"
            return "400 Bad Request", b"incomplete request\n"
        if len(head) > self.max_request:
            return "431 Request Header Fields Too Large", b"request too large\n"
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return "400 Bad Request", b"malformed request line\n"
        method, target, _ = parts
        if method != "GET":
            return "405 Method Not Allowed", b"only GET is served\n"
        if target.split("?", 1)[0] != "/metrics":
            return "404 Not Found", b"metrics are at /metrics\n"
        try:
            text = render(self._snapshot())
        except (ValueError, TypeError) as exc:
            log.error("metrics: cannot render the snapshot: %s", exc)
            return "500 Internal Server Error", b"metrics unavailable\n"
        return "200 OK", text.encode()


async def serve(
    listen: str, snapshot: SnapshotFn, *, config: Config | None = None
) -> MetricsServer:
    """A MetricsServer already listening on `listen`."""
    server = MetricsServer(snapshot)
    await server.apply(listen, config)
    return server


__all__ = [
    "MAX_REQUEST_BYTES",
    "READ_TIMEOUT_SECONDS",
    "MetricsListenError",
    "MetricsServer",
    "check_listen",
    "serve",
]
