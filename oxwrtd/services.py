"""The daemon's services: the supervisor driven by the running revision, with what it reports in
the journal.

On every applied revision (`on_applied`, on the kernel thread) the full service set is built:
the config's `[[services]]` plus one busybox udhcpc per DHCP WAN; dnsmasq.conf is rendered into
the run dir, and the supervisor is reconciled on the event loop (unchanged services keep their
PID; a service binding a rendered file whose text changed is restarted: dnsmasq re-reads its
config only at start). Supervisor events become ServiceStarted/ServiceExited/ServiceGaveUp
events, lease reports LeaseAcquired events, journaled in order by one task through the runtime;
a lease that moves a WAN's address or gateway applies the running revision again, so the
default route, masquerade and hairpin follow. A service that cannot start is a status line and a
log line, never a failed apply or a dead daemon. Services an earlier daemon left running (it
was killed alone, not as PID 1) are ended before the first reconcile starts new ones, and
services dropped from the config leave the journal's table (ServiceRemoved).

Paths: the cookbook names the canonical locations (`/run/oxwrt/...`, `/var/lib/oxwrt/...`); bind
sources under them are read relative to the daemon's run and state dirs, which are those same
directories on a router and scratch directories in the lab.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

import msgspec

from oxwrtd.control.api import ApiError, Outcome
from oxwrtd.core import render_chrony, render_hostapd, supervise
from oxwrtd.core.dhcp_client import ClientPaths, LeaseFailed, LeaseLost, client_service, wan_dns
from oxwrtd.core.leftovers import left_running
from oxwrtd.core.render_dnsmasq import DnsmasqOptions, render
from oxwrtd.core.state import Lease as LeaseRow
from oxwrtd.core.state import ServiceRow, State
from oxwrtd.shell import procs
from oxwrtd.shell.dhcp_client import LeaseReceiver, default_paths
from oxwrtd.shell.logring import LogBook
from oxwrtd.shell.render_files import sync_dir, write_rendered
from oxwrtd.shell.supervisor import StatusLine, Supervisor
from schema import events as ev
from schema import wire
from schema.config import Config, Service
from schema.errors import ConfigError, format_path
from schema.events import LeaseAcquired

log = logging.getLogger("oxwrtd")

CANONICAL_RUN_DIR: Final = "/run/oxwrt"
CANONICAL_STATE_DIR: Final = "/var/lib/oxwrt"
DNSMASQ_CONF: Final = "dnsmasq.conf"
DHCP_SOCKET: Final = "dhcp.sock"
SANDBOX_DIR: Final = "sandbox"  # the supervisor's staging mount points


class ServicePaths(msgspec.Struct, frozen=True):
    run_dir: Path
    state_dir: Path

    def relocate(self, source: str) -> str:
        """A bind source as it exists on this machine: canonical run/state paths moved."""
        for canonical, actual in (
            (CANONICAL_RUN_DIR, self.run_dir),
            (CANONICAL_STATE_DIR, self.state_dir),
        ):
            if source == canonical or source.startswith(canonical + "/"):
                return str(actual) + source[len(canonical) :]
        return source

    @property
    def dnsmasq_conf(self) -> Path:
        return self.run_dir / DNSMASQ_CONF

    @property
    def dhcp_socket(self) -> Path:
        return self.run_dir / DHCP_SOCKET


# ================================================================ pure helpers


def service_set(
    config: Config, paths: ServicePaths, client: ClientPaths
) -> tuple[list[Service], list[str]]:
    """Every service this config runs, bind sources relocated, and the problems found: one
    udhcpc per DHCP WAN, named `dhcp-<wan>`, unless a `[[services]]` entry already has the name."""
    out = [_relocated(svc, paths) for svc in config.services]
    problems: list[str] = []
    taken = {svc.name for svc in out}
    for wan in config.wans_by_priority():
        if wan.mode != "dhcp":
            continue
        svc = client_service(wan, config.hostname, client)
        if svc.name in taken:
            problems.append(
                f'WAN "{wan.name}" runs no DHCP client: a [[services]] entry is named {svc.name}'
            )
            continue
        out.append(svc)
    return out, problems


def _relocated(svc: Service, paths: ServicePaths) -> Service:
    binds = [msgspec.structs.replace(b, source=paths.relocate(b.source)) for b in svc.binds]
    return msgspec.structs.replace(svc, binds=binds) if binds != svc.binds else svc


def binding(services: Sequence[Service], path: Path) -> list[str]:
    """The services that read `path` (a bind source)."""
    return [s.name for s in services if any(b.source == str(path) for b in s.binds)]


def state_dirs(services: Sequence[Service], paths: ServicePaths) -> list[Path]:
    """The writable bind sources inside the daemon's state dir (directories it creates)."""
    root = paths.state_dir
    return [
        Path(b.source)
        for s in services
        for b in s.binds
        if not b.readonly and (Path(b.source) == root or root in Path(b.source).parents)
    ]


