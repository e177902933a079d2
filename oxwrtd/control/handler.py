"""Every RPC, mapped onto `RouterApi`: the one place wire requests become runtime calls.

`make_handler(api)` returns the `Handler` the ControlServer runs per request. Invariants:
- a mutating call reaches the api only with an `Author` carrying the peer's verified signature;
- destructive requests (rollback, reset, reboot, restore) without `confirm` are refused here,
  and a restore tarball is validated completely before the api sees it;
- an `ApiError` becomes one `err` frame with its code, message and details; nothing else is
  caught (the server turns a bug into an `internal` error);
- a request this router does not implement gets an `unsupported` error saying what to do
  instead, never a success.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from oxwrtd.control import restore
from oxwrtd.control.api import ApiError, Author, BlameLine, Outcome, RevisionInfo, RouterApi
from oxwrtd.control.server import Handler, Peer
from schema import wire

# base64 grows 4/3; leave room for the frame's msgpack envelope.
MAX_BACKUP_BYTES: Final = (wire.MAX_FRAME - 256) // 4 * 3
# Newest revisions `log` returns at most: a row is ~200 bytes, so this stays well inside a frame.
MAX_LOG_ROWS: Final = 1000

UNSUPPORTED: Final[dict[type, str]] = {
    wire.FwUpdate: "firmware update is not available over the control plane yet; flash the "
    "image with the device's recovery procedure",
    wire.FwApply: "firmware apply is not available over the control plane yet; flash the "
    "image with the device's recovery procedure",
    wire.Collection: "collection editing is not available yet; change the section in "
    "oxwrt.toml and use `oxctl HOST config-push FILE` (or `set KEY VALUE` for single keys)",
    wire.VpnKeyUpload: "VPN key upload is not available yet; copy the key file to the "
    "router's config directory (mode 0600) and reload",
    wire.WgEnroll: "WireGuard enrolment is not available yet; add the peer under "
    "[[wireguard.peers]] and use `oxctl HOST config-push FILE`",
}


class Refused(Exception):
    """The request is refused before it reaches the api (same shape as ApiError)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def make_handler(api: RouterApi) -> Handler:
    """The ControlServer handler for `api`."""

    async def handle(request: wire.Request, peer: Peer) -> AsyncIterator[wire.Response]:
        try:
            if isinstance(request, wire.Logs):
                async for line in api.logs(request.service, request.follow):
                    yield wire.LogLine(line=line)
                yield wire.Ok()
                return
            yield await _one(api, request, peer)
        except ApiError as e:
            yield wire.Err(message=e.message, code=e.code, details=list(e.details))
        except Refused as e:
            yield wire.Err(message=e.message, code=e.code)

    return handle


def author_of(request: wire.Request, peer: Peer) -> Author:
    """Who asked, with the signature the journal stores; a mutating request must carry one."""
    if peer.signature is None:
        op = type(request).__struct_config__.tag
        raise Refused(
            "signature_required", f"{op} changes the router and must arrive signed by the client"
        )
    return Author(
        name=peer.name,
        public_key=peer.key,
        request=peer.signature.signed_bytes,
        signature=peer.signature.signature,
        committed=peer.signature.committed,
    )


CONFIRM_USAGE: Final = {
    wire.Rollback: "rollback --confirm --to REV",
    wire.Reset: "reset --confirm",
    wire.Reboot: "reboot --confirm",
    wire.Restore: "restore FILE --confirm",
}


def _require_confirm(request: wire.Rollback | wire.Reset | wire.Reboot | wire.Restore) -> None:
    if not request.confirm:
        op = type(request).__struct_config__.tag
        raise Refused(
            "confirm_required",
            f"{op} is destructive and needs confirmation: pass --confirm "
            f"(`oxctl HOST {CONFIRM_USAGE[type(request)]}`)",
        )


async def _one(api: RouterApi, request: wire.Request, peer: Peer) -> wire.Response:
    """The single terminal reply to any request but `logs`."""
    for kind, advice in UNSUPPORTED.items():
        if isinstance(request, kind):
            raise Refused("unsupported", advice)
    read = _READS.get(type(request))
    if read is not None:
        return await read(api, request)
    if isinstance(request, wire.Signed):
        raise Refused(
            "bad-request", "a signed envelope must be verified and unwrapped by the server first"
        )
    if isinstance(request, wire.Rollback | wire.Reset | wire.Reboot | wire.Restore):
        _require_confirm(request)
    return _outcome(await _mutate(api, request, author_of(request, peer)))


async def _mutate(api: RouterApi, request: wire.Request, author: Author) -> Outcome:
    if isinstance(request, wire.Set):
        return await api.set(request.key, request.value, author)
    if isinstance(request, wire.ConfigPush):
        return await api.push(
            request.toml, request.secrets, author, request.comment, request.base_revision
        )
    if isinstance(request, wire.Reload):
        within = request.confirm_within_secs
        if within == 0:
            raise Refused("bad-request", "confirm_within_secs must be at least 1 second")
        return await api.reload(
            author,
            confirm_within=None if within is None else float(within),
            comment=request.comment,
        )
    if isinstance(request, wire.Confirm):
        return await api.confirm(author)
    if isinstance(request, wire.Rollback):
        return await api.rollback(
            author, to=request.to, at=_rollback_time(request), comment=request.comment
        )
    if isinstance(request, wire.Restart):
        return await api.restart(request.service, author)
    if isinstance(request, wire.Restore):
        return await api.restore(_checked_tarball(request.data_b64), author)
    if isinstance(request, wire.Reset):
        return await api.reset(author)
    if isinstance(request, wire.Reboot):
        return await api.reboot(author, "reboot")
    op = type(request).__struct_config__.tag
    raise Refused("unsupported", f"{op} is not handled by this router")


