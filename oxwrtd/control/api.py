"""What the control plane may ask of the router: the seam between RPC handling and the runtime.

The RPC handler (oxwrtd/control/handler.py) turns wire requests into calls on `RouterApi`; the
runtime (oxwrtd/runtime.py) implements it; tests use a fake. Every call is answered with plain
data from schema.wire or the Structs below, never with runtime internals. Invariants:
- a mutating call carries `Author` (who, signed bytes); the runtime journals it with the event;
- a refused call raises `ApiError(code, message)`; nothing was changed when it does;
- nothing here returns a secret in clear (`dump_config` and `show` are redacted).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

import msgspec

from schema import wire


class ApiError(Exception):
    """A refusal with a stable code (`invalid`, `stale`, `not-found`, `not-pending`,
    `bad-request`, `unsupported`, `apply-failed`) and a message that says what to do."""

    def __init__(self, code: str, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []


class Author(msgspec.Struct, frozen=True, kw_only=True):
    """Who asked: the ACL name and key of the peer, and its signature over the request.
    `committed` names the request fields that were signed as salted commitments: their secrets
    are not in `request`, so it can be journaled and re-verified offline."""

    name: str
    public_key: bytes
    request: bytes = b""  # the exact signed bytes
    signature: bytes = b""
    committed: frozenset[str] = frozenset()


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """The result of a mutating call: the lines to show the operator, and the revision now
    running/candidate so scripts can chain calls."""

    lines: list[str]
    running: int | None = None
    candidate: int | None = None


class RevisionInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    status: str  # proposed / applied / failed / reverted
    time: float
    author: str | None = None
    fingerprint: str | None = None
    comment: str = ""
    source: str = ""
    hostname: str = ""
    summary: str = ""
    running: bool = False


class BlameLine(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    revision: int
    author: str | None = None
    time: float
    comment: str = ""


class RouterApi(Protocol):
    async def status(self) -> wire.StatusReply: ...

    async def get(self, key: str) -> str: ...

    async def set(self, key: str, value: str, author: Author) -> Outcome: ...

    async def push(
        self,
        public_toml: str,
        secrets_toml: str | None,
        author: Author,
        comment: str = "",
        base_revision: int | None = None,
    ) -> Outcome: ...

    async def reload(
        self, author: Author, *, confirm_within: float | None = None, comment: str = ""
    ) -> Outcome: ...

    async def dry_run(self) -> Outcome: ...

    async def confirm(self, author: Author) -> Outcome: ...

    async def rollback(
        self, author: Author, *, to: int | None = None, at: float | None = None, comment: str = ""
    ) -> Outcome: ...

    async def revisions(self) -> list[RevisionInfo]: ...

    async def show(self, revision: int) -> str: ...

    async def diff(self, old: int, new: int | None = None) -> str: ...

    async def blame(self, path: str) -> BlameLine: ...

    async def dump_config(self) -> str: ...

    async def diag(self, op: str, args: Sequence[str]) -> str:
        """A read-only view of the kernel (oxwrtd/core/diag.py); ApiError for the rest."""
        ...

    async def restart(self, service: str, author: Author) -> Outcome: ...

    def logs(self, service: str, follow: bool) -> AsyncIterator[str]: ...

    async def backup(self) -> bytes: ...

    async def restore(self, tarball: bytes, author: Author) -> Outcome: ...

    async def reset(self, author: Author) -> Outcome: ...

    async def reboot(self, author: Author, mode: Literal["reboot", "poweroff"]) -> Outcome: ...


__all__ = ["ApiError", "Author", "BlameLine", "Outcome", "RevisionInfo", "RouterApi"]
