"""`oxwrtd [--config-dir DIR] [--state-dir DIR]`: run the router in this network namespace.

Wires the adapters to the runtime and owns the process: the journal under the state dir, the
device key (seals secrets), the dataplane (netlink + nftables), the control plane, signals
(SIGHUP adopts a local edit, SIGTERM/SIGINT stop) and the confirm timer, all in one TaskGroup.
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
from pathlib import Path
from typing import Final

DEFAULT_CONFIG_DIR: Final = Path("/etc/oxwrt")
DEFAULT_STATE_DIR: Final = Path("/var/lib/oxwrt")
SOFTWARE: Final = "oxwrt-py 0.1.0"
READY_LINE: Final = "oxwrtd ready"

log = logging.getLogger("oxwrtd")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="oxwrtd", description=__doc__.splitlines()[0])
    p.add_argument("--config-dir", type=Path, default=DEFAULT_CONFIG_DIR)
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
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
        return asyncio.run(serve(args.config_dir, args.state_dir, args.host_namespace))
    except KeyboardInterrupt:
        return 0


async def serve(config_dir: Path, state_dir: Path, host_namespace: bool = False) -> int:
    from journal.lmdb import LmdbStore
    from oxwrtd.control import identity
    from oxwrtd.control.acl import Acl
    from oxwrtd.control.handler import make_handler
    from oxwrtd.control.server import ControlServer, Limits
    from oxwrtd.eventlog import EventLog
    from oxwrtd.runtime import Runtime, environment_overlay
    from oxwrtd.shell import devicekey
    from oxwrtd.shell.dataplane import Dataplane
    from oxwrtd.shell.netlink import Netlink
    from oxwrtd.shell.nft import Nft
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
    control = ControlServer(ident, Acl(), make_handler(runtime), Limits())

    async def apply_control(config: Config) -> None:
        try:
            for note in await control.apply(config.control):
                log.warning("control: %s", note)
        except (OSError, ValueError) as exc:
            log.error("control: listeners unchanged: %s", exc)

    pending: set[asyncio.Task[None]] = set()

    def schedule_control(config: Config) -> None:
        task = loop.create_task(apply_control(config))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def on_applied(config: Config) -> None:  # called on the kernel thread
        loop.call_soon_threadsafe(schedule_control, config)

    runtime.on_applied.append(on_applied)
    for line in await runtime.offload(runtime.boot):
        log.info("%s", line)
    await asyncio.sleep(0)  # let the control plane tasks the boot scheduled start
    for problem in runtime.problems:
        log.error("%s", problem)

    stop = asyncio.Event()

    def on_sighup() -> None:
        async def adopt() -> None:
            for line in await runtime.local_edit() or ["no local edit"]:
                log.info("SIGHUP: %s", line)

        task = loop.create_task(adopt())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
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
    try:
        await stop.wait()
    finally:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        control.close()
        await loop.run_in_executor(kernel_thread, runtime.events.close)
        await loop.run_in_executor(kernel_thread, netlink.close)
        nft.close()
        kernel_thread.shutdown()
    log.info("oxwrtd stopped")
    return 0


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
