"""The server's identity: a raw 32-byte Ed25519 seed in `<config-dir>/key.ed25519`.

Generated with mode 0600 on first start. A file of the wrong size or readable by group/others is
refused with an error saying what to do; it is never silently regenerated (the reference did, which
rotated the identity and locked every pinned client out). The TLS certificate is derived from the
seed each start: self-signed Ed25519, CN/SAN `squic`, so the pin is the Ed25519 public key.
"""

from __future__ import annotations

import datetime
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from nacl.signing import SigningKey

KEY_FILE: Final = "key.ed25519"
SEED_LEN: Final = 32
SERVER_NAME: Final = "squic"


class IdentityError(Exception):
    """The key file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class ServerIdentity:
    seed: bytes

    @property
    def public_key(self) -> bytes:
        return bytes(SigningKey(self.seed).verify_key)

    @property
    def public_hex(self) -> str:
        return self.public_key.hex()

    @property
    def x25519_secret(self) -> bytes:
        return bytes(SigningKey(self.seed).to_curve25519_private_key())

    def certificate(self) -> tuple[x509.Certificate, Ed25519PrivateKey]:
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
        # The router has no RTC: a validity window from the epoch to 9999 never trips on a wrong
        # clock, and validity is meaningless anyway since clients pin the key, not a CA.
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), False)
            .sign(key, None)
        )
        return cert, key


def key_path(config_dir: Path) -> Path:
    return config_dir / KEY_FILE


def load_or_create(config_dir: Path) -> tuple[ServerIdentity, bool]:
    """(identity, created). Creates the seed only when the file does not exist at all."""
    path = key_path(config_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return load(path), False
    seed = os.urandom(SEED_LEN)
    try:
        os.write(fd, seed)
        os.fsync(fd)
    finally:
        os.close(fd)
    return ServerIdentity(seed), True


def load(path: Path) -> ServerIdentity:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise IdentityError(f"{path}: no server key (start oxwrtd once to create it)") from None
    except OSError as e:
        raise IdentityError(f"{path}: cannot open the server key: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IdentityError(f"{path}: not a regular file")
        if st.st_mode & 0o077:
            raise IdentityError(
                f"{path}: mode {stat.S_IMODE(st.st_mode):04o} lets others read the server key; "
                f"run `chmod 600 {path}` (and consider the key exposed)"
            )
        data = os.read(fd, SEED_LEN + 1)
    finally:
        os.close(fd)
    if len(data) != SEED_LEN:
        raise IdentityError(
            f"{path}: {len(data) if len(data) <= SEED_LEN else 'more than 32'} bytes, expected a "
            f"raw {SEED_LEN}-byte ed25519 seed; refusing to replace it (that would change the "
            "router's identity). Restore the right file, or delete it to generate a new key."
        )
    return ServerIdentity(data)


__all__ = ["KEY_FILE", "IdentityError", "ServerIdentity", "key_path", "load", "load_or_create"]
