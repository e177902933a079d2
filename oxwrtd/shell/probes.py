"""Health probes: run what core/health.py resolved, each bounded in time, results as facts.

Every probe ends within its bound (ping -W and a subprocess timeout, a socket timeout for DNS)
and never raises: a probe that cannot run is a failed probe with the reason as its detail. The
blocking ones (ping, DNS) run on worker threads, never on the event loop or the kernel thread;
what only the daemon knows (the kernel drift, the bound control listeners, the service table)
comes in as callables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import struct
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from oxwrtd.core.health import ProbeSpec
from oxwrtd.shell.reaper import Reaper
from schema.events import HealthProbed

PING_WAIT_S: Final = 2  # ping -W: how long the one echo may take to come back
COMMAND_TIMEOUT_S: Final = 5.0  # hard bound on a probe's process (ping may stall on ARP)
DNS_TIMEOUT_S: Final = 2.0  # a resolver slower than this fails the probe
MAX_DETAIL_ITEMS: Final = 5  # findings quoted in a detail; the rest are counted

Command = Callable[[list[str], float], tuple[int, str]]  # argv, timeout -> (exit code, output)
Resolve = Callable[[str, str, int, float], tuple[bool, str]]  # name, server, port, timeout

_DNS_RCODES: Final = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_TYPE_A: Final = 1
_CLASS_IN: Final = 1
_FLAG_RESPONSE: Final = 0x8000
_FLAG_RD: Final = 0x0100


def run_command(argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return 124, f"no result within {timeout:g} s"
    except OSError as exc:
        return 127, f"{argv[0]}: {exc.strerror or exc}"
    return done.returncode, (done.stdout + done.stderr).strip()


def reaped_command(reaper: Reaper, loop: asyncio.AbstractEventLoop) -> Command:
    """A Command (called on a worker thread) whose child `reaper` waits for. Inside the daemon
    the reaper owns waitpid(-1): subprocess.run's own wait races it, and when the reaper wins,
    Python reports exit status 0 for a child it never saw (a failed ping read as healthy)."""

    def run(argv: list[str], timeout: float) -> tuple[int, str]:
        future = asyncio.run_coroutine_threadsafe(reaper.run(argv), loop)
        try:
            status, output = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return 124, f"no result within {timeout:g} s"
        except OSError as exc:
            return 127, f"{argv[0]}: {exc.strerror or exc}"
        code = status.code if status.code is not None else 128 + (status.signal or 0)
        return code, output.decode(errors="replace").strip()

    return run


def resolve_a(name: str, server: str, port: int, timeout: float) -> tuple[bool, str]:
    """Ask `server`:`port` for the A record of `name` over UDP; (resolved, why not)."""
    ident = int.from_bytes(os.urandom(2), "big")
    question = b"".join(
        bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")
    )
    packet = struct.pack("!6H", ident, _FLAG_RD, 1, 0, 0, 0) + question + b"\0"
    packet += struct.pack("!2H", _TYPE_A, _CLASS_IN)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    where = f"[{server}]:{port}" if family == socket.AF_INET6 else f"{server}:{port}"
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((server, port))  # a connected socket takes replies from the server only
            sock.send(packet)
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                reply = sock.recv(4096)
                if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == ident:
                    break
    except TimeoutError:
        return False, f"{name}: no answer from {where} within {timeout:g} s"
    except ConnectionRefusedError:
        return False, f"{name}: nothing answers DNS on {where}"
    except OSError as exc:
        return False, f"{name}: {where}: {exc.strerror or exc}"
    _, flags, _, answers = struct.unpack("!4H", reply[:8])
    rcode = flags & 0xF
    if not flags & _FLAG_RESPONSE:
        return False, f"{name}: {where} sent a query, not an answer"
    if rcode:
        return False, f"{name}: {_DNS_RCODES.get(rcode, f'rcode {rcode}')} from {where}"
    if not answers:
        return False, f"{name}: {where} answered with no address"
    return True, f"{name}: {answers} record(s) from {where}"


class Probes:
    def __init__(
        self,
        *,
        kernel: Callable[[], Awaitable[list[str]]],
        control: Callable[[Sequence[str]], list[str]],
        services: Callable[[], Mapping[str, str]],
        command: Command = run_command,
        resolve: Resolve = resolve_a,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`kernel`: what differs between the kernel and the running revision; `control`: which
        of the given [control].listen addresses are not bound; `services`: name -> state."""
        self.kernel = kernel
        self.control = control
        self.services = services
        self.command = command
        self.resolve = resolve
        self.clock = clock

    async def run(self, specs: Sequence[ProbeSpec]) -> list[HealthProbed]:
        """Every probe at once; the round takes as long as its slowest probe."""
        return list(await asyncio.gather(*(self._timed(spec) for spec in specs)))

    async def _timed(self, spec: ProbeSpec) -> HealthProbed:
        start = self.clock()
        ok, detail = (False, spec.problem) if spec.problem else await self._check(spec)
        latency = round((self.clock() - start) * 1000.0, 3)
        return HealthProbed(target=spec.target, ok=ok, latency_ms=latency, detail=detail)

    async def _check(self, spec: ProbeSpec) -> tuple[bool, str]:
        if spec.kind == "kernel":
            found = await self.kernel()
            return not found, _listed("kernel differs", found) if found else ""
        if spec.kind == "control":
            missing = self.control(spec.expect)
            return not missing, _listed("not listening on", missing) if missing else ""
        if spec.kind == "services":
            table = self.services()
            down = [
                f"{name} ({table.get(name, 'never started')})"
                for name in spec.expect
                if table.get(name) != "running"
            ]
            return not down, _listed("not running", down) if down else ""
        if spec.kind == "dns":
            return await asyncio.to_thread(
                self.resolve, spec.name, spec.address, spec.port, DNS_TIMEOUT_S
            )
        argv = ["ping", "-c1", f"-W{PING_WAIT_S}"]
        if spec.kind == "wan-gateway":
            argv += ["-I", spec.iface]
        code, output = await asyncio.to_thread(
            self.command, [*argv, spec.address], COMMAND_TIMEOUT_S
        )
        if code == 0:
            return True, ""
        via = f" via {spec.iface}" if spec.iface else ""
        last = output.splitlines()[-1] if output else f"exit {code}"
        return False, f"{spec.address}{via} does not answer a ping ({last})"


def _listed(what: str, items: Sequence[str]) -> str:
    more = len(items) - MAX_DETAIL_ITEMS
    return (
        f"{what}: " + "; ".join(items[:MAX_DETAIL_ITEMS]) + (f" (+{more} more)" if more > 0 else "")
    )


__all__ = [
    "COMMAND_TIMEOUT_S",
    "DNS_TIMEOUT_S",
    "PING_WAIT_S",
    "Probes",
    "resolve_a",
    "run_command",
]
