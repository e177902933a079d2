"""The metrics endpoint on 127.0.0.1: Prometheus text on GET /metrics, refusals for everything
else, bounded requests and clients, and never a WAN-facing address."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from oxwrtd.core.metrics_text import Snapshot, snapshot
from oxwrtd.core.state import State
from oxwrtd.shell.metrics_server import MetricsListenError, MetricsServer, check_listen
from schema.config import Config

SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?'
    r" (?P<value>[-+]?(?:[0-9.eE+-]+|Inf|NaN))"
)


def parse_prometheus(text: str) -> dict[str, float]:
    """A strict reader of the text format: HELP and TYPE precede each family's samples."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split(" ", 3)[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in {"counter", "gauge", "histogram", "summary", "untyped"}
            assert name in helped and name not in typed, line
            typed[name] = kind
        else:
            m = SAMPLE.fullmatch(line)
            assert m, f"not a sample line: {line!r}"
            assert m["name"] in typed, f"sample before its TYPE: {line!r}"
            samples[line.rpartition(" ")[0]] = float(m["value"])
    return samples


def config(zones: list[dict[str, Any]] | None = None) -> Config:
    return msgspec.convert(
        {
            "hostname": "r",
            "control": {"listen": ["[::1]:51820"]},
            "networks": [
                {
                    "name": "wan",
                    "type": "wan",
                    "iface": "wan0",
                    "mode": "static",
                    "address": "203.0.113.2",
                    "prefix": 24,
                    "gateway": "203.0.113.1",
                },
                {
                    "name": "lan",
                    "type": "lan",
                    "bridge": "br-lan",
                    "address": "192.168.1.1",
                    "prefix": 24,
                    "ipv6_address": "fd00:1::1",
                    "ipv6_prefix": 64,
                },
                {
                    "name": "tun",
                    "type": "simple",
                    "iface": "wg0",
                    "address": "10.9.0.1",
                    "prefix": 24,
                },
            ],
            "firewall": {"zones": zones or []},
        },
        Config,
    )


def state_snapshot() -> Snapshot:
    return snapshot(State(seq=7, running=2), now=100.0, started=40.0)


