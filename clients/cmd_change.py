"""Remote commands that change the config: set, config-push, reload, confirm, rollback, restart.

Every one is signed by the client key (the transport does it) and answers with the router's
lines plus the running/candidate revisions, so scripts can chain `config-push` -> `reload`.
Local inputs (files, durations, times) are checked before anything is sent.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from clients.remote import Context, Subcommands, UsageError, json_flag

# Room left in the 1 MiB frame for the envelope, the signature and the other fields.
FRAME_MARGIN = 4096
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")


def outcome(ctx: Context, reply: Any) -> int:
    if ctx.json:
        ctx.emit(
            {
                "lines": reply.value.splitlines(),
                "running": reply.running,
                "candidate": reply.candidate,
            }
        )
    else:
        ctx.print(reply.value or "ok")
    return 0


def _command(commands: Subcommands, name: str, help_: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    json_flag(parser)
    return parser


def _comment(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--comment", metavar="TEXT", default="", type=_name, help="why: kept in the log"
    )


def _name(text: str) -> str:
    if len(text) > 256:
        raise argparse.ArgumentTypeError(f"at most 256 characters, got {len(text)}")
    return text


# ---------------------------------------------------------------- set


def add_set(commands: Subcommands) -> None:
    set_ = _command(commands, "set", "change one config value in a new candidate revision")
    set_.add_argument("key", metavar="KEY", type=_name)
    set_.add_argument("value", metavar="VALUE")
    set_.set_defaults(remote=run_set)


async def run_set(ctx: Context) -> int:
    from schema import wire

    return outcome(ctx, await ctx.value(wire.Set(key=ctx.args.key, value=ctx.args.value)))


# ---------------------------------------------------------------- config-push


def add_config_push(commands: Subcommands) -> None:
    push = _command(commands, "config-push", "send a whole oxwrt.toml as the new candidate")
    push.add_argument("file", metavar="FILE", type=Path, help="the public oxwrt.toml")
    push.add_argument(
        "--secrets",
        metavar="FILE",
        type=Path,
        help="its secrets overlay (default: keep the router's secrets)",
    )
    push.add_argument(
        "--base",
        metavar="REV",
        type=_revision,
        help="the revision FILE was edited from; refused if the router has moved on",
    )
    _comment(push)
    push.set_defaults(remote=run_config_push, check=check_config_push)


def _revision(text: str) -> int:
    digits = text[1:] if text[:1] in "rR" else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a revision id such as 3 or r3")
    return int(digits)


def read_text(path: Path, what: str) -> str:
    from schema.wire import MAX_FRAME

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_FRAME - FRAME_MARGIN:
        raise UsageError(f"{path}: {len(data)} bytes, too big for one request ({what})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def check_config_push(args: argparse.Namespace) -> None:
    args.toml = read_text(args.file, "the config")
    args.secrets_toml = read_text(args.secrets, "the secrets") if args.secrets else None
    from schema.wire import MAX_FRAME

    if len(args.toml) + len(args.secrets_toml or "") > MAX_FRAME - FRAME_MARGIN:
        raise UsageError("the config and its secrets together are too big for one request")


async def run_config_push(ctx: Context) -> int:
    from schema import wire

    a = ctx.args
    request = wire.ConfigPush(
        toml=a.toml, secrets=a.secrets_toml, comment=a.comment, base_revision=a.base
    )
    return outcome(ctx, await ctx.value(request))


# ---------------------------------------------------------------- reload / confirm


def add_reload(commands: Subcommands) -> None:
    reload = _command(commands, "reload", "apply the candidate revision")
    reload.add_argument(
        "--dry-run", action="store_true", help="check what would apply; change nothing"
    )
    reload.add_argument(
        "--confirm-within",
        metavar="DUR",
        type=parse_duration,
        help="revert by itself unless `confirm` arrives within DUR (90s, 2m, 1h30m)",
    )
    _comment(reload)
    reload.set_defaults(remote=run_reload, check=check_reload)


def parse_duration(text: str) -> int:
    """Whole seconds from `90`, `90s`, `2m`, `1h30m`, `1m30s`; at least one second."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 2m or 1h30m")
    h, m, s = (int(g) if g else 0 for g in match.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the window must be at least 1s")
    return seconds


def check_reload(args: argparse.Namespace) -> None:
    if args.dry_run and (args.confirm_within is not None or args.comment):
        raise UsageError("--dry-run changes nothing, so it takes no --confirm-within or --comment")


async def run_reload(ctx: Context) -> int:
    from schema import wire

    a = ctx.args
    if a.dry_run:
        return outcome(ctx, await ctx.value(wire.ReloadDryRun()))
    request = wire.Reload(confirm_within_secs=a.confirm_within, comment=a.comment)
    return outcome(ctx, await ctx.value(request))


def add_confirm(commands: Subcommands) -> None:
    _command(
        commands, "confirm", "keep the revision applied by `reload --confirm-within`"
    ).set_defaults(remote=run_confirm)


async def run_confirm(ctx: Context) -> int:
    from schema import wire

    return outcome(ctx, await ctx.value(wire.Confirm()))


# ---------------------------------------------------------------- rollback


def add_rollback(commands: Subcommands) -> None:
    rollback = _command(commands, "rollback", "run an earlier revision again (see rollback-list)")
    rollback.add_argument(
        "--confirm", action="store_true", help="required: this changes the router"
    )
    which = rollback.add_mutually_exclusive_group()
    which.add_argument(
        "--to", metavar="REV", type=_revision, help="a revision id from rollback-list"
    )
    which.add_argument(
        "--at",
        metavar="TIME",
        type=parse_time,
        help="the revision running at TIME (Unix seconds or ISO 8601; local time if no offset)",
    )
    _comment(rollback)
    rollback.set_defaults(remote=run_rollback, check=check_rollback)


def parse_time(text: str) -> str:
    """Unix seconds as text: an ISO time without an offset is the operator's local time."""
    from datetime import datetime

    from schema.wire import parse_time as router_time

    try:
        return repr(router_time(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not Unix seconds or an ISO 8601 time such as 2026-11-28T18:00"
        ) from None
    return repr(moment.astimezone().timestamp())


def check_rollback(args: argparse.Namespace) -> None:
    if not args.confirm:
        raise UsageError("refusing to roll back without --confirm")


async def run_rollback(ctx: Context) -> int:
    from schema import wire

    a = ctx.args
    request = wire.Rollback(confirm=True, to=a.to, at=a.at, comment=a.comment)
    return outcome(ctx, await ctx.value(request))


# ---------------------------------------------------------------- restart


def add_restart(commands: Subcommands) -> None:
    restart = _command(commands, "restart", "restart one supervised service")
    restart.add_argument("service", metavar="SERVICE", type=_name)
    restart.set_defaults(remote=run_restart)


async def run_restart(ctx: Context) -> int:
    from schema import wire

    return outcome(ctx, await ctx.value(wire.Restart(service=ctx.args.service)))


COMMANDS = (add_set, add_config_push, add_reload, add_confirm, add_rollback, add_restart)

__all__ = ["COMMANDS", "outcome", "parse_duration", "parse_time", "read_text"]
