"""The nftables adapter: the only module importing `nftables` (libnftables, in-process).

One long-lived `Nftables` context per process (PERFORMANCE.md: the CLI pays 8-20 ms per call).
`apply` installs a compiled Ruleset in one atomic transaction, or not at all:
- if the kernel's `revision` chain already carries the ruleset's digest, nothing is written;
- on failure nft's message comes back with the offending line mapped to its config path, and the
  kernel keeps the previous ruleset whole (nft transactions are all-or-nothing);
- after a write, the digest is read back; `drifted` compares the kernel with what was installed.
libnftables converts `meta hour`/`meta time` literals using the process's local time zone; the
compiler emits UTC, so the adapter pins this process to UTC (`TZ=UTC`) when it is created.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import Protocol

import msgspec
import nftables

from oxwrtd.core.fw_script import REVISION_PREFIX, Ruleset

_ERROR_RE = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>[\d-]+): Error: (?P<msg>.*)$", re.M
)


class _Chain(msgspec.Struct):
    family: str
    table: str
    name: str


class _Item(msgspec.Struct):
    chain: _Chain | None = None


class _Listing(msgspec.Struct):
    nftables: list[_Item]


_LISTING = msgspec.json.Decoder(_Listing)


class NftApplyError(Exception):
    """nft refused the transaction; nothing was changed. `origin` is the config path, if known."""

    def __init__(self, message: str, *, line: int | None = None, origin: str | None = None) -> None:
        self.message, self.line, self.origin = message, line, origin
        super().__init__(f"{origin}: {message}" if origin else message)


class ApplyOutcome(msgspec.Struct, frozen=True):
    changed: bool  # False: the same ruleset was already installed, nothing was written
    digest: str


class NftBackend(Protocol):
    """What the daemon needs from nftables; `Nft` (kernel) and `FakeNft` both provide it."""

    def apply(self, ruleset: Ruleset, *, force: bool = False) -> ApplyOutcome: ...
    def installed_digest(self, table: str) -> str | None: ...
    def observe(self, table: str) -> str | None: ...
    def drifted(self, ruleset: Ruleset) -> bool: ...
    def list_ruleset(self) -> str: ...


# The kernel gives the initial network namespace a fixed inode (PROC_NET_INIT_INO in
# include/linux/proc_ns.h); /proc/1/ns/net may be unreadable in a sandbox, this never is.
PROC_NET_INIT_INO = 0xEFFFFFF9


def in_init_netns() -> bool:
    """Whether this thread is in the machine's own (initial) network namespace."""
    try:
        return Path("/proc/thread-self/ns/net").stat().st_ino == PROC_NET_INIT_INO
    except OSError:
        return True  # cannot tell: assume the worst


INIT_NETNS_REFUSAL = (
    "refusing to install router rules in this machine's own network namespace (PID 1's): a "
    "default-drop input chain there can cut the machine off. Run oxwrtd inside a network "
    "namespace or as PID 1, or pass --host-namespace when this machine really is the router"
)


class Nft:
    """libnftables in this process's network namespace."""

    def __init__(self, *, allow_init_netns: bool = False) -> None:
        self.allow_init_netns = allow_init_netns
        os.environ["TZ"] = "UTC"
        time.tzset()
        self._ctx = nftables.Nftables()
        self._ctx.set_json_output(False)
        self._after_apply: dict[str, str | None] = {}  # table -> listing at the first drift check
        self._dir = tempfile.mkdtemp(prefix="oxwrt-nft-")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def _run(self, command: str) -> tuple[int, str, str]:
        rc, out, err = self._ctx.cmd(command)
        return rc, out, err

    def installed_digest(self, table: str) -> str | None:
        """The digest in the name of `table`'s revision chain. `list chains` fetches no rules and
        no set elements (`list chain` would load a 100,000-element set: 0.6 s)."""
        self._ctx.set_json_output(True)
        try:
            rc, out, _ = self._run("list chains")
        finally:
            self._ctx.set_json_output(False)
        if rc != 0:
            return None
        family, _, name = table.partition(" ")
        for item in _LISTING.decode(out).nftables:
            chain = item.chain
            if (
                chain is not None
                and (chain.family, chain.table) == (family, name)
                and chain.name.startswith(REVISION_PREFIX)
            ):
                return chain.name[len(REVISION_PREFIX) :]
        return None

    def observe(self, table: str) -> str | None:
        """The kernel's listing of `table` (nft text), or None when it does not exist."""
        rc, out, _ = self._run(f"list table {table}")
        return out if rc == 0 else None

    def list_ruleset(self) -> str:
        """Every table of the namespace, as `nft list ruleset` prints it (for `diag`)."""
        rc, out, err = self._run("list ruleset")
        if rc != 0:
            raise OSError(f"nft list ruleset: {err.strip()}")
        return out

    def apply(self, ruleset: Ruleset, *, force: bool = False) -> ApplyOutcome:
        """Install `ruleset` unless it already is; `force` rewrites it anyway (drift repair)."""
        if not self.allow_init_netns and os.getpid() != 1 and in_init_netns():
            raise NftApplyError(INIT_NETNS_REFUSAL)
        if not force and ruleset.absent and self.observe(ruleset.table) is None:
            return ApplyOutcome(changed=False, digest=ruleset.digest)
        if not force and self.installed_digest(ruleset.table) == ruleset.digest:
            return ApplyOutcome(changed=False, digest=ruleset.digest)
        # from a file, not a buffer: nft 1.0.6 reports buffer errors without line numbers
        path = Path(self._dir) / "ruleset.nft"
        path.write_text(ruleset.text)
        rc, _, err = self._ctx.cmd_from_file(str(path))
        if rc != 0:
            raise _mapped_error(err, ruleset)
        if ruleset.absent:
            return ApplyOutcome(changed=True, digest=ruleset.digest)
        installed = self.installed_digest(ruleset.table)
        if installed != ruleset.digest:
            raise NftApplyError(f"read back digest {installed} after writing {ruleset.digest}")
        self._after_apply.pop(ruleset.table, None)
        return ApplyOutcome(changed=True, digest=ruleset.digest)

    def drifted(self, ruleset: Ruleset) -> bool:
        """True when the kernel no longer holds what `ruleset` installed: another revision, or
        edits inside the table. The listing is not taken on apply (it costs as much as the apply
        for large tables): the first check after an apply records it, later checks compare."""
        if ruleset.absent:
            return self.observe(ruleset.table) is not None
        if self.installed_digest(ruleset.table) != ruleset.digest:
            return True
        listing = self.observe(ruleset.table)
        baseline = self._after_apply.setdefault(ruleset.table, listing)
        return listing != baseline


def _mapped_error(err: str, ruleset: Ruleset) -> NftApplyError:
    lines = ruleset.text.splitlines()
    found = _ERROR_RE.search(err)
    if found is None:
        return NftApplyError(err.strip() or "nft refused the ruleset")
    line = int(found.group("line"))
    text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return NftApplyError(
        f"{found.group('msg')} (line {line}: {text})", line=line, origin=ruleset.origin_of(line)
    )


def utc_offset_minutes(timezone: str | None, now: dt.datetime) -> int:
    """Offset of the configured IANA `timezone` from UTC at `now` (0 when unset)."""
    if not timezone:
        return 0
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {timezone!r} is not a known IANA time zone") from None
    offset = now.astimezone(zone).utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


__all__ = ["ApplyOutcome", "Nft", "NftApplyError", "NftBackend", "utc_offset_minutes"]
