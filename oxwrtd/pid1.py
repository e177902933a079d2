"""oxwrtd as PID 1: boot the machine, hand it to a main loop, shut it down in order, never exit.

    run(main)   boot steps (oxwrtd/shell/init.py), then `await main(boot)` inside one asyncio loop
                that also reaps every orphan, feeds the watchdog while `main` reports progress,
                and turns SIGTERM/SIGINT/SIGPWR/SIGUSR1/SIGUSR2 into `boot.request(action)`.
                When `main` returns: shutdown hooks (newest first), SIGTERM then SIGKILL to what
                is left, seed saved, data partition unmounted, sync, reboot(2).

A PID 1 that exits panics the kernel, so nothing leaves `run`: an exception anywhere is logged to
the console and becomes a reboot; `main` returning without a request is a reboot too. `main()`
plugs in the daemon (`daemon`: the loop's turns are its progress, `boot.stopping` stops it, and
`boot.reaper` is its services' reaper); `--selftest` plugs in a small main that supervises one
command instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from oxwrtd.shell import init
from oxwrtd.shell.init import Action, Console
from oxwrtd.shell.reaper import ExitStatus, Reaper

READY_LINE = "pid1 ready"  # on the console as "oxwrtd: pid1 ready" (vm/harness.py waits for it)
HOOK_TIMEOUT_S = 10.0  # one shutdown hook (e.g. the supervisor stopping services with escalation)
TERM_GRACE_S = 5.0  # leftover processes between SIGTERM and SIGKILL (sysvinit and busybox: 5 s)
KILL_WAIT_S = 2.0  # after SIGKILL, only D-state processes linger; do not wait for them long
MODULES_D = Path("/etc/modules.d")
SEED_FILE = "random-seed"  # on the data partition


@dataclass
class Boot:
    """What PID 1 hands to the main loop."""

    console: Console
    reaper: Reaper
    watchdog: init.Watchdog
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    action: Action | None = None
    data_mounted: bool = False
    hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def request(self, action: Action) -> None:
        """Ask for an orderly shutdown; the first request wins, later ones are logged only."""
        if self.action is None:
            self.action = action
            self.console.log(f"shutdown requested: {action.value}")
        self.stopping.set()

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` at shutdown, before leftover processes are killed; newest first."""
        self.hooks.append(hook)


Main = Callable[[Boot], Awaitable[None]]


def boot_machine(console: Console) -> bool:
    """The boot steps before any loop runs; returns whether the data partition is mounted.
    Every step degrades rather than stops the boot (see init.py)."""
    for failure in init.early_mounts():
        console.log(f"early mount failed: {failure}", level=3)
    requests, errors = init.read_module_lists(MODULES_D)
    for error in errors:
        console.log(f"module list: {error}", level=4)
    started = time.monotonic()
    modules_dir = Path("/lib/modules") / os.uname().release
    outcomes = init.load_modules(requests, modules_dir, modprobe=init.find_tool("modprobe"))
    loaded = [o.name for o in outcomes if o.status == "loaded"]
    took = time.monotonic() - started
    console.log(f"modules loaded in {took:.1f} s: {' '.join(loaded) or '-'}")
    for outcome in outcomes:
        if outcome.status == "failed":
            console.log(f"module {outcome.name} failed: {outcome.detail}", level=4)
    data_mounted = False
    device = init.find_labelled(init.DATA_LABEL)
    if device is None:
        console.log(f"no {init.DATA_LABEL} partition: config and journal are volatile", level=4)
    else:
        try:
            init.mount_data(device)
            console.log(f"data partition {device} on {init.DATA_MOUNT}")
        except OSError as exc:
            console.log(f"data partition {device}: {exc}", level=3)
        data_mounted = init.is_mountpoint(init.DATA_MOUNT)  # to unmount even if a bind failed
    name = init.boot_hostname()
    with contextlib.suppress(OSError):
        init.set_hostname(name)
    if data_mounted:
        try:
            init.restore_seed(Path(init.DATA_MOUNT) / SEED_FILE)
        except OSError as exc:
            console.log(f"random seed: {exc}", level=4)
    try:
        init.disable_ctrl_alt_del()
    except OSError as exc:
        console.log(f"ctrl-alt-del stays a hard reset: {exc}", level=4)
    return data_mounted