def journal_event(event: supervise.Event, generation: int) -> ev.Event | None:
    """The journal's record of a supervisor event; None for those the journal has no event for
    (spawn failures and readiness stay in the service's log ring and status)."""
    if isinstance(event, supervise.ServiceStarted):
        return ev.ServiceStarted(name=event.name, pid=event.pid, generation=generation)
    if isinstance(event, supervise.ServiceExited):
        return ev.ServiceExited(name=event.name, pid=event.pid, code=event.code,
                                signal=event.signal)  # fmt: skip
    if isinstance(event, supervise.ServiceGaveUp):
        return ev.ServiceGaveUp(name=event.name, restarts=event.fast_exits, reason=event.last_exit)
    if isinstance(event, supervise.ServiceRemoved):
        return ev.ServiceRemoved(name=event.name)
    return None


def moves_wan(config: Config | None, before: LeaseRow | None, after: LeaseAcquired) -> bool:
    """Whether a lease changes what the running revision renders: the address or gateway of one
    of its DHCP WANs. A renewal of the same lease changes nothing."""
    if config is None:
        return False
    if not any(w.mode == "dhcp" and w.iface == after.interface for w in config.wans_by_priority()):
        return False
    return before is None or (before.address, before.gateway) != (after.address, after.gateway)


def status_rows(
    lines: Sequence[StatusLine], journal: Mapping[str, ServiceRow], now: float
) -> list[wire.ServiceStatus]:
    """The services part of `status`: the supervisor's view, uptime from the journal's start."""
    out = []
    for line in lines:
        row = journal.get(line.name)
        running = row is not None and row.state == "running" and row.pid == line.pid
        uptime = int(now - row.since) if running and row is not None else 0
        out.append(
            wire.ServiceStatus(
                name=line.name,
                state=line.phase,
                pid=line.pid,
                restarts=line.restarts,
                uptime_secs=max(0, uptime),
                last_log=line.last_log,
            )
        )
    return out


def service_problems(lines: Sequence[StatusLine]) -> list[str]:
    """Status problems: services that gave up, and limits the kernel cannot enforce."""
    out = [
        f"service {line.name}: {line.detail}"
        for line in lines
        if line.phase == supervise.Phase.GAVE_UP.value
    ]
    out += [
        f"service {line.name}: not enforced on this kernel: {', '.join(line.unenforced)}"
        for line in lines
        if line.unenforced
    ]
    return out


# ================================================================ the shell


class RuntimeHooks(Protocol):
    """What this module needs of the runtime (oxwrtd.runtime.Runtime)."""

    @property
    def state(self) -> State: ...

    def clock(self) -> float: ...

    async def offload(self, fn: Callable[[], list[str]]) -> list[str]: ...

    def observe(self, events: Sequence[ev.Event], *, reapply: bool = False) -> list[str]: ...


class SupervisorLike(Protocol):
    """What this module needs of oxwrtd.shell.supervisor.Supervisor (tests pass a fake)."""

    logs: LogBook

    async def start(self) -> None: ...

    async def close(self, timeout: float | None = None) -> None: ...

    def reconcile(self, services: Sequence[Service]) -> None: ...

    def restart(self, name: str) -> None: ...

    def status(self) -> list[StatusLine]: ...


