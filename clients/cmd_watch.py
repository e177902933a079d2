"""`watch [--interval SECS] [--count N] [COMMAND ...]`: repeat a read command (default status).

All ticks share one connection (so sub-second intervals are cheap); a lost connection is
reopened on the next tick and a refusal is shown, so watching survives a router reboot. Only
read commands that end by themselves may be watched: `watch reload` or `watch logs -f` would
change the router or never return, and are usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from clients.remote import (
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    Context,
    Refused,
    Subcommands,
    UsageError,
    report_refusal,
)

CLEAR = "\x1b[H\x1b[2J"


def add(commands: Subcommands) -> None:
    watch = commands.add_parser(
        "watch",
        help="repeat a read command (default: status) until Ctrl-C",
        description="Repeat COMMAND every SECS seconds over one connection.",
    )
    watch.add_argument("--interval", metavar="SECS", type=_interval, default=1.0, help="default 1")
    watch.add_argument("--count", metavar="N", type=_count, help="stop after N ticks")
    watch.add_argument(
        "inner", metavar="COMMAND", nargs=argparse.REMAINDER, help="a read command and its args"
    )
    watch.set_defaults(remote=run, check=check)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.05 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0.05 to 86400 seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of ticks (1 or more)")
    return int(text)


def check(args: argparse.Namespace) -> None:
    from clients.cmd_read import COMMANDS, WATCHABLE

    inner_argv = args.inner or ["status"]
    if inner_argv[0] not in WATCHABLE:
        raise UsageError(
            f"cannot watch {inner_argv[0]!r}: only read commands ({', '.join(sorted(WATCHABLE))})"
        )
    parser = argparse.ArgumentParser(prog=f"oxctl HOST watch {inner_argv[0]}", add_help=False)
    parser.add_argument("--json", action="store_true", default=args.json)
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    try:
        inner, extra = parser.parse_known_args(inner_argv)
    except SystemExit:
        raise UsageError(f"bad arguments for {' '.join(inner_argv)}") from None
    if extra:
        raise UsageError(f"unrecognised arguments for {inner_argv[0]}: {' '.join(extra)}")
    inner.json = args.json or inner.json
    args.inner_args = inner


async def run(ctx: Context) -> int:
    args = ctx.args
    inner = Context(args=args.inner_args, session=ctx.session, out=ctx.out, json_lines=True)
    label = " ".join(args.inner or ["status"])
    fancy = not inner.json and ctx.out.isatty()
    status = EXIT_OK
    tick = 0
    while args.count is None or tick < args.count:
        tick += 1
        if not inner.json:
            clear = CLEAR if fancy else ""
            ctx.print(
                f"{clear}oxctl watch {args.target} - {label} every {args.interval:g}s "
                f"(tick {tick}; Ctrl-C to quit)"
            )
        status = await _tick(ctx, inner)
        if args.count is None or tick < args.count:
            await asyncio.sleep(args.interval)
    return status


async def _tick(ctx: Context, inner: Context) -> int:
    from clients.transport import TransportError

    try:
        if ctx.stale and ctx.reconnect is not None:
            inner.session = ctx.session = await ctx.reconnect()
            ctx.stale = False
        return int(await inner.args.remote(inner))
    except Refused as e:
        report_refusal(inner, e)
        return EXIT_REFUSED
    except TransportError as e:
        sys.stderr.write(f"oxctl watch: {e}\n")
        ctx.session.close()
        ctx.stale = True
        return EXIT_UNREACHABLE


__all__ = ["add", "check", "run"]
