"""One durable file replacement for everything that writes the router's files.

Stdlib only and cheap to import (PID 1 uses it at boot): temp file in the same directory with
its final mode from the start (a secret is never readable by others, not even for a moment),
fsync, rename over the old file, fsync the directory so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FsPath


def write_atomic(path: FsPath, text: str | bytes, mode: int) -> None:
    """Replace `path` with `text` (UTF-8 when str): temp file in the same directory with its
    final mode, fsync, rename over, fsync the directory so the rename itself is durable."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    data = text.encode() if isinstance(text, str) else text
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        FsPath(tmp).replace(path)
    except BaseException:
        FsPath(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = ["write_atomic"]
