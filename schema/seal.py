"""Sealing secret leaves with the device key before they reach the journal.

Pure: the 32-byte device key comes in as bytes (oxwrtd/shell/devicekey.py reads the 0600 file).
A leaf is sealed with a pynacl SecretBox; its `digest` is a keyed BLAKE2b of the clear value, so
audit and export can say a secret changed without revealing it. Leaf paths are dotted TOML paths
with indices (`wifi[0].passphrase`), produced by `flatten` and read back by `unflatten`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from schema.events import SealedLeaf

DEVICE_KEY_BYTES: Final = SecretBox.KEY_SIZE  # 32
_DIGEST_PERSON: Final = b"oxwrt-leaf"
_SEGMENT: Final = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


class SealError(ValueError):
    """A key of the wrong size, a leaf sealed with another key, or a path that cannot be a leaf."""


def _check_key(key: bytes) -> None:
    if len(key) != DEVICE_KEY_BYTES:
        raise SealError(f"device key must be {DEVICE_KEY_BYTES} bytes, got {len(key)}")


def digest(key: bytes, clear: str) -> bytes:
    """Keyed digest of a clear value; the digest key is derived so it differs from the box key."""
    _check_key(key)
    digest_key = hashlib.blake2b(b"digest-key", key=key, person=_DIGEST_PERSON).digest()
    return hashlib.blake2b(clear.encode(), key=digest_key, digest_size=16).digest()


def seal(key: bytes, clear: str, nonce: bytes | None = None) -> SealedLeaf:
    """Seal one value; `nonce` is for golden tests only (random by default)."""
    _check_key(key)
    box = SecretBox(key).encrypt(clear.encode(), nonce)
    return SealedLeaf(box=bytes(box), digest=digest(key, clear))


def unseal(key: bytes, leaf: SealedLeaf) -> str:
    _check_key(key)
    try:
        return SecretBox(key).decrypt(leaf.box).decode()
    except CryptoError as exc:
        raise SealError("sealed leaf does not open with this device key") from exc


def seal_leaves(
    key: bytes, leaves: Mapping[str, str], previous: Mapping[str, SealedLeaf] | None = None
) -> dict[str, SealedLeaf]:
    """Seal every leaf; an unchanged leaf keeps its previous box, so unchanged stays identical."""
    out: dict[str, SealedLeaf] = {}
    for path, clear in sorted(leaves.items()):
        old = (previous or {}).get(path)
        out[path] = (
            old if old is not None and old.digest == digest(key, clear) else seal(key, clear)
        )
    return out


def changed_leaves(before: Mapping[str, SealedLeaf], after: Mapping[str, SealedLeaf]) -> list[str]:
    """Paths added, removed or whose clear value changed, judged by digest alone."""
    paths = set(before) | set(after)
    return sorted(
        p for p in paths if p not in before or p not in after or before[p].digest != after[p].digest
    )


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Every string leaf of a parsed secrets document, keyed by its path."""
    out: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                if not isinstance(k, str) or not k or any(c in k for c in ".[]"):
                    raise SealError(f"{path or '(top level)'}: key {k!r} cannot name a secret leaf")
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
        elif isinstance(node, str):
            out[path] = node
        else:
            raise SealError(f"{path}: a secret leaf must be a string, got {type(node).__name__}")

    walk(doc, prefix)
    return out


def unflatten(leaves: Mapping[str, str]) -> dict[str, Any]:
    """The document `flatten` came from (arrays are rebuilt in index order)."""
    root: dict[str, Any] = {}
    for path, value in sorted(leaves.items()):
        steps: list[str | int] = []
        for part in path.split("."):
            m = _SEGMENT.fullmatch(part)
            if m is None:
                raise SealError(f"{path!r}: not a leaf path")
            steps.append(m.group(1))
            steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
        node: Any = root
        for here, nxt in zip(steps, [*steps[1:], None], strict=True):
            if nxt is None:
                _put(node, here, value, path)
            else:
                node = _child(node, here, [] if isinstance(nxt, int) else {}, path)
    return root


def _child(node: Any, step: str | int, empty: Any, path: str) -> Any:
    if isinstance(step, int):
        if not isinstance(node, list):
            raise SealError(f"{path!r}: index into a table")
        while len(node) <= step:
            node.append(None)
        if node[step] is None:
            node[step] = empty
        return node[step]
    if not isinstance(node, dict):
        raise SealError(f"{path!r}: key into an array")
    return node.setdefault(step, empty)


def _put(node: Any, step: str | int, value: str, path: str) -> None:
    _child(node, step, value, path)


__all__ = [
    "DEVICE_KEY_BYTES",
    "SealError",
    "changed_leaves",
    "digest",
    "flatten",
    "seal",
    "seal_leaves",
    "unflatten",
    "unseal",
]
