"""Validation of a restore tarball, before anything is applied.

A backup is a gzip tar whose members all live under `oxwrt/`: the config pair (`oxwrt.toml`
required, `oxwrt.secrets.toml` optional), the identity keys (`key.ed25519`, `authorized_keys`,
WireGuard `*.key`) and optionally the journal export (`journal.jsonl`). Invariants:
- nothing is written anywhere: this reads bytes and returns the validated contents or raises
  `RestoreError` whose message names the offending member;
- only regular files and directories pass; `..`, absolute paths, links, devices, FIFOs, unknown
  names and oversized members are refused; decompression is bounded (no gzip bomb);
- the config pair must load without a single issue (schema.load.load_text).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Final

from oxwrtd.control.acl import parse_key
from schema.errors import ConfigIssue, format_path
from schema.load import PUBLIC_NAME, SECRETS_NAME, load_text

PREFIX: Final = "oxwrt/"
SERVER_KEY: Final = "key.ed25519"
AUTHORIZED_KEYS: Final = "authorized_keys"
JOURNAL_EXPORT: Final = "journal.jsonl"
SEED_LEN: Final = 32
WG_KEY_LEN: Final = 32
# The tarball travels base64 in one 1 MiB frame; these bound what it may expand into.
MAX_MEMBER_BYTES: Final = 4 << 20
MAX_TOTAL_BYTES: Final = 16 << 20
MAX_MEMBERS: Final = 256
MAX_ISSUES_SHOWN: Final = 20
_WG_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}\.key")


class RestoreError(Exception):
    """The tarball is refused; `details` lists further problems (config issues)."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


@dataclass(frozen=True)
class RestoreContents:
    public_toml: str
    secrets_toml: str | None = None
    server_seed: bytes | None = None
    authorized_keys: str | None = None
    wireguard_keys: dict[str, bytes] = field(default_factory=dict)  # file name -> contents
    journal_export: str | None = None
    members: tuple[str, ...] = ()  # every regular file accepted, in tarball order


def validate(tarball: bytes) -> RestoreContents:
    """The contents of a valid backup; RestoreError naming the first bad member otherwise."""
    files: dict[str, bytes] = {}
    for info, data in _members(_gunzip(tarball)):
        files[_relative(info.name)] = data
    if PUBLIC_NAME not in files:
        raise RestoreError(
            f"no {PREFIX}{PUBLIC_NAME} in the tarball: a backup always holds the config; "
            f"is this a file made by `oxctl backup`? It has: {_listing(files)}"
        )
    public = _text(files, PUBLIC_NAME)
    secrets = _text(files, SECRETS_NAME) if SECRETS_NAME in files else None
    loaded = load_text(
        public, secrets, public_file=PREFIX + PUBLIC_NAME, secrets_file=PREFIX + SECRETS_NAME
    )
    if not loaded.ok:
        lines = [_issue_line(i) for i in loaded.issues]
        shown = lines[:MAX_ISSUES_SHOWN]
        if len(lines) > len(shown):
            shown.append(f"... and {len(lines) - len(shown)} more")
        raise RestoreError(
            f"{PREFIX}{PUBLIC_NAME}: the config in the tarball is invalid "
            f"({len(lines)} issue{'s' * (len(lines) != 1)}); nothing was restored",
            shown,
        )
    seed = files.get(SERVER_KEY)
    if seed is not None and len(seed) != SEED_LEN:
        raise RestoreError(
            f"{PREFIX}{SERVER_KEY}: a server key is a raw {SEED_LEN}-byte seed, this one has "
            f"{len(seed)} bytes"
        )
    journal = _text(files, JOURNAL_EXPORT) if JOURNAL_EXPORT in files else None
    if journal is not None:
        _check_journal(journal)
    authorized = _text(files, AUTHORIZED_KEYS) if AUTHORIZED_KEYS in files else None
    if authorized is not None:
        _check_authorized_keys(authorized)
    wireguard = {n: d for n, d in files.items() if _WG_KEY.fullmatch(n)}
    for name, key in wireguard.items():
        _check_wireguard_key(name, key)
    return RestoreContents(
        public_toml=public,
        secrets_toml=secrets,
        server_seed=seed,
        authorized_keys=authorized,
        wireguard_keys=wireguard,
        journal_export=journal,
        members=tuple(PREFIX + n for n in files),
    )


def _gunzip(tarball: bytes) -> bytes:
    if tarball[:2] != b"\x1f\x8b":
        raise RestoreError("not a gzip file: `oxctl backup` writes a .tar.gz")
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = inflate.decompress(tarball, MAX_TOTAL_BYTES)
    except zlib.error as e:
        raise RestoreError(f"the gzip data is corrupt: {e}") from None
    if inflate.unconsumed_tail:
        raise RestoreError(
            f"the tarball expands to more than {MAX_TOTAL_BYTES >> 20} MiB; a backup is far "
            "smaller, refusing it"
        )
    if not inflate.eof:
        raise RestoreError("the gzip data is truncated")
    if inflate.unused_data.strip(b"\0"):
        raise RestoreError("unexpected data after the end of the gzip stream")
    return raw


