"""Files and processes the shell adapters share: one atomic write, one way to stop a child.

`write_atomic` (temp file, fsync, rename, fsync of the directory) lives in schema.tomledit, which
the config writers use; the adapters reach it through here so there is one implementation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from schema.tomledit import write_atomic


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Replace `path` with `text` atomically; False (and no write) when it already holds it."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, mode)
    return True


def stop_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM to the child's process group, SIGKILL after `grace_s`; waits for it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


__all__ = ["stop_group", "write_atomic", "write_if_changed"]