SupervisorFactory = Callable[[Callable[[supervise.Event], None]], SupervisorLike]


class Services:
    def __init__(
        self,
        runtime: RuntimeHooks,
        paths: ServicePaths,
        *,
        supervisor: SupervisorFactory | None = None,
        python: str | None = None,
        started_at: Callable[[int], float | None] = procs.started_at,
        kill: Callable[[list[int], Callable[[int], bool]], list[int]] = procs.kill_matching,
    ) -> None:
        self.runtime = runtime
        self._started_at, self._kill = started_at, kill
        self.paths = paths
        make = supervisor or self._real_supervisor
        self.supervisor = make(self._on_supervisor_event)
        # The hook is stdlib-only and runs inside the client's sandbox, where a venv under
        # /tmp or /run would be hidden: the base interpreter behind sys.executable serves.
        self.client = default_paths(paths.dhcp_socket, python=python or _base_python())
        self.receiver = LeaseReceiver(
            paths.dhcp_socket, on_lease=self._on_lease, on_lost=self._on_lost, clock=runtime.clock
        )
        self.problems: list[str] = []  # from the last applied revision (kernel thread)
        self._refused: list[str] = []  # settings the supervisor refused (event loop)
        self._config: Config | None = None  # the last applied revision (kernel thread)
        self._specs: dict[str, Service] = {}  # the last reconciled set (event loop)
        self._generation: dict[str, int] = {}
        self._swept = False  # rows of services no longer configured are dropped once, at boot
        # Journal jobs for the kernel thread, in arrival order; None ends the journaling task.
        self._queue: asyncio.Queue[Callable[[], list[str]] | None] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._journaler: asyncio.Task[None] | None = None

    def _real_supervisor(self, on_event: Callable[[supervise.Event], None]) -> SupervisorLike:
        return Supervisor(state_dir=self.paths.run_dir / SANDBOX_DIR, on_event=on_event)

    # ------------------------------------------------------------ lifecycle (event loop)

    async def start(self) -> None:
        """Before the first apply: the supervisor, the lease socket, the journaling task."""
        self._loop = asyncio.get_running_loop()
        self.paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        await self._end_left_running()
        await self.supervisor.start()
        await self.receiver.start()
        self._journaler = self._loop.create_task(self._journal_forever())

    async def _end_left_running(self) -> None:
        """Kill what an earlier daemon left running (it died without stopping its services)
        before the first reconcile starts new ones; journal their end."""
        rows = dict(self.runtime.state.services)
        names = {pid: name for name, pid in left_running(rows, self._started_at)}
        if not names:
            return

        def still_that_process(pid: int) -> bool:
            return bool(left_running({names[pid]: rows[names[pid]]}, self._started_at))

        killed = await asyncio.to_thread(self._kill, sorted(names), still_that_process)
        for pid in killed:
            log.warning("service %s: pid %d was left running by an earlier daemon; killed it",
                        names[pid], pid)  # fmt: skip
        ended = [ev.ServiceExited(name=names[pid], pid=pid, signal=9) for pid in killed]
        if ended:
            self._queue.put_nowait(lambda: self.runtime.observe(ended))

    async def close(self) -> None:
        """Stop every service, then journal what is still queued (their exits)."""
        self.receiver.close()
        await self.supervisor.close()
        self._queue.put_nowait(None)
        if self._journaler is not None:
            await self._journaler

    # ------------------------------------------------------------ applied revisions

    def on_applied(self, config: Config) -> None:
        """The runtime's hook, on the kernel thread: render, then reconcile on the loop."""
        self._config = config
        services, problems = service_set(config, self.paths, self.client)
        changed, render_problems = self._write_rendered(config)
        problems += render_problems
        problems += self._prepare_state_dirs(services)
        self.problems = problems
        assert self._loop is not None, "Services.start() must run before the first apply"
        stale = sorted({name for path in changed for name in binding(services, path)})
        self._loop.call_soon_threadsafe(self.reconcile, services, stale)

    def _write_rendered(self, config: Config) -> tuple[list[Path], list[str]]:
        """Write every daemon config rendered from `config` (dnsmasq, chrony, hostapd); the
        paths whose text changed (their services restart: none re-reads on SIGHUP) and the
        problems to show in status. Validation at propose time already ran the renderers'
        checks, so a ConfigError here means a bug, reported rather than raised."""
        changed: list[Path] = []
        problems: list[str] = []

        def write(what: str, path: Path, text: str, mode: int) -> None:
            try:
                if write_rendered(path, text, mode):
                    changed.append(path)
            except OSError as exc:
                problems.append(f"{what}: cannot write {path}: {exc.strerror}")

        dnsmasq = render(config, self._dnsmasq_options(config))
        problems += [f"dnsmasq: {format_path(w.path)}: {w.message}" for w in dnsmasq.warnings]
        write("dnsmasq", self.paths.dnsmasq_conf, dnsmasq.text, 0o644)
        try:
            chrony = render_chrony.render(config)
            hostapd = render_hostapd.render(config)
        except ConfigError as exc:
            return changed, problems + [f"render: {issue}" for issue in exc.issues]
        if chrony is not None:
            problems += [f"chrony: {w}" for w in chrony.warnings]
            conf = Path(self.paths.relocate(render_chrony.CHRONY_CONF))
            write("chrony", conf, chrony.text, render_chrony.FILE_MODE)
        for phy, radio in hostapd.items():
            problems += [f"hostapd {phy}: {w}" for w in radio.warnings]
        directory = Path(self.paths.relocate(render_hostapd.HOSTAPD_DIR))
        try:
            synced = sync_dir(
                directory, render_hostapd.files(hostapd), render_hostapd.FILE_MODE, ".conf"
            )
            changed += [directory / name for name in synced.changed + synced.removed]
        except OSError as exc:
            problems.append(f"hostapd: cannot write {directory}: {exc.strerror}")
        return changed, problems

    def _prepare_state_dirs(self, services: Sequence[Service]) -> list[str]:
        """Writable binds into the state dir (dnsmasq's leases, chrony's drift) are directories
        the daemon owns: made on first use, as a bind needs its source to exist."""
        problems = []
        for path in state_dirs(services, self.paths):
            try:
                path.mkdir(parents=True, exist_ok=True, mode=0o755)
            except OSError as exc:
                problems.append(f"cannot create {path}: {exc.strerror}")
        return problems

    def _dnsmasq_options(self, config: Config) -> DnsmasqOptions:
        leases = self.runtime.state.leases
        return DnsmasqOptions(lease_dns=wan_dns(config, leases, self.runtime.clock()))

    def reconcile(self, services: Sequence[Service], stale: Sequence[str] = ()) -> None:
        """Make the supervisor run `services`; restart those in `stale` (their rendered config
        changed) unless the reconcile restarts or starts them anyway."""
        try:
            self.supervisor.reconcile(services)
        except ConfigError as exc:  # a sandbox setting validation let through
            self._refused = [f"services not changed: {issue}" for issue in exc.issues]
            log.error("services not changed: %s", exc)
            return
        self._refused = []
        wanted = {s.name: s for s in services}
        if not self._swept:
            self._swept = True
            self._queue.put_nowait(lambda: self._forget_unconfigured(set(wanted)))
        for name in stale:
            if self._specs.get(name) == wanted[name]:
                log.info("service %s: its rendered config changed; restarting", name)
                self.supervisor.restart(name)
        self._specs = wanted

    def _forget_unconfigured(self, configured: set[str]) -> list[str]:
        """Kernel thread, once after boot: services the journal remembers from an earlier run
        but the config no longer has (it changed while the daemon was down) leave the table.
        Later removals are said by the supervisor when the service's last process is gone."""
        gone = sorted(set(self.runtime.state.services) - configured)
        if not gone:
            return []
        log.info("services no longer configured: %s", ", ".join(gone))
        return self.runtime.observe([ev.ServiceRemoved(name=name) for name in gone])

    # ------------------------------------------------------------ reports -> journal

    def _on_supervisor_event(self, event: supervise.Event) -> None:
        log.info("service %s: %s", event.name, _describe(event))
        generation = self._generation.get(event.name, 0)  # its starts since the daemon started
        if isinstance(event, supervise.ServiceStarted):
            self._generation[event.name] = generation + 1
        record = journal_event(event, generation)
        if record is not None:
            self._queue.put_nowait(lambda: self.runtime.observe([record]))

    def _on_lease(self, lease: LeaseAcquired) -> None:
        log.info("WAN %s: lease %s via %s", lease.interface, lease.address, lease.gateway)

        def record() -> list[str]:  # on the kernel thread, after everything queued before
            before = self.runtime.state.leases.get(lease.interface)
            return self.runtime.observe([lease], reapply=moves_wan(self._config, before, lease))

        self._queue.put_nowait(record)

    def _on_lost(self, report: LeaseLost | LeaseFailed) -> None:
        if not isinstance(report, LeaseLost):
            log.info("WAN %s: DHCP %s", report.interface, report.event)
            return
        log.info("WAN %s: no lease (the DHCP client starts over)", report.interface)

        def record() -> list[str]:  # kernel thread; udhcpc also says deconfig before its first
            if report.interface not in self.runtime.state.leases:  # lease: nothing was held
                return []
            lost = ev.LeaseLost(interface=report.interface, reason="deconfig")
            return self.runtime.observe([lost], reapply=True)  # the address and route go

        self._queue.put_nowait(record)

    async def _journal_forever(self) -> None:
        while (job := await self._queue.get()) is not None:
            for line in await self.runtime.offload(job):
                log.info("%s", line)

    # ------------------------------------------------------------ RouterApi parts

    def status(self) -> tuple[list[wire.ServiceStatus], list[str]]:
        lines = self.supervisor.status()
        rows = status_rows(lines, self.runtime.state.services, self.runtime.clock())
        refused = [f"WAN DHCP report refused: {error}" for error in self.receiver.errors]
        return rows, [*self.problems, *self._refused, *service_problems(lines), *refused]

    def restart(self, name: str) -> Outcome:
        self._known(name)
        self.supervisor.restart(name)
        state = self.runtime.state
        return Outcome(
            lines=[f"restarting {name}"], running=state.running, candidate=state.candidate
        )

    async def logs(self, name: str, follow: bool) -> AsyncIterator[str]:
        self._known(name)
        ring = self.supervisor.logs.ring(name)
        if not follow:
            for line in ring.lines():
                yield line.text
            return
        async for line in ring.follow():
            yield line.text

    def _known(self, name: str) -> None:
        names = [line.name for line in self.supervisor.status()]
        if name not in names:
            known = ", ".join(names) or "none"
            raise ApiError("not-found", f"no service {name!r} (running: {known})")