def _rollback_time(request: wire.Rollback) -> float | None:
    if request.at is None:
        return None
    if request.to is not None:
        raise Refused("bad-request", "give --to REV or --at TIME, not both")
    try:
        return wire.parse_time(request.at)
    except ValueError as e:
        raise Refused("bad-request", f"--at: {e}") from None


def _checked_tarball(data_b64: str) -> bytes:
    """The decoded tarball, or a refusal naming the bad member: nothing reaches the api."""
    try:
        tarball = base64.b64decode(data_b64, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("bad-request", "restore data is not valid base64") from None
    try:
        restore.validate(tarball)
    except restore.RestoreError as e:
        raise ApiError("invalid", f"restore refused, nothing applied: {e}", e.details) from None
    return tarball


def _outcome(outcome: Outcome) -> wire.Value:
    return wire.Value(
        value="\n".join(outcome.lines), running=outcome.running, candidate=outcome.candidate
    )


# ---------------------------------------------------------------- read-only requests


async def _status(api: RouterApi, _: wire.Request) -> wire.Response:
    return await api.status()


async def _get(api: RouterApi, request: wire.Request) -> wire.Response:
    assert isinstance(request, wire.Get)
    return wire.Value(value=await api.get(request.key))


async def _dry_run(api: RouterApi, _: wire.Request) -> wire.Response:
    return _outcome(await api.dry_run())


async def _rollback_list(api: RouterApi, _: wire.Request) -> wire.Response:
    rows = [r for r in await api.revisions() if r.status == "applied" or r.running]
    if not rows:
        return wire.Value(value="no revision to roll back to yet", revisions=[])
    return _revisions(rows)


async def _log(api: RouterApi, request: wire.Request) -> wire.Response:
    assert isinstance(request, wire.Log)
    limit = MAX_LOG_ROWS if request.limit is None else min(request.limit, MAX_LOG_ROWS)
    rows = await api.revisions()
    return _revisions(rows[-limit:] if limit else [])


async def _show(api: RouterApi, request: wire.Request) -> wire.Response:
    assert isinstance(request, wire.Show)
    return wire.Value(value=await api.show(request.rev))


async def _diff(api: RouterApi, request: wire.Request) -> wire.Response:
    assert isinstance(request, wire.Diff)
    return wire.Value(value=await api.diff(request.rev1, request.rev2))


async def _blame(api: RouterApi, request: wire.Request) -> wire.Response:
    assert isinstance(request, wire.Blame)
    line = await api.blame(request.path)
    return wire.Value(value=_blame_text(line), blame=_blame_row(line))


async def _dump(api: RouterApi, _: wire.Request) -> wire.Response:
    return wire.Value(value=await api.dump_config())


async def _diag(api: RouterApi, request: wire.Request) -> wire.Response:
    assert isinstance(request, wire.Diag)
    return wire.Value(value=await api.diag(request.name, request.args))


async def _backup(api: RouterApi, _: wire.Request) -> wire.Response:
    tarball = await api.backup()
    if len(tarball) > MAX_BACKUP_BYTES:
        raise Refused(
            "too-large",
            f"the backup is {len(tarball)} bytes, over the {MAX_BACKUP_BYTES} that fit in one "
            "reply; compact the journal (`oxwrtd journal`) and retry",
        )
    return wire.Value(value=base64.b64encode(tarball).decode("ascii"))


_READS: Final[dict[type, Callable[[RouterApi, wire.Request], Awaitable[wire.Response]]]] = {
    wire.Status: _status,
    wire.Get: _get,
    wire.ReloadDryRun: _dry_run,
    wire.RollbackList: _rollback_list,
    wire.Log: _log,
    wire.Show: _show,
    wire.Diff: _diff,
    wire.Blame: _blame,
    wire.ConfigDump: _dump,
    wire.Backup: _backup,
    wire.Diag: _diag,
}


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _revisions(rows: list[RevisionInfo]) -> wire.Value:
    text = "\n".join(
        f"{'*' if r.running else ' '} r{r.id:<5} {r.status:<9} {_when(r.time)}  "
        f"{r.author or '-':<16} {r.comment or r.summary}".rstrip()
        for r in rows
    )
    return wire.Value(
        value=text,
        revisions=[
            wire.RevisionRow(
                id=r.id,
                status=r.status,
                time=r.time,
                author=r.author,
                fingerprint=r.fingerprint,
                comment=r.comment,
                source=r.source,
                hostname=r.hostname,
                summary=r.summary,
                running=r.running,
            )
            for r in rows
        ],
    )


def _blame_row(line: BlameLine) -> wire.BlameRow:
    return wire.BlameRow(
        path=line.path,
        revision=line.revision,
        time=line.time,
        author=line.author,
        comment=line.comment,
    )


def _blame_text(line: BlameLine) -> str:
    why = f": {line.comment}" if line.comment else ""
    return (
        f"{line.path}: r{line.revision} by {line.author or 'local edit'} at {_when(line.time)}{why}"
    )


__all__ = ["MAX_BACKUP_BYTES", "MAX_LOG_ROWS", "UNSUPPORTED", "make_handler"]
