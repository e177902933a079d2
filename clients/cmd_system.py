"""Remote commands for the whole device: logs, backup, restore, reset, reboot.

`backup` writes the raw tarball to stdout and refuses a terminal; `restore`, `reset` and
`reboot` need `--confirm` here and again on the router. `logs -f` streams until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clients.cmd_change import outcome
from clients.remote import Context, Refused, Subcommands, UsageError, json_flag

# The tarball travels base64 in one 1 MiB frame: 3/4 of it, less the envelope.
MAX_TARBALL_BYTES = (1 << 20) // 4 * 3 - 4096


def _command(commands: Subcommands, name: str, help_: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    json_flag(parser)
    return parser


def _confirm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--confirm", action="store_true", help="required: this is destructive")


def _require_confirm(args: argparse.Namespace) -> None:
    if not args.confirm:
        raise UsageError(f"refusing to {args.command} without --confirm")


# ---------------------------------------------------------------- logs


def add_logs(commands: Subcommands) -> None:
    logs = _command(commands, "logs", "the recent output of one service")
    logs.add_argument("service", metavar="SERVICE")
    logs.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    logs.set_defaults(remote=run_logs)


async def run_logs(ctx: Context) -> int:
    from schema import wire

    ctx.json_lines = True  # one line per log line, as it arrives
    async for frame in ctx.session.stream(
        wire.Logs(service=ctx.args.service, follow=ctx.args.follow)
    ):
        if isinstance(frame, wire.LogLine):
            if ctx.json:
                ctx.emit({"line": frame.line})
            else:
                ctx.print(frame.line)
        elif isinstance(frame, wire.Err):
            raise Refused(frame.message, frame.code, frame.details)
    return 0


# ---------------------------------------------------------------- backup / restore


def add_backup(commands: Subcommands) -> None:
    backup = _command(
        commands, "backup", "the journal, config pair and identity keys as a .tar.gz on stdout"
    )
    backup.set_defaults(remote=run_backup, check=check_backup)


def check_backup(args: argparse.Namespace) -> None:
    if not args.json and sys.stdout.isatty():
        raise UsageError("the backup is binary; redirect it: oxctl HOST backup > router.tar.gz")


async def run_backup(ctx: Context) -> int:
    import base64
    import binascii

    from schema import wire

    reply = await ctx.value(wire.Backup())
    try:
        data = base64.b64decode(reply.value, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("the router sent a backup that is not base64", "protocol") from None
    if ctx.json:
        import hashlib

        ctx.emit(
            {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "data_b64": reply.value}
        )
        return 0
    out = getattr(ctx.out, "buffer", None)
    if out is None:
        raise UsageError("stdout takes no bytes here; use --json for base64")
    out.write(data)
    out.flush()
    sys.stderr.write(f"backup: {len(data)} bytes\n")
    return 0


def add_restore(commands: Subcommands) -> None:
    restore = _command(
        commands, "restore", "replace the config and keys with a backup, as a new revision"
    )
    restore.add_argument("file", metavar="FILE", type=Path, help="a .tar.gz from `oxctl backup`")
    _confirm(restore)
    restore.set_defaults(remote=run_restore, check=check_restore)


def check_restore(args: argparse.Namespace) -> None:
    _require_confirm(args)
    try:
        args.tarball = args.file.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{args.file}: no such file") from None
    except OSError as e:
        raise UsageError(f"cannot read {args.file}: {e.strerror}") from None
    if len(args.tarball) > MAX_TARBALL_BYTES:
        raise UsageError(
            f"{args.file}: {len(args.tarball)} bytes; a restore fits in {MAX_TARBALL_BYTES}"
        )


async def run_restore(ctx: Context) -> int:
    import base64

    from schema import wire

    data = base64.b64encode(ctx.args.tarball).decode("ascii")
    return outcome(ctx, await ctx.value(wire.Restore(data_b64=data, confirm=True)))


# ---------------------------------------------------------------- reset / reboot


def add_reset(commands: Subcommands) -> None:
    reset = _command(commands, "reset", "return to the default config, as a new revision")
    _confirm(reset)
    reset.set_defaults(remote=run_reset, check=_require_confirm)


async def run_reset(ctx: Context) -> int:
    from schema import wire

    return outcome(ctx, await ctx.value(wire.Reset(confirm=True)))


def add_reboot(commands: Subcommands) -> None:
    reboot = _command(commands, "reboot", "stop every service in order and reboot")
    _confirm(reboot)
    reboot.set_defaults(remote=run_reboot, check=_require_confirm)


async def run_reboot(ctx: Context) -> int:
    from schema import wire

    return outcome(ctx, await ctx.value(wire.Reboot(confirm=True)))


COMMANDS = (add_logs, add_backup, add_restore, add_reset, add_reboot)

__all__ = ["COMMANDS", "MAX_TARBALL_BYTES"]
