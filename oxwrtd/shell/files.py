"""Files and processes the shell adapters share: one atomic write, one way to stop a child.

`write_atomic` (temp file, fsync, rename, fsync of the directory) lives in schema.atomic, which
the config writers use too; the adapters reach it through here so there is one implementation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import subprocess
from pathlib import Path

from schema.atomic import write_atomic


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Make `path` hold `text` with `mode`; True when the text changed (and was written). A file
    already holding the text keeps it, but still gets `mode` (a 0644 copy of a secret is fixed,
    not left)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        fd = -1
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = -1  # a symlink: replaced by the file itself, never written through
    if fd >= 0:
        try:
            same = _read_all(fd) == text.encode()
            if same:
                if stat.S_IMODE(os.fstat(fd).st_mode) != mode:
                    os.fchmod(fd, mode)
                return False
        finally:
            os.close(fd)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, mode)
    return True


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


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