async def serve(main: Main, boot: Boot) -> Action:
    """Run `main` with reaping, signals and the watchdog around it, then shut down in order."""
    loop = asyncio.get_running_loop()
    boot.reaper.start()
    for signum, action in init.SHUTDOWN_SIGNALS.items():
        loop.add_signal_handler(signum, boot.request, action)
    feeder = asyncio.create_task(_feed_watchdog(boot))
    try:
        await main(boot)
        if boot.action is None:
            boot.console.log("main loop returned without a shutdown request: rebooting", level=3)
    finally:
        boot.action = boot.action or Action.REBOOT  # main raised: run() logs it, then reboots
        await shutdown(boot)
        feeder.cancel()
    return boot.action


async def _feed_watchdog(boot: Boot) -> None:
    loop = asyncio.get_running_loop()
    warned = False
    while True:
        fed = boot.watchdog.kick(loop.time())
        if boot.watchdog.present and not fed and not warned:
            boot.console.log("main loop made no progress: no longer feeding the watchdog", 3)
        warned = not fed
        await asyncio.sleep(boot.watchdog.interval_s)


async def shutdown(boot: Boot) -> None:
    loop = asyncio.get_running_loop()
    for hook in reversed(boot.hooks):
        boot.watchdog.progress(loop.time())  # each step of a shutdown is progress
        try:
            await asyncio.wait_for(hook(), HOOK_TIMEOUT_S)
        except Exception:  # a failing hook must not stop the machine from shutting down
            boot.console.exception("shutdown hook failed")
    me = os.getpid()
    for sig, wait in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, KILL_WAIT_S)):
        boot.watchdog.progress(loop.time())
        pids = init.descendants(me)
        if not pids:
            break
        boot.console.log(f"sending {sig.name} to {len(pids)} processes")
        init.signal_all(pids, sig)
        deadline = time.monotonic() + wait
        while init.descendants(me) and time.monotonic() < deadline:
            boot.reaper.sweep()
            await asyncio.sleep(0.05)
    boot.reaper.sweep()
    if boot.data_mounted:
        with contextlib.suppress(OSError):
            init.save_seed(Path(init.DATA_MOUNT) / SEED_FILE)
        os.sync()
        boot.console.log(init.unmount_data())
        boot.data_mounted = False
    os.sync()


def run(
    main: Main,
    *,
    as_pid1: bool | None = None,
    boot_steps: Callable[[Console], bool] | None = None,
    power: Callable[[Action], None] | None = None,
    console: Console | None = None,
) -> NoReturn:
    """Boot, serve `main`, power off or reboot. Outside PID 1 (tests, a lab) nothing touches
    the machine by default: no boot steps (mounts, hostname, Ctrl-Alt-Del), the process exits
    instead of calling reboot(2), and orphans reach us through PR_SET_CHILD_SUBREAPER."""
    as_pid1 = os.getpid() == 1 if as_pid1 is None else as_pid1
    if boot_steps is None:
        boot_steps = boot_machine if as_pid1 else _no_boot_steps
    if power is None:
        power = init.power if as_pid1 else _exit_instead
    console = console or (Console.attach() if as_pid1 else Console(sys.stderr))
    action = Action.REBOOT
    boot: Boot | None = None
    try:
        data_mounted = boot_steps(console)
        # only PID 1 may arm the board's watchdog: a test that opened it and exited would
        # leave the host to be reset
        watchdog = init.Watchdog.open() if as_pid1 else init.Watchdog(None)
        boot = Boot(console, Reaper(), watchdog, data_mounted=data_mounted)
        action = asyncio.run(serve(main, boot))
    except BaseException:  # PID 1 must never exit: whatever happened, log it and reboot
        console.exception("PID 1 failed, rebooting")
        if boot is not None and boot.data_mounted:
            with contextlib.suppress(OSError):
                console.log(init.unmount_data())
    console.log(f"{action.value} now")
    while True:
        try:
            power(action)
            console.log(f"reboot(2) returned for {action.value}", level=3)
        except OSError as exc:
            console.log(f"{action.value} failed: {exc}", level=3)
        if not as_pid1:
            os._exit(1)
        time.sleep(5.0)  # keep retrying; the watchdog, no longer fed, resets the board anyway


def _no_boot_steps(console: Console) -> bool:
    console.log("not PID 1: the machine is left as it is (no mounts, modules, hostname)")
    return False


def _exit_instead(action: Action) -> None:
    print(f"oxwrtd: not PID 1: exiting instead of {action.value}", file=sys.stderr, flush=True)
    os._exit(0)


