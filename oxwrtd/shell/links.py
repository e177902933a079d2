"""Link states as the kernel reports them in sysfs (the daemon's network namespace)."""

from __future__ import annotations

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


__all__ = ["operstates"]
