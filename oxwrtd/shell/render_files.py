"""Rendered daemon configs on disk: one file written atomically with its mode, or a whole directory
of them (hostapd's one file per radio) kept to exactly the files rendered.

A reader never sees half a file (temp file in the same directory, fsync, rename), and a file that
holds secrets is never readable by others, not even for a moment: the temp file is created 0600
and gets its final mode before any byte is written. Both calls say what changed, so the caller
restarts a daemon only when its config did.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

from oxwrtd.shell.files import write_if_changed as write_rendered

TEMP_SUFFIX = ".tmp"  # write_atomic's temp files: .<name>.<random>.tmp


class DirSync(msgspec.Struct, frozen=True, kw_only=True):
    changed: tuple[str, ...]  # file names written because their text changed (or was new)
    removed: tuple[str, ...]  # stale file names deleted


def sync_dir(directory: Path, files: Mapping[str, str], mode: int, suffix: str) -> DirSync:
    """Make `directory` (owned by the caller) hold exactly `files` ({name: text}) among its
    `*suffix` files: write each with `mode`, delete every other `*suffix` file and any temp
    file a crash left behind. Files with other suffixes are left alone."""
    for name in files:
        if not name.endswith(suffix) or "/" in name or name.startswith(".") or "\0" in name:
            raise ValueError(f"{name!r} is not a plain *{suffix} file name")
    directory.mkdir(parents=True, exist_ok=True)
    changed = tuple(
        name for name in sorted(files) if write_rendered(directory / name, files[name], mode)
    )
    removed: list[str] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        name = entry.name
        stale = name.endswith(suffix) and name not in files
        leftover = name.startswith(".") and name.endswith(TEMP_SUFFIX) and f"{suffix}." in name
        if (stale or leftover) and (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
            (directory / name).unlink()
            removed.append(name)
    return DirSync(changed=changed, removed=tuple(removed))


__all__ = ["DirSync", "sync_dir", "write_rendered"]