# ---------------------------------------------------------------- self-test main

RESPAWN_DELAY_S = 1.0


def selftest(service: Sequence[str]) -> Main:
    """A main loop for the VM tier's PID 1 tests: announce readiness, keep `service` (e.g.
    vm/guest_agent.py) running, report progress, stop when asked."""

    async def main(boot: Boot) -> None:
        loop = asyncio.get_running_loop()
        boot.console.log(READY_LINE)
        keeper = asyncio.create_task(_keep_running(boot, list(service))) if service else None
        while not boot.stopping.is_set():
            boot.watchdog.progress(loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(boot.stopping.wait(), 1.0)
        if keeper is not None:
            keeper.cancel()

    return main


async def _keep_running(boot: Boot, argv: list[str]) -> None:
    while not boot.stopping.is_set():
        try:
            pid = os.posix_spawnp(argv[0], argv, dict(os.environ), setsid=True,
                                 setsigdef=(signal.SIGPIPE, signal.SIGXFSZ))  # fmt: skip
        except OSError as exc:
            boot.console.log(f"cannot start {argv[0]}: {exc}", level=3)
        else:
            status: ExitStatus = await boot.reaper.wait_for(pid)
            boot.console.log(f"{argv[0]} exited (code={status.code} signal={status.signal})")
        await asyncio.sleep(RESPAWN_DELAY_S)


def daemon(daemon_argv: Sequence[str], companion: Sequence[str] = ()) -> Main:
    """The router's main loop: oxwrtd's daemon (`oxwrtd.daemon.serve`) on the data partition's
    config and state dirs, plus `companion` (e.g. the VM tier's guest agent) kept running beside
    it as a plain child of PID 1, outside any sandbox. Arguments the daemon's parser rejects are
    logged and the defaults used: a router with a typo on its kernel command line must still boot.
    The firewall goes into this namespace (it is the router's own)."""

    async def main(boot: Boot) -> None:
        from oxwrtd import daemon as oxwrtd_daemon

        logging.basicConfig(
            level=logging.INFO,
            format="oxwrtd %(levelname)s %(message)s",  # the console adds no clock; dmesg has one
            stream=boot.console.stream,
            force=True,
        )
        args = daemon_args(daemon_argv, boot.console)
        logging.getLogger().setLevel(args.log_level.upper())
        boot.watchdog.progress(asyncio.get_running_loop().time())  # the loop has started
        tasks = [asyncio.create_task(_report_progress(boot))]
        if companion:
            tasks.append(asyncio.create_task(_keep_running(boot, list(companion))))
        try:
            await oxwrtd_daemon.serve(
                args.config_dir, args.state_dir, True, args.run_dir, boot=boot
            )
        finally:
            for task in tasks:
                task.cancel()

    return main


def daemon_args(argv: Sequence[str], console: Console) -> argparse.Namespace:
    """The daemon's options; when they do not parse, the reason and the defaults are logged."""
    from oxwrtd import daemon as oxwrtd_daemon

    try:
        with contextlib.redirect_stderr(io.StringIO()) as why:
            return oxwrtd_daemon.parse_args(list(argv))
    except SystemExit:
        reason = why.getvalue().strip().splitlines()[-1:] or ["not parsed"]
        console.log(f"arguments {list(argv)}: {reason[0]}; running with the defaults", level=3)
        return oxwrtd_daemon.parse_args([])


async def _report_progress(boot: Boot) -> None:
    """The daemon's loop turns: the daemon does its blocking work (netlink, nft, fsync) on its
    kernel thread, so a loop that stops turning is a hung daemon."""
    loop = asyncio.get_running_loop()
    while True:
        boot.watchdog.progress(loop.time())
        await asyncio.sleep(1.0)


def split_companion(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """`[OPTIONS] [-- COMMAND ...]` -> (options, command)."""
    args = list(args)
    if "--" in args:
        at = args.index("--")
        return args[:at], args[at + 1 :]
    return args, []


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """`python -m oxwrtd.pid1 [DAEMON OPTIONS] [-- COMMAND ...]` runs the router (see `daemon`);
    `python -m oxwrtd.pid1 --selftest [-- COMMAND ...]` runs the self-test loop instead."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--selftest"]:
        rest = args[1:]
        service = rest[1:] if rest[:1] == ["--"] else rest
        run(selftest(service))
    options, companion = split_companion(args)
    run(daemon(options, companion))


if __name__ == "__main__":
    main()
