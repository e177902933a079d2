"""`oxctl`: the command tree. Offline commands (`check`, `dump-config`, `keygen`) work on local
files; `oxctl [OPTIONS] HOST[:PORT] COMMAND ...` talks to a router (clients/remote.py).

The offline tree is built in one function (`build_parser`) from `COMMANDS`: each entry adds
one subcommand, and each command is a small function taking the parsed arguments and returning
the exit status. `main` sends an invocation whose first word is not an offline command to the
remote tree, which registers the `cmd_*` modules the same way. Imports are lazy so
`oxctl --help` stays fast. Exit status: 0 success, 1 the config has issues (offline) or the
router refused (remote), 2 usage error (bad arguments, a file that cannot be read), 3 the router
could not be reached or did not accept our key.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from schema.load import Loaded

EXIT_OK = 0
EXIT_ISSUES = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """The invocation is wrong (exit 2); the message says how."""


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; each command module contributes one `add_*` function."""
    parser = argparse.ArgumentParser(
        prog="oxctl",
        description="Manage an oxwrt router. Offline commands work on local config files.",
        epilog=REMOTE_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(commands)
    return parser


REMOTE_USAGE = """\
remote commands: oxctl [--json] [--key FILE] [--server-key HEX] [--timeout SECS] HOST[:PORT] COMMAND
  status | get KEY | set KEY VALUE | config-push FILE [--secrets FILE] [--comment T] [--base REV]
  reload [--dry-run] [--confirm-within DUR] [--comment T] | confirm | rollback-list | log
  rollback --confirm [--to REV | --at TIME] | show REV | diff REV1 [REV2] | blame PATH
  dump-config | restart SERVICE | logs SERVICE [-f] | backup > FILE | restore FILE --confirm
  reset --confirm | reboot --confirm | watch [--interval SECS] [COMMAND ...]
  (`oxctl HOST --help` and `oxctl HOST COMMAND --help` for details; default port 51820)
keys: --key FILE or $SQUIC_CLIENT_KEY (make one with `oxctl keygen FILE`);
  --server-key HEX or $SQUIC_SERVER_KEY (`oxwrtd --print-server-key` on the router)
"""


# argparse exposes no public name for the object add_subparsers() returns.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_check(commands: Subcommands) -> None:
    check = commands.add_parser(
        "check",
        help="validate a config pair; print every issue as PATH: message",
        description="Validate FILE with its secrets overlay and the OXWRT_SECRET__ environment. "
        "Prints every issue (exit 1) or nothing (exit 0).",
    )
    _pair_arguments(check)
    check.add_argument("--json", action="store_true", help="print the issues as a JSON list")
    check.set_defaults(run=cmd_check)


def add_dump_config(commands: Subcommands) -> None:
    dump = commands.add_parser(
        "dump-config",
        help="print the merged config pair with every secret redacted",
        description="Merge FILE, its secrets overlay and the OXWRT_SECRET__ environment like "
        "the daemon does, and print the result as TOML with every secret leaf <redacted>.",
    )
    _pair_arguments(dump)
    dump.set_defaults(run=cmd_dump_config)


def _pair_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", type=Path, help="the public oxwrt.toml")
    parser.add_argument(
        "--secrets",
        metavar="FILE",
        type=Path,
        help="the secrets overlay (default: oxwrt.secrets.toml beside FILE; missing is fine)",
    )


def _load(args: argparse.Namespace) -> Loaded:
    from schema.load import load_pair

    if args.secrets is not None and not args.secrets.is_file():
        raise UsageError(f"secrets file {args.secrets} does not exist")
    try:
        return load_pair(args.file, args.secrets, os.environ)
    except FileNotFoundError as exc:
        raise UsageError(f"{exc.filename}: no such file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{args.file}: not UTF-8 text ({exc.reason})") from None


def cmd_check(args: argparse.Namespace) -> int:
    from clients import render

    loaded = _load(args)
    if args.json:
        sys.stdout.write(render.issues_json(loaded.issues) + "\n")
    else:
        sys.stdout.write(render.issues_text(loaded.issues))
    return EXIT_OK if loaded.ok else EXIT_ISSUES


def cmd_dump_config(args: argparse.Namespace) -> int:
    """Dumps whatever parses, even an invalid config (it is a debugging aid); the issues go to
    stderr. Only unparsable TOML leaves nothing to dump (exit 1)."""
    from clients import render

    loaded = _load(args)
    if loaded.issues:
        sys.stderr.write(render.issues_text(loaded.issues))
    if not loaded.parsed:
        return EXIT_ISSUES
    sys.stdout.write(render.dump_config(loaded))
    return EXIT_OK


def add_keygen(commands: Subcommands) -> None:
    from clients.cmd_keygen import add_keygen as add

    add(commands)


COMMANDS: tuple[Callable[[Subcommands], None], ...] = (add_check, add_dump_config, add_keygen)
OFFLINE = frozenset({"check", "dump-config", "keygen"})


EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a reader gone away


def main(argv: Sequence[str] | None = None) -> int:
    """`oxctl ... | head` is normal use: a reader that leaves early ends oxctl quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # point stdout at /dev/null so the interpreter's own flush at exit cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    return code


def _main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from clients.remote import is_remote

    if is_remote(argv, set(OFFLINE)):
        from clients import remote

        return remote.main(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage error or the help
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    run: Command = args.run
    try:
        return run(args)
    except UsageError as exc:
        sys.stderr.write(f"oxctl {args.command}: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
