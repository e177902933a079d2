"""WAN DHCP clients, the shell half: the socket their hooks report to, and (outside supervision)
the udhcpc processes themselves.

`LeaseReceiver` binds a unix datagram socket (0600: only root's hooks may report), parses each
datagram with `core.dhcp_client.parse_report` and hands the result to callbacks: a bound or
renewed lease as the journal fact `LeaseAcquired`, a loss or failure as the typed report. It
never blocks: asyncio wakes it per datagram.

`DhcpClient` runs one udhcpc directly (tests, `python -m` tools); under oxwrtd the supervisor runs
`core.dhcp_client.client_service(...)` instead, with the same argv and environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from oxwrtd.core.dhcp_client import (
    ClientPaths,
    LeaseBound,
    LeaseFailed,
    LeaseLost,
    ReportError,
    acquired,
    client_argv,
    client_env,
    parse_report,
)
from oxwrtd.shell.files import stop_group
from schema.config import Wan
from schema.events import LeaseAcquired

HOOK_SCRIPT = Path(__file__).with_name("udhcpc_hook.sh")
ERRORS_KEPT = 32  # bad reports remembered for status; older ones are dropped
STOP_GRACE_S = 2.0


def default_paths(socket_path: Path, *, python: str | None = None) -> ClientPaths:
    """Paths for a client on this machine: the hook shipped beside this module, run by this
    interpreter (its -I -S run needs only the standard library)."""
    python = python or sys.executable
    return ClientPaths(hook=str(HOOK_SCRIPT), socket=str(socket_path), python=python)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receiver: LeaseReceiver) -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.receiver.feed(data)


class LeaseReceiver:
    """The daemon end of the hook socket."""

    def __init__(
        self,
        path: Path,
        *,
        on_lease: Callable[[LeaseAcquired], None],
        on_lost: Callable[[LeaseLost | LeaseFailed], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._on_lease = on_lease
        self._on_lost = on_lost
        self._clock = clock
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self.latest: dict[str, LeaseBound] = {}  # interface -> last bound lease (with T1/T2)
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            old = os.umask(0o177)  # created 0600, never briefly wider
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def feed(self, data: bytes) -> None:
        """One datagram; public so a test (or another transport) can drive it directly."""
        try:
            report = parse_report(data)
        except ReportError as exc:
            self.errors.append(str(exc))
            return
        if isinstance(report, LeaseBound):
            self.latest[report.lease.interface] = report
            self._on_lease(acquired(report.lease, self._clock()))
            return
        if isinstance(report, LeaseLost):
            self.latest.pop(report.interface, None)
        if self._on_lost is not None:
            self._on_lost(report)


class DhcpClient:
    """One udhcpc run directly, optionally behind a command prefix (`ip netns exec NS`)."""

    def __init__(
        self,
        wan: Wan,
        hostname: str,
        paths: ClientPaths,
        *,
        prefix: Sequence[str] = (),
        log: Path | None = None,
    ) -> None:
        self.argv = [*prefix, *client_argv(wan, hostname, paths)]
        self.env = {**os.environ, **client_env(paths)}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> int:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        stderr = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # its own group: stop() reaches the hook too
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        return self.proc.pid

    def renew(self) -> None:
        """Ask for a renewal now (udhcpc: SIGUSR1)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)

    def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after the grace period; waits for it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_group(proc, STOP_GRACE_S)


__all__ = ["HOOK_SCRIPT", "DhcpClient", "LeaseReceiver", "default_paths"]
