"""`oxwrtd` entry point: dispatches to the daemon or to one of its offline tools.

    oxwrtd [--config-dir DIR] [--state-dir DIR]    run the router (runtime.py)
    oxwrtd journal verify|export|stats|replay DIR  offline journal tools (journal_tool.py)
    oxwrtd --print-server-key [--config-dir DIR]   the control plane's public key

Started by the kernel (PID 1), it boots the machine first and runs the daemon under PID 1's
loop (pid1.py): config in /etc/oxwrt and the journal in /var/lib/oxwrt, both on the data
partition. Heavy imports stay inside the branch that needs them, so each tool starts fast.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if os.getpid() == 1:
        from oxwrtd import pid1

        pid1.main(args)  # never returns
    if args[:1] == ["journal"]:
        from oxwrtd import journal_tool

        return journal_tool.main(args[1:])
    from oxwrtd import daemon

    return daemon.main(args)


if __name__ == "__main__":
    sys.exit(main())
