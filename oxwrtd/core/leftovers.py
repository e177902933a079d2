"""Services an earlier daemon left running: which journaled PIDs are still those processes.

A daemon that is not PID 1 (the lab, a container) can die without stopping its services: they
run in their own sessions and outlive it. The journal still says "running, pid N" for each. A new
daemon must end them before it starts its own, or a second dnsmasq finds port 53 taken and the
old one serves an old config with nobody supervising it.

A PID alone is not an identity (PIDs are reused), so a journaled PID counts only while the live
process's start time fits the journaled start: the process is forked, then set up, then its
ServiceStarted is journaled, so it started at most `before_s` before the record and no later
than clock granularity after it. A wall clock stepped in between (NTP at boot) makes no match:
the process is then left alone, which is the safe way to be wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from oxwrtd.core.state import ServiceRow

STARTED_BEFORE_RECORD_S: Final = 30.0  # sandbox set-up plus journal queue, on a slow machine
STARTED_AFTER_RECORD_S: Final = 2.0  # /proc's boot time is whole seconds


def left_running(
    services: Mapping[str, ServiceRow],
    started_at: Callable[[int], float | None],
    *,
    before_s: float = STARTED_BEFORE_RECORD_S,
    after_s: float = STARTED_AFTER_RECORD_S,
) -> list[tuple[str, int]]:
    """(name, pid) of journaled running services whose PID is still that same process;
    `started_at(pid)` is the live process's start on the wall clock, None if there is none."""
    out: list[tuple[str, int]] = []
    for name, row in sorted(services.items()):
        if row.state != "running" or row.pid is None or row.pid <= 1:
            continue
        start = started_at(row.pid)
        if start is not None and row.since - before_s <= start <= row.since + after_s:
            out.append((name, row.pid))
    return out


__all__ = ["STARTED_AFTER_RECORD_S", "STARTED_BEFORE_RECORD_S", "left_running"]
