"""`oxctl [--json] [--key FILE] [--server-key HEX] HOST[:PORT] COMMAND ...`: the remote tree.

Owns the remote invocation: global options, the target address, key loading, one connection per
invocation (reused by every step of a command, and by every tick of `watch`), the mapping of
outcomes to exit status, and the JSON/text output helpers the `cmd_*` modules share. Each
command module contributes an `add_*` function to `REMOTE_COMMANDS`; a command sets
`remote=async fn(ctx) -> int` and optionally `check=fn(args)` for local checks that must pass
before anything is sent. Exit status: 0 success, 1 the router refused (an `err` reply),
2 usage error, 3 the router could not be reached or authenticated us.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeAlias

if TYPE_CHECKING:
    from clients.transport import Session
    from schema.wire import Request, Response

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
DEFAULT_PORT: Final = 51820
DEFAULT_TIMEOUT_SECS: Final = 10.0
VALUED_OPTIONS: Final = frozenset({"--key", "--server-key", "--timeout"})

Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(Exception):
    """The invocation is wrong (exit 2); the message says how to fix it."""


class Refused(Exception):
    """The router answered `err` (exit 1)."""

    def __init__(self, message: str, code: str = "", details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, list(details)


@dataclass
class Context:
    """What a remote command works with: its arguments, the session and the output streams."""

    args: argparse.Namespace
    session: Session
    out: TextIO = field(default_factory=lambda: sys.stdout)
    json_lines: bool = False  # one compact document per line (watch --json, logs --json)
    reconnect: Callable[[], Awaitable[Session]] | None = None
    stale: bool = False  # the session was lost; `watch` reconnects before its next tick

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    async def call(self, request: Request) -> Response:
        """The terminal reply; an `err` raises Refused."""
        from schema import wire

        reply = await self.session.call(request)
        if isinstance(reply, wire.Err):
            raise Refused(reply.message, reply.code, reply.details)
        return reply

    async def value(self, request: Request) -> Any:
        """The reply of a request answered with `value` (most of them)."""
        from schema import wire

        reply = await self.call(request)
        if not isinstance(reply, wire.Value):
            raise Refused(f"unexpected {type(reply).__name__} reply from the router", "protocol")
        return reply

    def emit(self, doc: Any) -> None:
        """One JSON document on stdout."""
        import json

        indent = None if self.json_lines else 2
        self.out.write(json.dumps(doc, indent=indent, sort_keys=False) + "\n")
        self.out.flush()

    def print(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") or not text else text + "\n")
        self.out.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, for people; the last column is not padded."""
    cells = [[str(h) for h in headers], *[["-" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in cells
    )


def duration(seconds: float) -> str:
    """`45s`, `12m05s`, `3h02m`, `4d03h`: compact, for uptimes and ages."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def local_time(seconds: float) -> str:
    """A revision time in the operator's local zone (the router's clock is UTC)."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def parse_target(text: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT`, `[IPv6]`, `[IPv6]:PORT` or a bare IPv6 address."""
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or not host or (rest and not rest.startswith(":")):
            raise UsageError(f"{text!r}: expected [IPv6]:PORT")
        port = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:  # a name, an IPv4 address, or an IPv6 address without a port
        host, port = text, str(DEFAULT_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{text!r}: expected HOST[:PORT] with a port from 1 to 65535")
    return host, int(port)


def is_remote(argv: Sequence[str], offline: set[str]) -> bool:
    """Whether argv is a remote invocation: its first word that is neither an option nor an
    option's value is not an offline command, and is followed by more words or looks like an
    address (a lone unknown word is a mistyped offline command)."""
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in VALUED_OPTIONS
        elif word in offline:
            return False
        else:
            return i + 1 < len(argv) or any(c in word for c in ".:[") or word == "localhost"
    return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oxctl",
        usage="oxctl [--json] [--key FILE] [--server-key HEX] [--timeout SECS] HOST[:PORT] "
        "COMMAND ...",
        description="Manage an oxwrt router over its QUIC control plane. Exit status: 0 done, "
        "1 the router refused, 2 usage error, 3 router unreachable or not authenticated.",
    )
    add_global_options(parser)
    parser.add_argument("target", metavar="HOST[:PORT]", help=f"default port {DEFAULT_PORT}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in remote_commands():
        add(commands)
    return parser


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON output for scripts")
    parser.add_argument(
        "--key",
        dest="key_file",
        metavar="FILE",
        help="client key file (default: $SQUIC_CLIENT_KEY, hex seed)",
    )
    parser.add_argument(
        "--server-key",
        metavar="HEX",
        help="the router's public key to pin (default: $SQUIC_SERVER_KEY)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECS",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_SECS,
        help=f"handshake timeout (default {DEFAULT_TIMEOUT_SECS:g})",
    )


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds between 0 and 3600")
    return value


def json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json` after the command too (`oxctl HOST status --json`); SUPPRESS keeps the global."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output for scripts"
    )


def remote_commands() -> tuple[Callable[[Subcommands], None], ...]:
    from clients import cmd_change, cmd_read, cmd_system, cmd_watch

    return (*cmd_read.COMMANDS, *cmd_change.COMMANDS, *cmd_system.COMMANDS, cmd_watch.add)


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        target = parse_target(args.target)
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        seeds = _keys(args)
    except UsageError as e:
        sys.stderr.write(f"oxctl {args.command}: {e}\n")
        return EXIT_USAGE
    import asyncio

    try:
        return asyncio.run(_run(args, target, seeds))
    except KeyboardInterrupt:
        return 130


def _keys(args: argparse.Namespace) -> tuple[bytes, bytes]:
    from clients import keys

    try:
        return keys.client_seed(args.key_file), keys.server_key(args.server_key)
    except keys.KeyFileError as e:
        raise UsageError(str(e)) from None


async def connect(
    args: argparse.Namespace, target: tuple[str, int], seeds: tuple[bytes, bytes]
) -> Session:
    from clients.transport import connect as dial

    return await dial(
        target[0],
        target[1],
        client_seed=seeds[0],
        server_key=seeds[1],
        handshake_timeout=args.timeout,
    )


async def _run(
    args: argparse.Namespace, target: tuple[str, int], seeds: tuple[bytes, bytes]
) -> int:
    from clients.transport import TransportError

    try:
        session = await connect(args, target, seeds)
    except TransportError as e:
        sys.stderr.write(f"oxctl {args.command}: {e}\n")
        return EXIT_UNREACHABLE
    ctx = Context(args=args, session=session, reconnect=lambda: connect(args, target, seeds))
    try:
        return int(await args.remote(ctx))
    except Refused as e:
        report_refusal(ctx, e)
        return EXIT_REFUSED
    except TransportError as e:
        sys.stderr.write(f"oxctl {args.command}: {e}\n")
        return EXIT_UNREACHABLE
    finally:
        ctx.session.close()


def report_refusal(ctx: Context, e: Refused) -> None:
    if ctx.json:
        ctx.emit({"error": e.message, "code": e.code, "details": e.details})
    lines = [f"oxctl {ctx.args.command}: error: {e.message}"]
    lines += [f"  {d}" for d in e.details]
    sys.stderr.write("\n".join(lines) + "\n")


__all__ = [
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "Context",
    "Refused",
    "UsageError",
    "add_global_options",
    "build_parser",
    "duration",
    "is_remote",
    "json_flag",
    "local_time",
    "main",
    "parse_target",
    "table",
]
