"""Run inside the VM guest by tests/vm/test_supervisor_vm.py: the real Supervisor starts services
with cgroup v2 limits on a kernel that has the memory, cpu and pids controllers, and this script
records what the kernel enforced. It prints one line `RESULT {json}` for the host to assert on
(and exits 0 even when a scenario failed: the JSON's "error" says which and why).

Scratch goes to the guest's tmpfs (/run); the cgroup base is a fresh directory of its own beside
whatever the guest's PID 1 runs, removed on the way out. Three services run side by side:
  limited  sleep, with memory_max, cpu_max and pids_max: the files read back, nothing unenforced
  forker   forks children that sleep until a fork fails; pids.current never exceeds pids.max
  hog      allocates until the OOM killer ends it (SIGKILL); the supervisor restarts it
Then a reconcile keeping only `limited` removes the other two and their cgroup directories,
and adds
  spinner  a busy loop with cpu_max at 10 % of a CPU: cpu.stat shows it held near its quota
           and throttled (on an idle CPU it would take all of it)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from oxwrtd.core.supervise import (
    BACKOFF_INITIAL_S,
    ServiceExited,
    ServiceLimitsUnsupported,
    ServiceStarted,
)
from oxwrtd.shell.supervisor import Supervisor
from schema.config import Service

T = TypeVar("T")
PYTHON = "/usr/bin/python3"
RESULT_PREFIX = "RESULT "
WAIT_S = 40.0  # per condition; TCG runs a Python start-up in about a second

LIMITED = {"memory_max": 64 << 20, "cpu_max": "25000 100000", "pids_max": 16}
FORKER_PIDS_MAX = 8
FORK_ATTEMPTS = 40
HOG_MEMORY_MAX = 48 << 20  # page-aligned: memory.max reads back in whole pages
SPINNER_CPU_MAX = "10000 100000"  # 10 ms per 100 ms period
SPIN_MEASURE_S = 2.0

# Fork children that sleep until forks fail; report what happened, then stay up.
FORKER = f"""
import errno, json, os, time
forked, failures = 0, {{}}
for _ in range({FORK_ATTEMPTS}):
    try:
        pid = os.fork()
    except OSError as exc:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        failures[name] = failures.get(name, 0) + 1
        time.sleep(0.01)
        continue
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    forked += 1
print(json.dumps({{"forked": forked, "failures": failures}}), flush=True)
time.sleep(3600)
"""

# Touch every byte of 1 MiB blocks (b"\\x01" * n writes them) until the OOM killer steps in.
HOG = """
blocks = []
while True:
    blocks.append(b"\\x01" * (1 << 20))
    if len(blocks) % 8 == 0:
        print(f"allocated {len(blocks)} MiB", flush=True)
