"""Service lifecycle: one record per `[[services]]` entry, driven by facts and a clock passed in.

Owns: each service's phase, its restart backoff and give-up, dependency order and the reload
reconcile. Must hold: a service has at most one live process (Spawn is emitted only when no PID is
alive and no spawn is in flight); every stop escalates SIGTERM -> SIGKILL after the grace period;
nothing here reads a clock or touches the system: facts in, actions and events out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from schema.config import Service

# Upstream's policy (container.rs): backoff 100 ms doubling, capped at 30 s.
BACKOFF_INITIAL_S = 0.1
BACKOFF_MAX_S = 30.0
# Upstream DEP_STARTUP_GRACE: a dependency counts as up after 500 ms of running.
DEP_READY_AFTER_S = 0.5
# A run this long resets backoff and the crash count (systemd's StartLimitIntervalSec is 10 s);
# upstream never resets, so one crash long ago made every later restart wait 30 s.
HEALTHY_RUN_S = 10.0
# Consecutive fast exits before giving up: the backoff reaches its cap at the 10th, then five more
# tries 30 s apart, about 200 s in all, long enough to outlast a slow link or dependency.
GIVE_UP_AFTER_FAST_EXITS = 15
# SIGTERM -> SIGKILL escalation; upstream never escalated and could run a service twice.
STOP_GRACE_S = 5.0

# Linux signal numbers (the core imports no `signal` module; these are ABI constants).
SIGKILL = 9
SIGTERM = 15


class Phase(enum.Enum):
    STARTING = "starting"  # wanted: waiting for dependencies, or a spawn is in flight
    RUNNING = "running"
    BACKOFF = "backoff"  # exited; respawn at `due`
    STOPPING = "stopping"  # SIGTERM sent; SIGKILL at the grace deadline
    STOPPED = "stopped"  # not wanted (explicit stop)
    GAVE_UP = "gave_up"  # too many fast exits; waits for a restart or a changed spec


# ---------------------------------------------------------------- actions (for the shell)


class Spawn(msgspec.Struct, frozen=True, tag=True):
    name: str
    spec: Service


class Signal(msgspec.Struct, frozen=True, tag=True):
    name: str
    pid: int
    signal: int


class RemoveCgroup(msgspec.Struct, frozen=True, tag=True):
    name: str


# ---------------------------------------------------------------- events (for the journal)


class ServiceStarted(msgspec.Struct, frozen=True, tag=True):
    name: str
    pid: int
    at: float


class ServiceExited(msgspec.Struct, frozen=True, tag=True):
    """Exactly one of `code` (normal exit) and `signal` (killed) is set."""

    name: str
    pid: int
    code: int | None
    signal: int | None
    ran_for: float
    at: float


class ServiceSpawnFailed(msgspec.Struct, frozen=True, tag=True):
    name: str
    reason: str
    at: float


class ServiceGaveUp(msgspec.Struct, frozen=True, tag=True):
    name: str
    fast_exits: int
    last_exit: str
    at: float


class ServiceRemoved(msgspec.Struct, frozen=True, tag=True):
    """A reconcile dropped the service and its last process is gone; not said at shutdown,
    where services stop but stay configured."""

    name: str
    at: float


class ServiceReady(msgspec.Struct, frozen=True, tag=True):
    name: str
    via: Literal["uptime", "check"]
    at: float


class ServiceNotReady(msgspec.Struct, frozen=True, tag=True):
    name: str
    detail: str
    at: float


class ServiceLimitsUnsupported(msgspec.Struct, frozen=True, tag=True):
    """Emitted by the shell: the kernel cannot enforce these cgroup v2 limits for `name`."""

    name: str
    limits: list[str]
    reason: str
    at: float


Action = Spawn | Signal | RemoveCgroup
Event = (
    ServiceStarted
    | ServiceExited
    | ServiceSpawnFailed
    | ServiceGaveUp
    | ServiceRemoved
    | ServiceReady
    | ServiceNotReady
    | ServiceLimitsUnsupported
)
Output = Action | Event


class ServiceStatus(msgspec.Struct, frozen=True):
    name: str
    phase: Phase
    pid: int | None
    restarts: int
    detail: str


def describe_exit(code: int | None, signal: int | None) -> str:
    return f"signal {signal}" if signal is not None else f"code {code}"


AfterStop = Literal["stop", "restart", "remove", "shutdown"]


class _Record:
    """Mutable per-service state; only `Supervision` touches it."""

    def __init__(self, spec: Service, now: float) -> None:
        self.spec = spec
        self.phase = Phase.STARTING
        self.due = now
        self.pid: int | None = None
        self.spawning = False
        self.started_at = 0.0
        self.ready = False
        self.check_failed = False
        self.backoff = BACKOFF_INITIAL_S
        self.fast_exits = 0
        self.restarts = 0
        self.kill_at: float | None = None
        self.after_stop: AfterStop = "stop"
        self.pending: Service | None = None
        self.last_exit = ""
        self.detail = ""

    def reset_backoff(self) -> None:
        self.backoff = BACKOFF_INITIAL_S
        self.fast_exits = 0


class Supervision:
    """The lifecycle of every service. Each method takes `now` (seconds, monotonic) and returns
    the actions the shell must perform and the events to journal, in order."""

    def __init__(self, *, grace_s: float = STOP_GRACE_S) -> None:
        self.grace_s = grace_s
        self._records: dict[str, _Record] = {}
        self._order: list[str] = []

    # ------------------------------------------------------------ queries

    def names(self) -> list[str]:
        return list(self._order)

    def pid_of(self, name: str) -> int | None:
        rec = self._records.get(name)
        return rec.pid if rec else None

    def phase_of(self, name: str) -> Phase | None:
        rec = self._records.get(name)
        return rec.phase if rec else None

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(
                name=name,
                phase=rec.phase,
                pid=rec.pid,
                restarts=rec.restarts,
                detail=self._detail(rec),
            )
            for name in self._order
            for rec in (self._records[name],)
        ]

    def next_deadline(self) -> float | None:
        deadlines: list[float] = []
        for name in self._order:
            rec = self._records[name]
            spawnable = rec.phase is Phase.STARTING and not rec.spawning and self._deps_ready(rec)
            if rec.phase is Phase.BACKOFF or spawnable:
                deadlines.append(rec.due)
            elif rec.phase is Phase.RUNNING and not rec.ready and not rec.check_failed:
                deadlines.append(rec.started_at + DEP_READY_AFTER_S)
            elif rec.phase is Phase.STOPPING and rec.kill_at is not None:
                deadlines.append(rec.kill_at)
        return min(deadlines, default=None)

    # ------------------------------------------------------------ inputs

    def reconcile(self, specs: Sequence[Service], now: float) -> list[Output]:
        """Make the service set match `specs`: unchanged ones keep running untouched."""
        out: list[Output] = []
        wanted = {spec.name: spec for spec in specs}
        for name in list(reversed(self._order)):
            if name not in wanted:
                out += self._stop(name, now, after="remove")
        for spec in specs:
            rec = self._records.get(spec.name)
            if rec is None:
                self._records[spec.name] = _Record(spec, now)
            elif rec.after_stop == "remove" and rec.phase is Phase.STOPPING:
                # Re-added while its old instance is still stopping: respawn once it is gone.
                rec.after_stop, rec.pending = "restart", spec
            elif (rec.pending or rec.spec) == spec:
                continue
            elif rec.pid is not None or rec.spawning:
                rec.pending = spec
                out += self._stop(spec.name, now, after="restart")
            else:
                rec.spec = spec
                rec.reset_backoff()
                rec.phase, rec.due = Phase.STARTING, now
        self._order = _topological([r.spec for r in self._records.values()], wanted)
        return out + self.tick(now)

    def tick(self, now: float) -> list[Output]:
        """Advance every timer that has expired; dependencies first, so one tick suffices."""
        out: list[Output] = []
        for name in self._order:
            rec = self._records[name]
            if rec.phase is Phase.BACKOFF and now >= rec.due:
                rec.phase = Phase.STARTING
            if rec.phase is Phase.STARTING and not rec.spawning and now >= rec.due:
                if self._deps_ready(rec):
                    rec.spawning = True
                    out.append(Spawn(name=name, spec=rec.spec))
            elif rec.phase is Phase.RUNNING and not rec.ready and not rec.check_failed:
                if now - rec.started_at >= DEP_READY_AFTER_S:
                    rec.ready = True
                    out.append(ServiceReady(name=name, via="uptime", at=now))
            elif rec.phase is Phase.STOPPING and rec.kill_at is not None and now >= rec.kill_at:
                rec.kill_at = None
                assert rec.pid is not None
                out.append(Signal(name=name, pid=rec.pid, signal=SIGKILL))
        return out

    def spawned(self, name: str, pid: int, now: float) -> list[Output]:
        rec = self._records[name]
        rec.spawning = False
        rec.pid, rec.started_at = pid, now
        rec.ready = rec.check_failed = False
        out: list[Output] = [ServiceStarted(name=name, pid=pid, at=now)]
        if rec.phase is Phase.STOPPING:  # a stop arrived while the spawn was in flight
            rec.kill_at = now + self.grace_s
            return [*out, Signal(name=name, pid=pid, signal=SIGTERM)]
        rec.phase = Phase.RUNNING
        return out

    def spawn_failed(self, name: str, reason: str, now: float) -> list[Output]:
        rec = self._records[name]
        rec.spawning = False
        out: list[Output] = [ServiceSpawnFailed(name=name, reason=reason, at=now)]
        rec.last_exit = f"spawn failed: {reason}"
        if rec.phase is Phase.STOPPING:
            return out + self._after_stop(rec, now)
        return out + self._crashed(rec, ran_for=0.0, now=now)

    def exited(self, pid: int, code: int | None, signal: int | None, now: float) -> list[Output]:
        """A reaped PID. PIDs that are no service's current process are ignored (orphans)."""
        rec = next((r for r in self._records.values() if r.pid == pid), None)
        if rec is None:
            return []
        ran_for = now - rec.started_at
        rec.pid, rec.ready = None, False
        rec.last_exit = describe_exit(code, signal)
        out: list[Output] = [
            ServiceExited(
                name=rec.spec.name, pid=pid, code=code, signal=signal, ran_for=ran_for, at=now
            )
        ]
        if rec.phase is Phase.STOPPING:
            return out + self._after_stop(rec, now)
        return out + self._crashed(rec, ran_for=ran_for, now=now)

    def readiness(self, name: str, ok: bool, detail: str, now: float) -> list[Output]:
        """The result of a readiness check; a pass makes dependents start before 500 ms."""
        rec = self._records.get(name)
        if rec is None or rec.phase is not Phase.RUNNING:
            return []
        if ok:
            rec.ready, rec.check_failed = True, False
            return [ServiceReady(name=name, via="check", at=now), *self.tick(now)]
        rec.ready, rec.check_failed = False, True
        return [ServiceNotReady(name=name, detail=detail, at=now)]

    def stop(self, name: str, now: float) -> list[Output]:
        return self._stop(name, now, after="stop")

    def start(self, name: str, now: float) -> list[Output]:
        rec = self._records[name]
        if rec.phase in (Phase.STOPPED, Phase.GAVE_UP):
            rec.reset_backoff()
            rec.phase, rec.due = Phase.STARTING, now
        return self.tick(now)

    def restart(self, name: str, now: float) -> list[Output]:
        rec = self._records[name]
        if rec.pid is None and not rec.spawning:  # nothing to stop: start afresh, now
            return self._now(rec, now)
        return self._stop(name, now, after="restart")

    def shutdown(self, now: float) -> list[Output]:
        out: list[Output] = []
        for name in reversed(list(self._order)):
            out += self._stop(name, now, after="shutdown")
        return out

    # ------------------------------------------------------------ internals

    def _now(self, rec: _Record, now: float) -> list[Output]:
        rec.reset_backoff()
        rec.phase, rec.due = Phase.STARTING, now
        return self.tick(now)

    def _stop(self, name: str, now: float, after: AfterStop) -> list[Output]:
        rec = self._records[name]
        if rec.phase is Phase.STOPPING:  # already on its way down: the latest request decides
            rec.after_stop = after
            return []
        rec.after_stop = after
        if rec.pid is not None:
            rec.phase, rec.kill_at = Phase.STOPPING, now + self.grace_s
            return [Signal(name=name, pid=rec.pid, signal=SIGTERM)]
        if rec.spawning:  # signalled as soon as the PID is known
            rec.phase, rec.kill_at = Phase.STOPPING, None
            return []
        return self._after_stop(rec, now)

    def _after_stop(self, rec: _Record, now: float) -> list[Output]:
        name = rec.spec.name
        rec.kill_at = None
        if rec.after_stop in {"remove", "shutdown"}:
            del self._records[name]
            self._order.remove(name)
            if rec.after_stop == "shutdown":
                return [RemoveCgroup(name=name)]
            return [RemoveCgroup(name=name), ServiceRemoved(name=name, at=now)]
        if rec.after_stop == "restart":
            if rec.pending is not None:
                rec.spec, rec.pending = rec.pending, None
            rec.after_stop = "stop"
            return self._now(rec, now)
        rec.phase = Phase.STOPPED
        return []

    def _crashed(self, rec: _Record, ran_for: float, now: float) -> list[Output]:
        rec.restarts += 1
        if ran_for >= HEALTHY_RUN_S:
            rec.reset_backoff()
        else:
            rec.fast_exits += 1
        if rec.fast_exits >= GIVE_UP_AFTER_FAST_EXITS:
            rec.phase = Phase.GAVE_UP
            return [
                ServiceGaveUp(
                    name=rec.spec.name,
                    fast_exits=rec.fast_exits,
                    last_exit=rec.last_exit,
                    at=now,
                )
            ]
        rec.phase, rec.due = Phase.BACKOFF, now + rec.backoff
        rec.backoff = min(rec.backoff * 2, BACKOFF_MAX_S)
        return []

    def _deps_ready(self, rec: _Record) -> bool:
        return all(
            (dep := self._records.get(name)) is not None and dep.ready
            for name in rec.spec.depends_on
        )

    def _detail(self, rec: _Record) -> str:
        if rec.phase is Phase.GAVE_UP:
            return f"gave up after {rec.fast_exits} fast exits; last: {rec.last_exit}"
        if rec.phase is Phase.STARTING and not rec.spawning:
            waiting = [
                name
                for name in rec.spec.depends_on
                if (dep := self._records.get(name)) is None or not dep.ready
            ]
            if waiting:
                return "waiting for " + ", ".join(waiting)
        if rec.phase is Phase.BACKOFF:
            return f"restart at {rec.due:.3f} after {rec.last_exit}"
        if rec.phase is Phase.STOPPING:
            return "SIGKILL sent" if rec.kill_at is None else f"SIGKILL at {rec.kill_at:.3f}"
        return rec.last_exit and f"last exit: {rec.last_exit}"


def _topological(specs: Iterable[Service], wanted: dict[str, Service]) -> list[str]:
    """Dependencies before dependents, otherwise config order. Cycles are a validation error;
    should one get here, its members keep config order rather than vanish."""
    ordered: list[str] = []
    by_name = {s.name: s for s in specs}
    names = [n for n in wanted if n in by_name] + [n for n in by_name if n not in wanted]
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting or name not in by_name:
            return
        visiting.add(name)
        for dep in by_name[name].depends_on:
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered
