"""The supervisor shell: carries out what `core.supervise.Supervision` decides.

It spawns sandboxed services, signals them through pidfds (a recycled PID is never signalled),
feeds their output into per-service log rings, feeds reaped exits back into the core and re-arms
one timer at the core's next deadline. Every event is handed to `on_event` (the runtime journals
it) and kept in a short in-memory tail; exits and failures also become a log line of the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from oxwrtd.core.supervise import (
    STOP_GRACE_S,
    Event,
    Output,
    Phase,
    RemoveCgroup,
    ServiceExited,
    ServiceGaveUp,
    ServiceLimitsUnsupported,
    ServiceNotReady,
    ServiceSpawnFailed,
    Signal,
    Spawn,
    Supervision,
    describe_exit,
)
from oxwrtd.shell import sandbox
from oxwrtd.shell.logring import LogBook, LogRing
from oxwrtd.shell.reaper import ExitStatus, Reaper
from schema.config import Service
from schema.errors import ConfigError

DEFAULT_CGROUP_BASE = Path("/sys/fs/cgroup/svc")
EVENTS_KEPT = 1000
# rmdir of a leaf fails with EBUSY until its killed processes are reaped; retry for up to 2 s.
CGROUP_RMDIR_TRIES = 40
CGROUP_RMDIR_RETRY_S = 0.05


class StatusLine(msgspec.Struct, frozen=True):
    name: str
    phase: str
    pid: int | None
    restarts: int
    detail: str
    last_log: str | None
    unenforced: list[str] = []  # cgroup limits this kernel cannot apply (also an event)


class _LogPipe(asyncio.Protocol):
    def __init__(self, ring: LogRing, loop: asyncio.AbstractEventLoop) -> None:
        self.ring, self.loop = ring, loop

    def data_received(self, data: bytes) -> None:
        self.ring.feed(data, self.loop.time())

    def connection_lost(self, exc: Exception | None) -> None:
        self.ring.close(self.loop.time())


class Supervisor:
    def __init__(
        self,
        *,
        state_dir: Path,
        cgroup_base: Path = DEFAULT_CGROUP_BASE,
        grace_s: float = STOP_GRACE_S,
        reaper: Reaper | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.core = Supervision(grace_s=grace_s)
        self.logs = LogBook()
        self.cgroups = sandbox.Cgroups(cgroup_base)
        self.state_dir = state_dir
        self.events: deque[Event] = deque(maxlen=EVENTS_KEPT)
        self._on_event = on_event
        self._owns_reaper = reaper is None
        self.reaper = reaper or Reaper()
        self.reaper.set_on_exit(self._reaped)
        self._launchers: set[int] = set()
        self._pidfds: dict[int, int] = {}
        self._log_pipes: dict[int, asyncio.BaseTransport] = {}
        self._spawning: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._limits_reported: dict[str, Service] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ lifecycle of the shell

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._owns_reaper:
            self.reaper.start()

    async def close(self, timeout: float | None = None) -> None:
        """Stop every service (SIGTERM, SIGKILL after the grace period) and wait for them."""
        self._apply(self.core.shutdown(self._now()))
        deadline = self._now() + (timeout if timeout is not None else self.core.grace_s + 2.0)
        while (self.core.names() or self._spawning) and self._now() < deadline:
            await asyncio.sleep(0.02)
        for task in list(self._spawning):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        for transport in self._log_pipes.values():
            transport.close()
        for fd in self._pidfds.values():
            os.close(fd)
        self._pidfds.clear()
        if self._owns_reaper:
            self.reaper.stop()

    # ------------------------------------------------------------ requests

    def reconcile(self, services: Sequence[Service]) -> None:
        issues = sandbox.check_services(list(services))
        if issues:
            raise ConfigError(issues)
        self._apply(self.core.reconcile(services, self._now()))

    def stop(self, name: str) -> None:
        self._apply(self.core.stop(name, self._now()))

    def start_service(self, name: str) -> None:
        self._apply(self.core.start(name, self._now()))

    def restart(self, name: str) -> None:
        self._apply(self.core.restart(name, self._now()))

    def report_readiness(self, name: str, ok: bool, detail: str = "") -> None:
        self._apply(self.core.readiness(name, ok, detail, self._now()))

    def status(self) -> list[StatusLine]:
        return [
            StatusLine(
                name=s.name,
                phase=s.phase.value,
                pid=s.pid,
                restarts=s.restarts,
                detail=s.detail,
                last_log=self.logs.ring(s.name).last_line(),
                unenforced=self.cgroups.unsupported(spec) if spec else [],
            )
            for s in self.core.status()
            for spec in (self._limits_reported.get(s.name),)
        ]

    def phase_of(self, name: str) -> Phase | None:
        return self.core.phase_of(name)

    def pid_of(self, name: str) -> int | None:
        return self.core.pid_of(name)

    # ------------------------------------------------------------ carrying out decisions

    def _now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def _apply(self, outputs: list[Output]) -> None:
        for out in outputs:
            if isinstance(out, Spawn):
                task = asyncio.get_running_loop().create_task(self._spawn(out.name, out.spec))
                self._spawning.add(task)
                task.add_done_callback(self._spawning.discard)
            elif isinstance(out, Signal):
                self._signal(out)
            elif isinstance(out, RemoveCgroup):
                self._remove(out.name)
            else:
                self._emit(out)
        self._rearm()

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.next_deadline()
        if deadline is not None:
            loop = self._loop or asyncio.get_running_loop()
            self._timer = loop.call_at(deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self._apply(self.core.tick(self._now()))

    def _emit(self, event: Event) -> None:
        self.events.append(event)
        line = _log_line(event)
        if line is not None:
            self.logs.ring(event.name).add(f"oxwrtd: {line}", self._now())
        if self._on_event is not None:
            self._on_event(event)

    async def _spawn(self, name: str, spec: Service) -> None:
        loop = asyncio.get_running_loop()
        try:
            unsupported = self.cgroups.unsupported(spec)
            if unsupported and self._limits_reported.get(name) != spec:
                self._limits_reported[name] = spec
                reason = self.cgroups.reason()
                self._emit(ServiceLimitsUnsupported(name=name, limits=unsupported, reason=reason,
                                                    at=self._now()))  # fmt: skip
            procs = self.cgroups.prepare(spec)
            plan = sandbox.build_plan(
                spec,
                staging=self._dir("roots", name),
                cgroup_procs=procs,
                resolv_conf=self._resolv_conf(spec),
            )
            launched = await sandbox.spawn(plan)
        except sandbox.SpawnError as exc:
            if exc.launcher_pid is not None:
                self._forget_launcher(exc.launcher_pid)
            self._apply(self.core.spawn_failed(name, str(exc), self._now()))
            return
        except OSError as exc:  # the state dir or cgroup tree could not be prepared
            self._apply(self.core.spawn_failed(name, str(exc), self._now()))
            return
        self._forget_launcher(launched.launcher_pid)
        ring = self.logs.ring(name)
        for warning in launched.warnings:
            ring.add(f"oxwrtd: sandbox: {warning}", self._now())
        with contextlib.suppress(OSError):
            self._pidfds[launched.pid] = os.pidfd_open(launched.pid)
        transport, _ = await loop.connect_read_pipe(
            lambda: _LogPipe(ring, loop), os.fdopen(launched.log_fd, "rb", buffering=0)
        )
        self._log_pipes[launched.pid] = transport
        outputs = self.core.spawned(name, launched.pid, self._now())
        early = self.reaper.claim(launched.pid)  # exited before we knew its PID
        if early is not None:
            outputs += self._exited(early)
        self._apply(outputs)

    def _forget_launcher(self, pid: int) -> None:
        if self.reaper.claim(pid) is None:
            self._launchers.add(pid)

    def _reaped(self, status: ExitStatus) -> bool:
        if status.pid in self._launchers:
            self._launchers.discard(status.pid)
            return True
        if all(self.core.pid_of(name) != status.pid for name in self.core.names()):
            return False  # an orphan, or a service whose spawn is still being recorded
        self._apply(self._exited(status))
        return True

    def _exited(self, status: ExitStatus) -> list[Output]:
        fd = self._pidfds.pop(status.pid, None)
        if fd is not None:
            os.close(fd)
        self._log_pipes.pop(status.pid, None)  # closes itself at EOF (grandchildren may hold it)
        name = next((n for n in self.core.names() if self.core.pid_of(n) == status.pid), None)
        if name is not None:
            # Nothing of a service outlives its main process (systemd's KillMode=control-group).
            with contextlib.suppress(OSError):
                self.cgroups.kill(name)
        return self.core.exited(status.pid, status.code, status.signal, self._now())

    def _signal(self, action: Signal) -> None:
        with contextlib.suppress(ProcessLookupError):  # already dead; its exit is on the way
            fd = self._pidfds.get(action.pid)
            if fd is not None:
                signal.pidfd_send_signal(fd, action.signal)
            else:
                os.kill(action.pid, action.signal)

    def _remove(self, name: str, attempt: int = 0) -> None:
        try:
            self.cgroups.remove(name)
        except OSError as exc:
            if exc.errno == errno.EBUSY and attempt < CGROUP_RMDIR_TRIES:
                loop = self._loop or asyncio.get_running_loop()
                loop.call_later(CGROUP_RMDIR_RETRY_S, self._remove, name, attempt + 1)
            else:
                self.logs.ring(name).add(f"oxwrtd: cgroup not removed: {exc}", self._now())
            return
        self.logs.drop(name)
        self._limits_reported.pop(name, None)

    def _dir(self, *parts: str) -> Path:
        path = self.state_dir.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _resolv_conf(self, spec: Service) -> Path | None:
        """Isolated services resolve through their host end (upstream's svc-resolv file)."""
        if spec.net_mode != "isolated" or spec.veth is None:
            return None
        path = self._dir("resolv") / f"{spec.name}.conf"
        path.write_text(f"nameserver {spec.veth.host_ip}\n")
        return path


def _log_line(event: Event) -> str | None:
    if isinstance(event, ServiceExited):
        return f"exited with {describe_exit(event.code, event.signal)} after {event.ran_for:.3f} s"
    if isinstance(event, ServiceSpawnFailed):
        return f"spawn failed: {event.reason}"
    if isinstance(event, ServiceGaveUp):
        return f"gave up after {event.fast_exits} fast exits (last: {event.last_exit})"
    if isinstance(event, ServiceLimitsUnsupported):
        return f"limits not enforced: {', '.join(event.limits)}: {event.reason}"
    if isinstance(event, ServiceNotReady):
        return f"not ready: {event.detail}"
    return None
