"""Who may connect: `[[control.clients]]` ∪ the `authorized_keys` file, as Ed25519 public keys.

Operators paste Ed25519 public keys (hex, as `oxctl keygen` prints); the pre-handshake trailer
carries the X25519 form, so each key is converted once here and looked up by that form.
An empty ACL never means "anyone": `listen_plan` then keeps only loopback addresses and says why.
The ACL is a value; the server swaps it on reload, so changes apply without a restart.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from schema.config import Control
from schema.wire import x25519_public_from_ed25519


@dataclass(frozen=True)
class AllowedKey:
    ed25519: bytes
    name: str  # the [[control.clients]] name, the key's comment, or "authorized_keys:<line>"


@dataclass(frozen=True)
class Acl:
    by_x25519: dict[bytes, AllowedKey] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.by_x25519)

    def lookup(self, x25519_key: bytes) -> AllowedKey | None:
        return self.by_x25519.get(x25519_key)

    def allows_ed25519(self, ed25519_key: bytes) -> bool:
        return any(k.ed25519 == ed25519_key for k in self.by_x25519.values())


def parse_key(text: str) -> bytes:
    """64 hex chars of an Ed25519 public key; ValueError says what is wrong."""
    text = text.strip()
    if len(text) != 64:
        raise ValueError(f"expected 64 hex characters of an ed25519 public key, got {len(text)}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError("not hexadecimal") from None
    x25519_public_from_ed25519(raw)  # refuses bytes that are not a curve point
    return raw


def build(
    clients: Iterable[tuple[str, str]], file_lines: Iterable[str] | None, file_name: str = ""
) -> tuple[Acl, list[str]]:
    """(ACL, problems). Bad entries are left out and each named in `problems` with its place."""
    keys: dict[bytes, AllowedKey] = {}
    problems: list[str] = []

    def add(raw: bytes, name: str) -> None:
        x = x25519_public_from_ed25519(raw)
        keys.setdefault(x, AllowedKey(raw, name))

    for i, (name, key) in enumerate(clients):
        try:
            add(parse_key(key), name)
        except ValueError as e:
            problems.append(f'control.clients[{i}] (name "{name}").key: {e}')
    for lineno, line in enumerate(file_lines or (), start=1):
        text, _, comment = (part.strip() for part in line.partition("#"))
        if not text:
            continue
        # a comment after the key names it in the audit trail (as in ssh's authorized_keys);
        # without one, the file and line say which key it was
        name = " ".join(comment.split())[:64] or f"{file_name}:{lineno}"
        try:
            add(parse_key(text), name)
        except ValueError as e:
            problems.append(f"{file_name}:{lineno}: {e}")
    return Acl(keys), problems


def load(control: Control) -> tuple[Acl, list[str]]:
    """Read the ACL for a `[control]` section. A missing authorized_keys file is an empty one."""
    path = Path(control.authorized_keys)
    problems: list[str] = []
    try:
        lines: list[str] | None = path.read_text().splitlines()
    except FileNotFoundError:
        lines = None
    except (OSError, UnicodeDecodeError) as e:
        lines = None
        problems.append(f"{path}: cannot read the authorized keys file: {e}")
    acl, more = build(((c.name, c.key) for c in control.clients), lines, str(path))
    return acl, problems + more


def split_host_port(listen: str) -> tuple[str, int]:
    """`IP:port` or `[IPv6]:port` (the reference's literal socket addresses)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{listen!r}: expected IP:PORT (IPv6 in brackets)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    ipaddress.ip_address(host)
    return host, int(port)


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def listen_plan(listen: list[str], acl: Acl) -> tuple[list[tuple[str, int]], str | None]:
    """Addresses to bind and, when the ACL forces loopback only, the reason to log."""
    addrs = [split_host_port(x) for x in listen]
    if len(acl):
        return addrs, None
    loop = [(h, p) for h, p in addrs if is_loopback(h)]
    if not loop:
        port = addrs[0][1] if addrs else 51820
        loop = [("127.0.0.1", port)]
    return loop, (
        "no authorised client keys ([[control.clients]] and the authorized_keys file are empty): "
        "listening on loopback only; add a key from `oxctl keygen` and reload to open "
        + ", ".join(listen)
    )


__all__ = ["Acl", "AllowedKey", "build", "listen_plan", "load", "parse_key", "split_host_port"]