async def exchange(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """The server's whole reply to `request`; b"" when it closed (or reset) without one."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:  # closed with our request unread: the kernel sends a reset
        return b""
    finally:
        writer.close()


def with_server(body: Callable[[MetricsServer, int], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        server = MetricsServer(state_snapshot, **kwargs)
        await server.apply("127.0.0.1:0")
        assert server.listening is not None
        try:
            await body(server, server.listening[1])
        finally:
            await server.close()

    asyncio.run(main())


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, payload = response.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status, headers, payload


def test_get_metrics_serves_prometheus_text() -> None:
    async def body(_: MetricsServer, port: int) -> None:
        status, headers, payload = split(
            await exchange(port, b"GET /metrics HTTP/1.1\r\nHost: r\r\n\r\n")
        )
        assert status == "HTTP/1.1 200 OK"
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert headers["Connection"] == "close"
        assert int(headers["Content-Length"]) == len(payload)
        got = parse_prometheus(payload.decode())
        assert got["oxwrt_journal_seq"] == 7
        assert got["oxwrt_revision_running"] == 2
        assert got["oxwrt_uptime_seconds"] == 60

    with_server(body)


def test_a_query_string_is_ignored() -> None:
    async def body(_: MetricsServer, port: int) -> None:
        data = await exchange(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200 OK")

    with_server(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "404 Not Found"),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", "404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", "405 Method Not Allowed"),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", "405 Method Not Allowed"),
        (b"GET /metrics\r\n\r\n", "400 Bad Request"),
        (b"GET /metrics SPDY/3\r\n\r\n", "400 Bad Request"),
        (b"GET /metr", "400 Bad Request"),  # then the client closes its side
    ],
)
def test_everything_else_is_refused(request_bytes: bytes, status: str) -> None:
    async def body(_: MetricsServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        got_status, headers, _ = split(data)
        assert got_status == f"HTTP/1.1 {status}"
        if status.startswith("405"):
            assert headers["Allow"] == "GET"
        assert b"oxwrt_" not in data

    with_server(body)


def test_an_oversized_request_is_refused() -> None:
    async def body(_: MetricsServer, port: int) -> None:
        big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n"
        status, _, _ = split(await exchange(port, big))
        assert status == "HTTP/1.1 431 Request Header Fields Too Large"

    with_server(body, max_request=1024)


def test_a_slow_client_is_dropped() -> None:
    async def body(server: MetricsServer, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never the blank line
        data = await asyncio.wait_for(reader.read(), 10)  # the server closes, not the client
        assert data.startswith(b"HTTP/1.1 408 Request Timeout")
        writer.close()
        assert (await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")

    with_server(body, read_timeout=0.3)


def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    async def body(server: MetricsServer, port: int) -> None:
        _, idle = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)  # the server has accepted it
        assert await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
        idle.close()
        await asyncio.sleep(0.05)
        assert (await exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")

    with_server(body, max_clients=1)


def test_a_broken_snapshot_is_a_500_not_a_crash() -> None:
    async def main() -> None:
        server = MetricsServer(lambda: {"oxwrt_nope": 1})
        await server.apply("127.0.0.1:0")
        assert server.listening is not None
        data = await exchange(server.listening[1], b"GET /metrics HTTP/1.1\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 500")
        await server.close()

    asyncio.run(main())


def refused(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def test_apply_rebinds_and_stops() -> None:
    async def main() -> None:
        server = MetricsServer(state_snapshot)
        await server.apply("127.0.0.1:0")
        assert server.listening is not None
        first = server.listening
        await server.apply("127.0.0.1:0")  # unchanged: same socket
        assert server.listening == first
        await server.apply("127.0.0.2:0", config())
        assert server.listening is not None
        assert server.listening[0] == "127.0.0.2"
        assert refused(first[1])
        data = await exchange(server.listening[1], b"GET /metrics HTTP/1.1\r\n\r\n", "127.0.0.2")
        assert data.startswith(b"HTTP/1.1 200")
        second = server.listening
        await server.apply(None)
        assert server.listening is None
        assert refused(second[1], "127.0.0.2")

    asyncio.run(main())


def test_a_refused_address_stops_the_old_listener() -> None:
    async def main() -> None:
        server = MetricsServer(state_snapshot)
        await server.apply("127.0.0.1:0")
        assert server.listening is not None
        port = server.listening[1]
        with pytest.raises(MetricsListenError, match="faces the WAN"):
            await server.apply("203.0.113.2:9100", config())
        assert server.listening is None
        assert refused(port)

    asyncio.run(main())


def test_a_port_in_use_is_a_clear_error() -> None:
    async def main() -> None:
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            server = MetricsServer(state_snapshot)
            with pytest.raises(MetricsListenError, match=f"cannot listen on 127.0.0.1:{port}"):
                await server.apply(f"127.0.0.1:{port}")
            assert server.listening is None

    asyncio.run(main())


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1:9100", "[::1]:9100", "192.168.1.1:9100", "[fd00:1::1]:9100", "10.9.0.1:9100"],
)
def test_loopback_and_lan_addresses_are_allowed(listen: str) -> None:
    host, port = check_listen(listen, config())
    assert port == 9100
    assert host in listen


@pytest.mark.parametrize(
    ("listen", "zones", "why"),
    [
        ("0.0.0.0:9100", None, "every interface, WAN included"),
        ("[::]:9100", None, "every interface, WAN included"),
        ("203.0.113.2:9100", None, "network 'wan', which faces the WAN"),
        (
            "10.9.0.1:9100",
            [{"name": "vpn", "networks": ["tun"], "masquerade": True}],
            "network 'tun', which faces the WAN",
        ),
        (
            "192.168.1.1:9100",
            [{"name": "outside", "networks": ["wan", "lan"]}],
            "network 'lan', which faces the WAN",
        ),
        ("198.51.100.1:9100", None, "neither loopback nor an address of a LAN or simple network"),
        ("localhost:9100", None, "is not an IPv4 address"),
        ("127.0.0.1", None, "must look like ip:port"),
    ],
)
def test_wan_and_foreign_addresses_are_refused(
    listen: str, zones: list[dict[str, Any]] | None, why: str
) -> None:
    with pytest.raises(MetricsListenError, match=re.escape(why)) as err:
        check_listen(listen, config(zones))
    assert str(err.value).startswith("metrics.listen: ")


def test_without_a_config_only_loopback_is_allowed() -> None:
    assert check_listen("127.0.0.1:1", None) == ("127.0.0.1", 1)
    with pytest.raises(MetricsListenError, match="neither loopback"):
        check_listen("192.168.1.1:9100", None)