def _members(raw: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    out: list[tuple[tarfile.TarInfo, bytes]] = []
    seen: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for count, info in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise RestoreError(f"more than {MAX_MEMBERS} members; a backup has a few")
                _check_member(info)
                name = info.name.rstrip("/")
                if name in seen:
                    raise RestoreError(f"{info.name}: appears twice in the tarball")
                seen.add(name)
                if info.isdir():
                    continue
                stream = tar.extractfile(info)
                if stream is None:  # not reachable for a regular file, but never trust it
                    raise RestoreError(f"{info.name}: cannot be read")
                out.append((info, stream.read()))
    except (tarfile.TarError, EOFError) as e:
        raise RestoreError(f"not a valid tar archive inside the gzip: {e}") from None
    return out


def _check_member(info: tarfile.TarInfo) -> None:
    name = info.name
    kind = _refused_kind(info)
    if kind:
        raise RestoreError(f"{name}: is a {kind}; a backup holds only regular files")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise RestoreError(f"{name}: absolute path refused; members must be under {PREFIX}")
    parts = name.rstrip("/").split("/")
    if ".." in parts or "\\" in name or "\0" in name:
        raise RestoreError(f"{name}: path escapes the backup directory (`..`); refused")
    if info.isdir():
        if parts != ["oxwrt"] and not name.startswith(PREFIX):
            raise RestoreError(f"{name}: outside {PREFIX}; every member must be under it")
        return
    if info.size > MAX_MEMBER_BYTES:
        raise RestoreError(
            f"{name}: {info.size} bytes, over the {MAX_MEMBER_BYTES >> 20} MiB a backup member "
            "may have"
        )
    _relative(name)


def _refused_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return f"symbolic link (to {info.linkname!r})"
    if info.islnk():
        return f"hard link (to {info.linkname!r})"
    if info.ischr() or info.isblk():
        return "device file"
    if info.isfifo():
        return "FIFO"
    if not (info.isreg() or info.isdir()):
        return "special file"
    return ""


def _relative(name: str) -> str:
    """`oxwrt/<name>` for a file a backup may hold; RestoreError otherwise."""
    if not name.startswith(PREFIX):
        raise RestoreError(f"{name}: outside {PREFIX}; every member must be under it")
    rel = name[len(PREFIX) :]
    known = {PUBLIC_NAME, SECRETS_NAME, SERVER_KEY, AUTHORIZED_KEYS, JOURNAL_EXPORT}
    if rel in known or _WG_KEY.fullmatch(rel):
        return rel
    if rel.startswith("vpn/"):
        raise RestoreError(
            f"{name}: VPN client keys are never part of a backup; upload them with "
            "`oxctl HOST vpn-key-upload` instead"
        )
    raise RestoreError(
        f"{name}: not a file a backup holds (expected {', '.join(sorted(known))} or WireGuard "
        "*.key under oxwrt/)"
    )


def _text(files: dict[str, bytes], rel: str) -> str:
    try:
        return files[rel].decode("utf-8")
    except UnicodeDecodeError as e:
        raise RestoreError(
            f"{PREFIX}{rel}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from None


def _check_authorized_keys(text: str) -> None:
    """Every key line must be usable: a bad line would silently lock its client out."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        key = line.split("#", 1)[0].strip()
        if not key:
            continue
        try:
            parse_key(key)
        except ValueError as e:
            raise RestoreError(f"{PREFIX}{AUTHORIZED_KEYS}:{lineno}: {e}") from None


def _check_wireguard_key(name: str, data: bytes) -> None:
    """A WireGuard private key as `wg genkey` writes it: base64 of 32 bytes."""
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != WG_KEY_LEN:
        raise RestoreError(
            f"{PREFIX}{name}: not a WireGuard key (base64 of {WG_KEY_LEN} bytes, as `wg genkey` "
            "writes)"
        )


def _check_journal(text: str) -> None:
    last = -1
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{PREFIX}{JOURNAL_EXPORT}:{lineno}"
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise RestoreError(f"{where}: not JSON ({e})") from None
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if (
            not isinstance(seq, int)
            or isinstance(seq, bool)
            or not isinstance(entry.get("tag"), str)
        ):
            raise RestoreError(f'{where}: a journal entry needs an integer "seq" and a "tag"')
        if seq <= last:
            raise RestoreError(f"{where}: seq {seq} after {last}; the export is out of order")
        last = seq


def _issue_line(issue: ConfigIssue) -> str:
    where = issue.where or format_path(issue.path)
    file = issue.file or PREFIX + PUBLIC_NAME
    place = f"{file}:{issue.line}: " if issue.line else f"{file}: "
    return f"{place}{where}: {issue.message}"


def _listing(files: dict[str, bytes]) -> str:
    return ", ".join(PREFIX + n for n in files) or "no files"


__all__ = ["RestoreContents", "RestoreError", "validate"]