def _describe(event: supervise.Event) -> str:
    if isinstance(event, supervise.ServiceStarted):
        return f"started, pid {event.pid}"
    if isinstance(event, supervise.ServiceExited):
        return f"pid {event.pid} exited with {supervise.describe_exit(event.code, event.signal)}"
    if isinstance(event, supervise.ServiceSpawnFailed):
        return f"spawn failed: {event.reason}"
    if isinstance(event, supervise.ServiceGaveUp):
        return f"gave up after {event.fast_exits} fast exits (last: {event.last_exit})"
    if isinstance(event, supervise.ServiceReady):
        return f"ready ({event.via})"
    if isinstance(event, supervise.ServiceNotReady):
        return f"not ready: {event.detail}"
    if isinstance(event, supervise.ServiceRemoved):
        return "removed from the config and stopped"
    return f"limits not enforced: {', '.join(event.limits)}: {event.reason}"


__all__ = [
    "CANONICAL_RUN_DIR",
    "CANONICAL_STATE_DIR",
    "SANDBOX_DIR",
    "RuntimeHooks",
    "ServicePaths",
    "Services",
    "SupervisorLike",
    "binding",
    "journal_event",
    "moves_wan",
    "service_problems",
    "service_set",
    "state_dirs",
    "status_rows",
]


def _base_python() -> str:
    """The interpreter itself (a venv's python is a symlink to it), resolved to a real path."""
    return str(Path(sys.executable).resolve())
