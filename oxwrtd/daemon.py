"""`oxwrtd [--config-dir DIR] [--state-dir DIR]`: run the router in this network namespace.

Wires the adapters to the runtime and owns the process: the journal under the state dir, the
device key (seals secrets), the dataplane (netlink + nftables), the supervised services (with the
WAN DHCP clients and rendered configs under the run dir), the control plane, signals
(SIGHUP adopts a local edit, SIGTERM/SIGINT stop), the confirm timer and the health timer
(probes after each apply, drift checks), all in one TaskGroup.
Errors in the files never stop the daemon once a revision has run: the last good one stays.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from oxwrtd.core.supervise import Event as SupervisorEvent
    from oxwrtd.pid1 import Boot
    from oxwrtd.services import ServicePaths, SupervisorFactory, SupervisorLike
    from oxwrtd.shell.reaper import Reaper

DEFAULT_CONFIG_DIR: Final = Path("/etc/oxwrt")
DEFAULT_STATE_DIR: Final = Path("/var/lib/oxwrt")
DEFAULT_RUN_DIR: Final = Path("/run/oxwrt")
SOFTWARE: Final = "oxwrt-py 0.1.0"
READY_LINE: Final = "oxwrtd ready"

log = logging.getLogger("oxwrtd")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="oxwrtd", description=__doc__.splitlines()[0])
    p.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument(
        "--run-dir",
        type=Path,
        help=f"rendered service configs and the DHCP report socket (default: {DEFAULT_RUN_DIR} "
        "with the default state dir, else STATE_DIR/run); the config's /run/oxwrt and "
        "/var/lib/oxwrt bind sources are read from the run and state dirs",
    )
    p.add_argument(
        "--print-server-key",
        action="store_true",
        help="print the control plane's public key (creating the key on first use) and exit",
    )
    p.add_argument(
        "--host-namespace",
        action="store_true",
        help="allow installing the firewall in this machine's own network namespace when not "
        "PID 1 (a router running oxwrtd as a service); refused otherwise, as a safety net",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s oxwrtd %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    from oxwrtd.control import identity

    if args.print_server_key:
        ident, _ = identity.load_or_create(args.config_dir)
        print(ident.public_hex)
        return 0
    try:
        return asyncio.run(
            serve(args.config_dir, args.state_dir, args.host_namespace, args.run_dir)
        )
    except KeyboardInterrupt:
        return 0


def run_dir_for(state_dir: Path, run_dir: Path | None) -> Path:
    """A state dir moved elsewhere (a lab, a test) takes its run dir with it."""
    if run_dir is not None:
        return run_dir
    return DEFAULT_RUN_DIR if state_dir == DEFAULT_STATE_DIR else state_dir / "run"


async def serve(
    config_dir: Path,
    state_dir: Path,
    host_namespace: bool = False,
    run_dir: Path | None = None,
    boot: Boot | None = None,
) -> int:
    """`boot` (oxwrtd/pid1.py) when oxwrtd is PID 1: its reaper is the only one, its signals
    (SIGTERM, SIGPWR, ...) stop us, and the reboot RPC asks it to."""
    from journal.lmdb import LmdbStore
    from oxwrtd.control import identity
    from oxwrtd.control.acl import Acl, listen_plan
    from oxwrtd.control.handler import make_handler
    from oxwrtd.control.server import ControlServer, Limits
    from oxwrtd.core import metrics_text
    from oxwrtd.eventlog import EventLog
    from oxwrtd.runtime import Runtime, environment_overlay
    from oxwrtd.services import ServicePaths, Services
    from oxwrtd.shell import devicekey
    from oxwrtd.shell.blocklists import BlocklistRefresher
    from oxwrtd.shell.dataplane import Dataplane
    from oxwrtd.shell.metrics_server import MetricsListenError, MetricsServer
    from oxwrtd.shell.netlink import Netlink
    from oxwrtd.shell.nft import Nft
    from oxwrtd.shell.probes import Probes, reaped_command
    from oxwrtd.shell.reaper import Reaper
    from schema.config import Config
    from schema.tomledit import secure_secrets_mode

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config_dir.mkdir(parents=True, exist_ok=True)
    if secure_secrets_mode(config_dir / "oxwrt.secrets.toml"):
        log.warning("tightened %s to mode 0600", config_dir / "oxwrt.secrets.toml")
    _become_subreaper()
    device_key = devicekey.load_or_create(state_dir / "device.key")
    ident, created = identity.load_or_create(config_dir)
    log.info("control plane server key %s%s", ident.public_hex, " (new)" if created else "")

    kernel_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oxwrtd-kernel")
    loop = asyncio.get_running_loop()
    # pyroute2's synchronous socket refuses to start inside a running event loop
    netlink, nft = await loop.run_in_executor(
        kernel_thread, lambda: (Netlink(), Nft(allow_init_netns=host_namespace))
    )
    runtime = Runtime(
        events=EventLog(LmdbStore(state_dir / "journal")),
        dataplane=Dataplane(netlink, nft),
        config_dir=config_dir,
        device_key=device_key,
        software=SOFTWARE,
        env=environment_overlay(),
    )
    runtime.kernel = kernel_thread
    if boot is not None:
        from oxwrtd.shell.init import Action

        runtime.power = lambda mode: boot.request(Action(mode))
    control = ControlServer(ident, Acl(), make_handler(runtime), Limits())

    async def apply_control(config: Config) -> None:
        try:
            for note in await control.apply(config.control):
                log.warning("control: %s", note)
        except (OSError, ValueError) as exc:
            log.error("control: listeners unchanged: %s", exc)

    pending: set[asyncio.Task[None]] = set()

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        """A task the loop keeps a reference to until it ends (on the loop thread)."""
        task = loop.create_task(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)

    # Blocklists refresh in their own nft transaction on the kernel thread; metrics are served
    # where [metrics] says (never a WAN-facing address). Both follow every applied revision.
    applied: list[Config] = []
    refresher = BlocklistRefresher(nft.apply, apply_executor=kernel_thread)
    metrics = MetricsServer(
        lambda: metrics_text.snapshot(
            runtime.state, now=time.time(), started=runtime.started, blocklists=refresher.status()
        )
    )

    async def apply_metrics(config: Config) -> None:
        try:
            await metrics.apply(config.metrics.listen if config.metrics else None, config)
        except MetricsListenError as exc:
            log.error("metrics: %s", exc)

    def on_applied(config: Config) -> None:  # called on the kernel thread
        applied[:] = [config]
        refresher.wake()
        loop.call_soon_threadsafe(spawn, apply_control(config))
        loop.call_soon_threadsafe(spawn, apply_metrics(config))

    runtime.on_applied.append(on_applied)
    paths = ServicePaths(run_dir_for(state_dir, run_dir), state_dir)
    # One reaper owns waitpid(-1) for the whole daemon: the services' and every helper command's
    # (health probes); PID 1 brings its own.
    reaper = boot.reaper if boot is not None else Reaper()
    if boot is None:
        reaper.start()
    services = Services(runtime, paths, supervisor=_supervisor_factory(paths, reaper))
    await services.start()  # before the boot's apply reconciles it
    runtime.services = services
    runtime.on_applied.append(services.on_applied)
    for line in await runtime.offload(runtime.boot):
        log.info("%s", line)
    await asyncio.sleep(0)  # let the control plane tasks the boot scheduled start
    for problem in runtime.problems:
        log.error("%s", problem)

    stop = boot.stopping if boot is not None else asyncio.Event()

    def on_sighup() -> None:
        async def adopt() -> None:
            for line in await runtime.local_edit() or ["no local edit"]:
                log.info("SIGHUP: %s", line)

        spawn(adopt())

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    if boot is None:  # PID 1's own handlers turn these into an orderly shutdown
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await asyncio.gather(*pending)
    listening = ", ".join(f"{h}:{p}" for h, p in control.listening) or "nowhere"
    log.info(
        "%s: revision %s running, control plane on %s, journal at seq %d",
        READY_LINE,
        runtime.state.running,
        listening,
        runtime.state.seq,
    )
    timer = loop.create_task(runtime.run_timer())

    def control_unbound(listen: Sequence[str]) -> list[str]:  # the "control" health probe
        wanted, _ = listen_plan(list(listen), control.acl)
        bound = set(control.listening)
        return [f"{host}:{port}" for host, port in wanted if (host, port) not in bound]

    probes = Probes(
        kernel=lambda: runtime.offload(runtime.kernel_drift),
        control=control_unbound,
        services=runtime.service_states,
        command=reaped_command(reaper, loop),
    )
    health_timer = loop.create_task(runtime.run_health(probes))
    blocklist_task = loop.create_task(refresher.run(lambda: applied[0] if applied else None))
    try:
        await stop.wait()
        # an orderly stop: the next boot is not a crash (a health probation counts crashes)
        await runtime.offload(lambda: runtime.stopping("orderly shutdown"))
    finally:
        await metrics.close()
        for task in (timer, health_timer, blocklist_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        control.close()
        await services.close()  # their exits are journaled before the journal closes
        if boot is None:
            reaper.stop()
        await loop.run_in_executor(kernel_thread, runtime.events.close)
        await loop.run_in_executor(kernel_thread, netlink.close)
        nft.close()
        kernel_thread.shutdown()
    log.info("oxwrtd stopped")
    return 0


def _supervisor_factory(paths: ServicePaths, reaper: Reaper) -> SupervisorFactory:
    """The services share the daemon's reaper: one process, one waitpid(-1) owner."""
    from oxwrtd.services import SANDBOX_DIR
    from oxwrtd.shell.supervisor import Supervisor

    def make(on_event: Callable[[SupervisorEvent], None]) -> SupervisorLike:
        return Supervisor(state_dir=paths.run_dir / SANDBOX_DIR, on_event=on_event, reaper=reaper)

    return make


def _become_subreaper() -> None:
    """Orphans of our services are reparented to us, not to the host's init (not as PID 1)."""
    if os.getpid() == 1:
        return
    import ctypes

    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        log.warning("could not become a child subreaper: %s", os.strerror(ctypes.get_errno()))


__all__ = ["main", "serve"]
