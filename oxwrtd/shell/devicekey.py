"""The device key file: 32 random bytes, mode 0600, owned by the daemon.

It seals secret leaves before they enter the journal (schema/seal.py). A key file readable by
group or others is refused rather than silently used, because a journal backup plus that file
reveals every secret.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from schema.atomic import write_atomic
from schema.seal import DEVICE_KEY_BYTES


class DeviceKeyError(OSError):
    """The key file is missing, the wrong size or too widely readable."""


def load(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise DeviceKeyError(f"{path}: cannot open device key ({exc.strerror})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_IMODE(mode) & 0o077:
            raise DeviceKeyError(
                f"{path}: device key has mode {stat.S_IMODE(mode):04o}; it must be 0600"
            )
        key = os.read(fd, DEVICE_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) != DEVICE_KEY_BYTES:
        raise DeviceKeyError(f"{path}: device key must be {DEVICE_KEY_BYTES} bytes, got {len(key)}")
    return key


def load_or_create(path: Path) -> bytes:
    """Load the key, or create a fresh one atomically (0600 from the first byte, fsynced)."""
    if path.exists():
        return load(path)
    key = os.urandom(DEVICE_KEY_BYTES)
    write_atomic(path, key, 0o600)
    return key


__all__ = ["DeviceKeyError", "load", "load_or_create"]
