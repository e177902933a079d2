"""What the control plane's own layers cost, against bare aioquic measured in the same run.

On 127.0.0.1, medians of:
  floor      a bare aioquic request/response on a warm connection: one stream, the same byte
             sizes as a `status` RPC (request frame out, status-reply frame back), no checks;
  status     `Session.call(Status())` on a warm connection to `ControlServer`: framing, msgpack,
             per-key rate limit, handler dispatch (target <= 1.5x the floor);
  signed     a signed mutation (`Set`) through the same path: adds an Ed25519 sign and verify;
  connect    a new shielded, pinned connection plus its first `status` reply, vs a new bare one;
plus RPCs/s over one connection (sequential and 64 in flight), and, if clients/oxctl.py exists,
`python -m clients.oxctl --help` as a process vs `python -c pass`. Figures only, no assertions.

    .venv/bin/python bench/control_rpc.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from nacl.signing import SigningKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clients.transport import Session, connect  # noqa: E402
from oxwrtd.control import acl as aclmod  # noqa: E402
from oxwrtd.control.identity import ServerIdentity  # noqa: E402
from oxwrtd.control.server import ControlServer, Limits, Peer  # noqa: E402
from schema import wire  # noqa: E402

STATUS = wire.StatusReply(
    services=[
        wire.ServiceStatus(
            name=f"svc{i}",
            state="running",
            pid=100 + i,
            uptime_secs=3600,
            last_log="listening on 0.0.0.0:53",
        )
        for i in range(8)
    ],
    supervisor_uptime_secs=86400,
    wan=wire.WanSummary(
        address="203.0.113.7", prefix=24, gateway="203.0.113.1", lease_seconds=3600
    ),
    active_wan="wan",
    wans=[wire.WanEntry(name="wan", iface="eth0", healthy=True, active=True)],
    firewall_rules=42,
)
REQUEST_BYTES = wire.encode(wire.Status())
REPLY_BYTES = wire.encode(STATUS)


class BareServer(QuicConnectionProtocol):
    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived) and event.end_stream:
            self._quic.send_stream_data(event.stream_id, REPLY_BYTES, end_stream=True)
            self.transmit()


class BareClient(QuicConnectionProtocol):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.waiting: dict[int, asyncio.Future[None]] = {}

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived) and event.end_stream:
            self.waiting.pop(event.stream_id).set_result(None)

    def transmit(self) -> None:
        if self._transport is not None and self._transport.is_closing():
            if self._timer is not None:
                self._timer.cancel()
            return
        super().transmit()

    async def rpc(self) -> None:
        sid = self._quic.get_next_available_stream_id()
        fut = self._loop.create_future()
        self.waiting[sid] = fut
        self._quic.send_stream_data(sid, REQUEST_BYTES, end_stream=True)
        self.transmit()
        await fut


async def bare_open(port: int) -> tuple[BareClient, asyncio.BaseTransport]:
    """A bare aioquic client connection, closed without waiting, like ours."""
    config = QuicConfiguration(is_client=True, alpn_protocols=["squic"], verify_mode=ssl.CERT_NONE)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: BareClient(QuicConnection(configuration=config)), remote_addr=("127.0.0.1", port)
    )
    assert isinstance(protocol, BareClient)
    protocol.connect(("127.0.0.1", port))
    await protocol.wait_connected()
    return protocol, transport


async def answer(request: wire.Request, peer: Peer) -> AsyncIterator[wire.Response]:
    yield STATUS if isinstance(request, wire.Status) else wire.Ok()


async def median_ms(work: Callable[[], Awaitable[object]], runs: int) -> float:
    for _ in range(max(5, runs // 10)):
        await work()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        await work()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


async def paired_ms(
    floor: Callable[[], Awaitable[object]], work: Callable[[], Awaitable[object]], runs: int
) -> tuple[float, float]:
    """Medians of `floor` and `work` sampled alternately, so drift on a shared machine hits both."""
    for _ in range(max(5, runs // 10)):
        await floor()
        await work()
    a, b = [], []
    for _ in range(runs):
        start = time.perf_counter_ns()
        await floor()
        mid = time.perf_counter_ns()
        await work()
        a.append(mid - start)
        b.append(time.perf_counter_ns() - mid)
    return statistics.median(a) / 1e6, statistics.median(b) / 1e6


def process_ms(argv: list[str], runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


async def main(runs: int) -> None:
    ident, seed = ServerIdentity(os.urandom(32)), os.urandom(32)
    table, _ = aclmod.build([("bench", bytes(SigningKey(seed).verify_key).hex())], None)
    server = ControlServer(ident, table, answer, Limits(max_rpcs_per_sec=1e9))
    _, port = await server.listen("127.0.0.1", 0)

    loop = asyncio.get_running_loop()
    bare_transport, _ = await loop.create_datagram_endpoint(
        lambda: QuicServer(configuration=server.quic_config, create_protocol=BareServer),
        local_addr=("127.0.0.1", 0),
    )
    bare_port = bare_transport.get_extra_info("sockname")[1]

    async def new_session() -> Session:
        return await connect("127.0.0.1", port, client_seed=seed, server_key=ident.public_key)

    bare, bare_client_transport = await bare_open(bare_port)
    session = await new_session()
    floor, status = await paired_ms(bare.rpc, lambda: session.call(wire.Status()), runs)
    floor2, signed = await paired_ms(
        bare.rpc, lambda: session.call(wire.Set(key="hostname", value="gw")), runs
    )
    signed *= floor / floor2  # both ratios against the same floor

    async def burst() -> None:
        await asyncio.gather(*(session.call(wire.Status()) for _ in range(64)))

    async def bare_burst() -> None:
        await asyncio.gather(*(bare.rpc() for _ in range(64)))

    bare_burst_ms, burst_ms = await paired_ms(bare_burst, burst, max(10, runs // 20))
    bare.close()
    bare_client_transport.close()
    bare.transmit()

    async def ours_connect() -> None:
        s = await new_session()
        await s.call(wire.Status())
        s.close()

    async def bare_connect_once() -> None:
        p, t = await bare_open(bare_port)
        await p.rpc()
        p.close()
        t.close()
        p.transmit()

    connect_bare, connect_ours = await paired_ms(
        bare_connect_once, ours_connect, max(10, runs // 20)
    )
    session.close()
    server.close()
    bare_transport.close()

    print(
        f"status-sized RPC: request {len(REQUEST_BYTES)} B, reply {len(REPLY_BYTES)} B, {runs} runs"
    )
    print(f"  floor   bare aioquic round trip      {floor:7.3f} ms")
    print(
        f"  status  ControlServer + Session      {status:7.3f} ms  {status / floor:5.2f}x"
        " (target <= 1.5x)"
    )
    print(f"  signed  Set, ed25519 sign + verify   {signed:7.3f} ms  {signed / floor:5.2f}x")
    print(
        f"  RPCs/s over one connection, sequential: {1000 / status:7.0f} (bare {1000 / floor:7.0f})"
    )
    print(
        f"  RPCs/s over one connection, 64 in flight: {64_000 / burst_ms:7.0f} "
        f"(bare {64_000 / bare_burst_ms:7.0f}; both bound by congestion control and ACK delay)"
    )
    print(
        f"  connect + first status: ours {connect_ours:6.2f} ms, bare {connect_bare:6.2f} ms "
        f"({connect_ours / connect_bare:4.2f}x)"
    )

    py = sys.executable
    floor_p = process_ms([py, "-c", "pass"])
    transport_p = process_ms([py, "-c", "import clients.transport"])
    print(f"  process: python -c pass {floor_p:6.1f} ms (floor)")
    print(
        f"  process: import clients.transport {transport_p:6.1f} ms "
        f"({transport_p / floor_p:4.2f}x; paid by every remote command)"
    )
    if (ROOT / "clients" / "oxctl.py").exists():
        help_p = process_ms([py, "-m", "clients.oxctl", "--help"])
        print(f"  process: oxctl --help {help_p:6.1f} ms ({help_p / floor_p:4.2f}x)")
    else:
        print("  process: clients/oxctl.py does not exist yet; not measured")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="timed RPCs per measure")
    asyncio.run(main(parser.parse_args().runs))
