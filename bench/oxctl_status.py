"""What `oxctl status` costs an operator, against the floors measured in the same run.

A daemon on 127.0.0.1 in this process: the ControlServer with the real RPC handler over a Runtime
booted on the cookbook (in-memory journal, fake kernel: nothing on the machine changes). Medians:
  process   `python -m clients.oxctl ... 127.0.0.1:PORT status` as a whole process (interpreter,
            imports, key loading, QUIC handshake with pinning, one RPC, table rendering)
            vs `python -c pass` (target: import cost kept small by lazy imports);
            `oxctl --help` (argument parsing, no connection) and `import clients.transport`
            (the QUIC stack every remote command loads) for reference;
  in-proc   `Session.call(Status())` on a warm connection through handler + Runtime.status()
            vs a bare aioquic request/response of the same byte sizes (bench/control_rpc.py's
            bare client and server, reused) (target <= 1.5x), and Runtime.status() alone.
Figures only, no assertions.

    .venv/bin/python bench/oxctl_status.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aioquic.asyncio.server import QuicServer
from aioquic.quic import events

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import control_rpc  # noqa: E402  (bench/control_rpc.py: the bare aioquic floor)

from clients.keys import keygen  # noqa: E402
from clients.transport import connect  # noqa: E402
from journal.memory import MemoryStore  # noqa: E402
from oxwrtd.control import acl as aclmod  # noqa: E402
from oxwrtd.control.handler import make_handler  # noqa: E402
from oxwrtd.control.identity import ServerIdentity  # noqa: E402
from oxwrtd.control.server import ControlServer, Limits  # noqa: E402
from oxwrtd.eventlog import EventLog  # noqa: E402
from oxwrtd.runtime import Runtime  # noqa: E402
from oxwrtd.shell.dataplane import Dataplane  # noqa: E402
from oxwrtd.shell.fake_netlink import FakeNetlink  # noqa: E402
from oxwrtd.shell.fake_nft import FakeNft  # noqa: E402
from schema import wire  # noqa: E402

COOKBOOK = ROOT / "rootfs-overlay" / "etc" / "oxwrt"


def cookbook_runtime(config_dir: Path) -> Runtime:
    (config_dir / "oxwrt.toml").write_text((COOKBOOK / "oxwrt.toml").read_text())
    secrets = config_dir / "oxwrt.secrets.toml"
    secrets.write_text((COOKBOOK / "oxwrt.secrets.toml.example").read_text())
    secrets.chmod(0o600)
    kernel = FakeNetlink()
    for dev in ("wan0", "lan0", "guest0"):
        kernel.add_device(dev)
    rt = Runtime(
        events=EventLog(MemoryStore()),
        dataplane=Dataplane(kernel, FakeNft()),
        config_dir=config_dir,
        device_key=os.urandom(32),
        software="bench",
    )
    rt.boot()
    if rt.state.running is None:
        raise SystemExit(f"oxctl_status bench: the cookbook did not boot: {rt.problems}")
    return rt


class SizedBareServer(control_rpc.BareServer):
    """control_rpc's bare server, answering with a reply as large as our status reply."""

    reply = b""

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived) and event.end_stream:
            self._quic.send_stream_data(event.stream_id, self.reply, end_stream=True)
            self.transmit()


async def process_ms(argv: Sequence[str], runs: int) -> float:
    """Median wall time of `argv` as a process; the event loop keeps serving meanwhile."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        samples.append(time.perf_counter_ns() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {out.decode()}{err.decode()}")
    return statistics.median(samples) / 1e6


async def main(runs: int, process_runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="oxctl-status-bench-"))
    (tmp / "etc").mkdir()
    rt = cookbook_runtime(tmp / "etc")
    client_public = keygen(tmp / "operator.key")
    client_seed = bytes.fromhex((tmp / "operator.key").read_text().strip())
    ident = ServerIdentity(os.urandom(32))
    table, _ = aclmod.build([("bench", client_public)], None)
    server = ControlServer(ident, table, make_handler(rt), Limits(max_rpcs_per_sec=1e9))
    _, port = await server.listen("127.0.0.1", 0)

    status_bytes = wire.encode(await rt.status())
    SizedBareServer.reply = status_bytes
    loop = asyncio.get_running_loop()
    bare_transport, _ = await loop.create_datagram_endpoint(
        lambda: QuicServer(configuration=server.quic_config, create_protocol=SizedBareServer),
        local_addr=("127.0.0.1", 0),
    )
    bare_port = bare_transport.get_extra_info("sockname")[1]
    try:
        session = await connect(
            "127.0.0.1", port, client_seed=client_seed, server_key=ident.public_key
        )
        bare, bare_client = await control_rpc.bare_open(bare_port)
        floor, status = await control_rpc.paired_ms(
            bare.rpc, lambda: session.call(wire.Status()), runs
        )
        api_only = await control_rpc.median_ms(rt.status, runs)
        session.close()
        bare.close()
        bare_client.close()

        py = sys.executable
        oxctl = [py, "-m", "clients.oxctl", "--key", str(tmp / "operator.key")]
        oxctl += ["--server-key", ident.public_hex, f"127.0.0.1:{port}"]
        bare_py = await process_ms([py, "-c", "pass"], process_runs)
        help_ms = await process_ms([py, "-m", "clients.oxctl", "--help"], process_runs)
        import_ms = await process_ms([py, "-c", "import clients.transport"], process_runs)
        status_p = await process_ms([*oxctl, "status"], process_runs)
    finally:
        server.close()
        bare_transport.close()
        for path in sorted(tmp.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        tmp.rmdir()

    print(f"oxctl status against the cookbook runtime on 127.0.0.1 ({len(status_bytes)} B reply)")
    print(f"  process  python -c pass (floor)           {bare_py:7.1f} ms")
    print(
        f"  process  oxctl --help                     {help_ms:7.1f} ms  {help_ms / bare_py:5.2f}x"
    )
    print(
        f"  process  import clients.transport          {import_ms:7.1f} ms  "
        f"{import_ms / bare_py:5.2f}x  (aioquic + cryptography: paid by every remote command)"
    )
    print(
        f"  process  oxctl status, whole process      {status_p:7.1f} ms  "
        f"{status_p / bare_py:5.2f}x  (median of {process_runs})"
    )
    print(f"  in-proc  bare aioquic round trip (floor)  {floor:7.3f} ms")
    print(
        f"  in-proc  status via handler + Runtime     {status:7.3f} ms  {status / floor:5.2f}x"
        f"  (target <= 1.5x; median of {runs})"
    )
    print(f"  in-proc  of which Runtime.status() alone  {api_only:7.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="timed in-process RPCs")
    parser.add_argument("--process-runs", type=int, default=9, help="timed oxctl processes")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.process_runs))
