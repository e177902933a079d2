"""Where oxctl's keys come from.

- client key (signs requests, authenticates the trailer): `--key FILE` or `SQUIC_CLIENT_KEY` (hex
  seed); a key file holds a 64-hex-char seed (as `keygen` writes it) or a raw 32-byte seed, and is
  refused if group/others can read it, like ssh does;
- server pin: `--server-key HEX` or `SQUIC_SERVER_KEY` (the Ed25519 public key the router prints).
There is no ephemeral fallback: the router has no open mode, so a random key would only time out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from nacl.signing import SigningKey


class KeyFileError(Exception):
    """A key is missing or unusable; the message says which and how to fix it."""


def _hex32(text: str, what: str) -> bytes:
    text = text.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"{what}: not hexadecimal") from None
    if len(raw) != 32:
        raise KeyFileError(f"{what}: expected 64 hex characters, got {len(text)}")
    return raw


def read_key_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot open the client key: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read your key; "
                f"run `chmod 600 {path}`"
            )
        data = os.read(fd, 200)
    finally:
        os.close(fd)
    if len(data) == 32:
        return data
    try:
        return _hex32(data.decode("ascii"), str(path))
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: neither a raw 32-byte seed nor 64 hex characters") from None


def client_seed(key_file: str | None, environ: Mapping[str, str] = os.environ) -> bytes:
    if key_file is not None:
        return read_key_file(Path(key_file))
    env = environ.get("SQUIC_CLIENT_KEY")
    if env:
        return _hex32(env, "SQUIC_CLIENT_KEY")
    raise KeyFileError(
        "no client key: pass --key FILE or set SQUIC_CLIENT_KEY (64 hex chars); "
        "create one with `oxctl keygen FILE` and add its public key to [[control.clients]]"
    )


def server_key(arg: str | None, environ: Mapping[str, str] = os.environ) -> bytes:
    if arg is not None:
        return _hex32(arg, "--server-key")
    env = environ.get("SQUIC_SERVER_KEY")
    if env:
        return _hex32(env, "SQUIC_SERVER_KEY")
    raise KeyFileError(
        "no server key to pin: pass --server-key HEX or set SQUIC_SERVER_KEY "
        "(the router prints it: `oxwrtd --print-server-key`, and at boot)"
    )


def public_key(seed: bytes) -> bytes:
    return bytes(SigningKey(seed).verify_key)


def keygen(path: Path) -> str:
    """Write a new client seed (hex, mode 0600, never over an existing file); return the public
    key in hex, ready for `[[control.clients]] key = "..."`."""
    seed = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from None
    except OSError as e:
        raise KeyFileError(f"{path}: cannot create: {e.strerror}") from None
    try:
        os.write(fd, seed.hex().encode() + b"\n")
    finally:
        os.close(fd)
    return public_key(seed).hex()


__all__ = ["KeyFileError", "client_seed", "keygen", "public_key", "read_key_file", "server_key"]
