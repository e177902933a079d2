"""Spawn-to-running latency of a sandboxed service vs a bare asyncio subprocess, and the daemon's
resident memory with ten services running. Needs root; runs inside a network namespace it creates
and removes (veth host ends never touch the machine's own namespace).

    .venv/bin/python bench/service_spawn.py [--runs 20]

"Running" means the service's execve has happened: for the floor, when
`asyncio.create_subprocess_exec` returns (it waits for the exec); for the sandbox, when the
supervisor records ServiceStarted (the launcher reports the exec through a close-on-exec pipe).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import shutil
import statistics
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

from oxwrtd.core.supervise import ServiceStarted
from oxwrtd.shell.supervisor import Supervisor
from schema.config import Security, Service, Veth

PROGRAM = ["/bin/sleep", "3600"]
CLONE_NEWNET = 0x40000000


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def bare_floor(runs: int) -> list[float]:
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(runs):
        t0 = loop.time()
        proc = await asyncio.create_subprocess_exec(*PROGRAM)
        times.append(loop.time() - t0)
        proc.kill()
        await proc.wait()
    return times


def service(name: str, kind: str, i: int = 0) -> Service:
    if kind == "isolated":
        veth = Veth(host_ip=f"10.80.{i % 256}.1", peer_ip=f"10.80.{i % 256}.2")
        return Service(
            name=name,
            rootfs="/",
            entrypoint=PROGRAM,
            veth=veth,
            security=Security(pid_namespace=True),
        )
    return Service(
        name=name,
        rootfs="/",
        entrypoint=PROGRAM,
        net_mode="host",
        security=Security(pid_namespace=True, user_namespace=kind == "userns"),
    )


async def until(done: Callable[[], bool], sup: Supervisor, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        if loop.time() > deadline:
            lines = [f"{s.name} {s.phase} {s.detail} | {s.last_log}" for s in sup.status()]
            raise SystemExit("stuck:\n" + "\n".join(lines))
        await asyncio.sleep(0.0005)


async def sandboxed(runs: int, kind: str, state_dir: Path) -> list[float]:
    started: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    def on_event(event: object) -> None:
        if isinstance(event, ServiceStarted):
            started[event.name] = loop.time()

    # PID 1 of a PID namespace ignores SIGTERM unless it installs a handler (sleep does not):
    # a short grace keeps the teardown between runs out of the way.
    sup = Supervisor(
        state_dir=state_dir, cgroup_base=state_dir / "cg", on_event=on_event, grace_s=0.05
    )
    await sup.start()
    times = []
    try:
        for i in range(runs):
            name = f"b{i}"
            t0 = loop.time()
            sup.reconcile([service(name, kind, i)])
            await until(lambda name=name: name in started, sup)
            times.append(started[name] - t0)
            sup.reconcile([])
            await until(lambda: not sup.core.names(), sup)
    finally:
        await sup.close()
    return times


async def ten_running(state_dir: Path) -> tuple[int, int]:
    before = rss_kib()
    sup = Supervisor(state_dir=state_dir, cgroup_base=state_dir / "cg", grace_s=0.05)
    await sup.start()
    try:
        sup.reconcile([service(f"r{i}", "isolated", i) for i in range(10)])
        await until(lambda: sum(1 for s in sup.status() if s.phase == "running") == 10, sup)
        await asyncio.sleep(0.5)
        return before, rss_kib()
    finally:
        await sup.close()


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (namespaces, veth)")
    floor = asyncio.run(bare_floor(args.runs))

    ns = f"oxbench-{uuid.uuid4().hex[:8]}"
    state_dir = Path("/run") / ns
    subprocess.run(["ip", "netns", "add", ns], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise SystemExit(f"setns: {os.strerror(ctypes.get_errno())}")
        results = {
            kind: asyncio.run(sandboxed(args.runs, kind, state_dir))
            for kind in ("host", "userns", "isolated")
        }
        before, after = asyncio.run(ten_running(state_dir))
    finally:
        libc.setns(home, CLONE_NEWNET)
        subprocess.run(["ip", "netns", "del", ns], check=True)
        shutil.rmtree(state_dir, ignore_errors=True)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
    base = median_ms(floor)
    print(f"spawn-to-running, median of {args.runs}:")
    print(f"  bare asyncio.create_subprocess_exec   {base:7.2f} ms  (floor)")
    labels = {
        "host": "sandbox, host net, pid ns",
        "userns": "sandbox, + user ns",
        "isolated": "sandbox, isolated net + veth",
    }
    for kind, times in results.items():
        ms = median_ms(times)
        print(f"  {labels[kind]:<37} {ms:7.2f} ms  ratio {ms / base:5.1f}x")
    print(f"daemon RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB with ten services")
    print(f"  ratio {after / before:.2f}x, {(after - before) / 10:.0f} KiB per service")


if __name__ == "__main__":
    main()
