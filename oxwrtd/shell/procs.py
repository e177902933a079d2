"""Processes that are not our children: their start time, and ending them by pidfd.

A pidfd pins one process: once opened, signals through it cannot reach a later process that
reuses the PID. So the start time is read after the pidfd is open, and only a process that still
matches is killed through it. Polling a pidfd says when the process is gone (Linux 5.3+), even
for a process someone else will reap.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

PROC: Final = Path("/proc")


def boot_time(proc: Path = PROC) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError(f"{proc}/stat has no btime line")


def started_at(pid: int, proc: Path = PROC) -> float | None:
    """Wall-clock start of process `pid`, or None if there is no such process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        booted = boot_time(proc)
    except OSError:
        return None
    # field 22, counted after the command name, which may hold spaces and parentheses
    fields = stat[stat.rindex(")") + 2 :].split()
    return booted + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def kill_matching(
    pids: Iterable[int], still_ours: Callable[[int], bool], timeout_s: float = 5.0
) -> list[int]:
    """SIGKILL each PID that `still_ours` confirms once a pidfd holds it; wait until they are
    gone. Returns the PIDs killed (a PID that vanished or no longer matches is skipped)."""
    held: dict[int, int] = {}
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        if not still_ours(pid):
            os.close(fd)
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except ProcessLookupError:
            os.close(fd)
            continue
        held[fd] = pid
    poller = select.poll()
    for fd in held:
        poller.register(fd, select.POLLIN)
    pending, deadline = set(held), time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0, int((deadline - time.monotonic()) * 1000))):
            pending.discard(fd)
            poller.unregister(fd)
    for fd in held:
        with contextlib.suppress(OSError):
            os.close(fd)
    return sorted(held.values())


__all__ = ["boot_time", "kill_matching", "started_at"]
