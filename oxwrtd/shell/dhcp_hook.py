"""udhcpc's hook: report one lease event to oxwrtd as a datagram, configure nothing.

Run by udhcpc_hook.sh as a script, by path, under `python -I -S`: it imports the standard library
only. The datagram is `{"v": 1, "event": $1, "env": {...}}` with the variables below, which
`oxwrtd.core.dhcp_client.parse_report` reads. Sending never blocks udhcpc for long: a daemon
that is not listening costs one failed send, and udhcpc carries on with its lease.
"""

from __future__ import annotations

import json
import os
import socket
import sys

SOCKET_ENV = "OXWRT_DHCP_SOCKET"
SEND_TIMEOUT_S = 2.0
# What udhcpc exports that a lease needs; the rest of the environment is not the daemon's business.
KEYS = (
    "interface", "ip", "mask", "subnet", "router", "dns", "lease", "serverid", "domain",
    "broadcast", "opt58", "opt59",
)  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: dhcp_hook.py EVENT (run by udhcpc)", file=sys.stderr)
        return 2
    path = os.environ.get(SOCKET_ENV)
    if not path:
        print(f"dhcp_hook: {SOCKET_ENV} is not set; lease event not reported", file=sys.stderr)
        return 2
    env = {key: os.environ[key] for key in KEYS if key in os.environ}
    payload = json.dumps({"v": 1, "event": argv[1], "env": env}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(SEND_TIMEOUT_S)
        try:
            sock.sendto(payload, path)
        except OSError as exc:
            print(f"dhcp_hook: cannot report {argv[1]} to {path}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
