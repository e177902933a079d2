"""`oxctl keygen FILE`: a new client key (offline).

Writes a fresh Ed25519 seed as hex, mode 0600, never over an existing file, and prints the
public key with the `[[control.clients]]` entry to paste into the router's oxwrt.toml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clients.oxctl import Subcommands


def add_keygen(commands: Subcommands) -> None:
    keygen = commands.add_parser(
        "keygen",
        help="create a client key file and print the public key for [[control.clients]]",
        description="Write a new client key to FILE (mode 0600; an existing file is never "
        "overwritten) and print its public key, ready for [[control.clients]].",
    )
    keygen.add_argument("file", metavar="FILE", type=Path)
    keygen.add_argument(
        "--name", default="operator", help="the name to put in the printed entry (default operator)"
    )
    keygen.set_defaults(run=cmd_keygen)


def cmd_keygen(args: argparse.Namespace) -> int:
    from clients.keys import KeyFileError, keygen
    from clients.oxctl import UsageError

    try:
        public = keygen(args.file)
    except KeyFileError as e:
        raise UsageError(str(e)) from None
    sys.stdout.write(
        f"{public}\n"
        f"# wrote {args.file} (mode 0600). Add this to the router's oxwrt.toml and reload:\n"
        f'[[control.clients]]\nname = "{args.name}"\nkey = "{public}"\n'
    )
    return 0


__all__ = ["add_keygen"]
