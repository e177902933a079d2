"""Link states as the kernel reports them in sysfs (the daemon's network namespace)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

SYS_NET: Final = Path("/sys/class/net")


def operstates(names: Iterable[str], root: Path = SYS_NET) -> dict[str, str]:
    """name -> operstate ("up", "down", "dormant", ...) for each link that exists."""
    out: dict[str, str] = {}
    for name in names:
        if "/" in name or name in {"", ".", ".."}:
            continue  # not an interface name; never a path outside `root`
        try:
            out[name] = (root / name / "operstate").read_text().strip()
        except OSError:
            continue
    return out


def kernel_log(path: Path = Path("/dev/kmsg")) -> list[bytes]:
    """Every record the kernel's ring buffer holds now (one read() is one record), without
    waiting for new ones; an unreadable log raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    records: list[bytes] = []
    try:
        while True:
            try:
                records.append(os.read(fd, 8192))
            except BlockingIOError:
                return records
            except BrokenPipeError:
                continue  # the ring overwrote records we had not read yet: carry on from there
    finally:
        os.close(fd)


__all__ = ["kernel_log", "operstates"]
