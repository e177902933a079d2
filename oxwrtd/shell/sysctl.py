"""Kernel parameters under /proc/sys, as seen from the current network and UTS namespaces.

Names use the slash form (`net/ipv4/ip_forward`); the hostname is `kernel/hostname`, so setting
it here is sethostname(2) for the namespace the process runs in. Writes are whole-value.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PROC_SYS = Path("/proc/sys")


class Sysctl:
    def __init__(self, root: Path = PROC_SYS) -> None:
        self.root = root

    def read(self, names: Iterable[str]) -> dict[str, str]:
        """Current values of the names that exist (a missing per-interface key is just absent)."""
        values = {}
        for name in names:
            try:
                values[name] = (self.root / name).read_text().strip()
            except FileNotFoundError:
                continue
        return values

    def write(self, name: str, value: str) -> None:
        """Raises OSError with the kernel's errno: ENOENT for an unknown key, EINVAL for a value."""
        if ".." in name.split("/"):
            raise ValueError(f"sysctl name {name!r} leaves {self.root}")
        with (self.root / name).open("w") as f:
            f.write(value)


__all__ = ["PROC_SYS", "Sysctl"]