"""


def services() -> list[Service]:
    def svc(name: str, argv: list[str], **limits: Any) -> Service:
        return Service(name=name, rootfs="/", entrypoint=argv, net_mode="host", **limits)

    return [
        svc("limited", ["/bin/sleep", "3600"], **LIMITED),
        svc("forker", [PYTHON, "-I", "-c", FORKER], pids_max=FORKER_PIDS_MAX),
        svc("hog", [PYTHON, "-I", "-c", HOG], memory_max=HOG_MEMORY_MAX),
    ]


def spinner() -> Service:
    return Service(name="spinner", rootfs="/", entrypoint=[PYTHON, "-I", "-c", "while True: pass"],
                   net_mode="host", cpu_max=SPINNER_CPU_MAX)  # fmt: skip


async def until(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := check()) is None or value is False:
        if loop.time() > deadline:
            raise TimeoutError(f"{what}: not reached in {timeout:.0f} s")
        await asyncio.sleep(0.02)
    return value


def read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def flat_keyed(path: Path) -> dict[str, int]:
    """A cgroup `KEY VALUE` file (memory.events, pids.events) as a dict."""
    text = read(path) or ""
    return {k: int(v) for k, v in (line.split() for line in text.splitlines())}


def log_lines(sup: Supervisor, name: str) -> list[str]:
    return [line.text for line in sup.logs.ring(name).lines()]


def forker_report(sup: Supervisor) -> dict[str, Any] | None:
    for text in log_lines(sup, "forker"):
        if text.startswith("{"):
            return dict(json.loads(text))
    return None


async def scenarios(sup: Supervisor, base: Path, result: dict[str, Any]) -> None:
    sup.reconcile(services())

    # -- limits in force
    limited_pid = await until(lambda: sup.pid_of("limited"), "limited running")
    leaf = base / "limited"
    result["limited"] = {
        "configured": LIMITED,
        "memory.max": read(leaf / "memory.max"),
        "cpu.max": read(leaf / "cpu.max"),
        "pids.max": read(leaf / "pids.max"),
        "in_cgroup": read(leaf / "cgroup.procs") == str(limited_pid),
    }

    # -- fork bomb: sample pids.current while it forks, until it reports
    forker = base / "forker"
    samples: list[int] = []

    def sample_forker() -> dict[str, Any] | None:
        current = read(forker / "pids.current")
        if current is not None:
            samples.append(int(current))
        return forker_report(sup)

    report = await until(sample_forker, "forker report")
    samples.append(int(read(forker / "pids.current") or -1))
    result["forker"] = {
        "pids_max": FORKER_PIDS_MAX,
        "pids.max": read(forker / "pids.max"),
        "report": report,
        "max_pids_current": max(samples),
        "samples": len(samples),
        "pids.peak": read(forker / "pids.peak"),  # None on kernels without it (before 6.1)
        "pids.events": flat_keyed(forker / "pids.events"),
    }

    # -- memory hog: OOM-killed, seen as signal 9, restarted after the backoff
    def hog_events() -> tuple[list[ServiceStarted], list[ServiceExited]] | None:
        started = [e for e in sup.events if isinstance(e, ServiceStarted) and e.name == "hog"]
        exited = [e for e in sup.events if isinstance(e, ServiceExited) and e.name == "hog"]
        return (started, exited) if exited and len(started) >= 2 else None

    started, exited = await until(hog_events, "hog killed and restarted")
    hog = base / "hog"
    result["hog"] = {
        "memory_max": HOG_MEMORY_MAX,
        "memory.max": read(hog / "memory.max"),
        "memory.events": flat_keyed(hog / "memory.events"),
        "memory.peak": read(hog / "memory.peak"),  # None on kernels without it (before 5.19)
        "first_exit": {"code": exited[0].code, "signal": exited[0].signal},
        "first_exit_pid_was_first_start": exited[0].pid == started[0].pid,
        "restart_delay_s": started[1].at - exited[0].at,
        "backoff_initial_s": BACKOFF_INITIAL_S,
        "last_log": [t for t in log_lines(sup, "hog") if t.startswith("allocated")][-1:],
    }

    # -- nothing unenforced, for any service
    result["unenforced"] = {line.name: line.unenforced for line in sup.status()}
    result["limits_unsupported_events"] = [
        e.name for e in sup.events if isinstance(e, ServiceLimitsUnsupported)
    ]

    # -- removal: reconcile without forker and hog (and with the spinner, measured below)
    keep = [s for s in services() if s.name == "limited"]
    sup.reconcile([*keep, spinner()])
    await until(lambda: sorted(sup.core.names()) == ["limited", "spinner"], "forker, hog stopped")
    gone = {name: not (base / name).exists() for name in ("forker", "hog")}
    with contextlib.suppress(TimeoutError):  # the rmdir retries while killed children are reaped
        await until(lambda: all(not (base / n).exists() for n in gone) or None, "cgroups gone", 5)
    result["removed"] = {
        "cgroup_gone": {name: not (base / name).exists() for name in gone},
        "gone_when_stopped": gone,
        "limited_kept_pid": sup.pid_of("limited") == limited_pid,
        "leaves_left": sorted(p.name for p in base.iterdir() if p.is_dir()),
    }

    # -- cpu.max: the spinner's CPU time over a measured stretch, against the wall clock
    await until(lambda: sup.pid_of("spinner"), "spinner running")
    await asyncio.sleep(0.5)  # past the interpreter's start-up
    loop = asyncio.get_running_loop()
    before, t0 = flat_keyed(base / "spinner" / "cpu.stat"), loop.time()
    await asyncio.sleep(SPIN_MEASURE_S)
    after, t1 = flat_keyed(base / "spinner" / "cpu.stat"), loop.time()
    result["spinner"] = {
        "cpu.max": read(base / "spinner" / "cpu.max"),
        "share": (after["usage_usec"] - before["usage_usec"]) / ((t1 - t0) * 1e6),
        "periods": after["nr_periods"] - before["nr_periods"],
        "throttled": after["nr_throttled"] - before["nr_throttled"],
    }


async def main() -> dict[str, Any]:
    tag = secrets.token_hex(3)
    base = Path("/sys/fs/cgroup") / f"oxvmt-sup-{tag}"
    state_dir = Path("/run") / f"oxvmt-sup-{tag}"
    result: dict[str, Any] = {"error": None, "kernel": os.uname().release}
    sup = Supervisor(state_dir=state_dir, cgroup_base=base, grace_s=1.0)
    await sup.start()
    try:
        await scenarios(sup, base, result)
    except Exception:  # reported in the JSON, asserted on by the host
        result["error"] = traceback.format_exc()
    finally:
        await sup.close(timeout=5.0)
        started = {e.pid for e in sup.events if isinstance(e, ServiceStarted)}
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        result["events"] = [f"{type(e).__name__} {e.name}" for e in sup.events]
        for leaf in sorted(base.glob("*/")):
            with contextlib.suppress(OSError):
                (leaf / "cgroup.kill").write_text("1")
        await asyncio.sleep(0.2)
        sup.reaper.sweep()
        for leaf in sorted(base.glob("*/")):
            with contextlib.suppress(OSError):
                leaf.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()
        result["base_removed"] = not base.exists()
        shutil.rmtree(state_dir, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(RESULT_PREFIX + json.dumps(asyncio.run(main())), flush=True)
    sys.exit(0)
