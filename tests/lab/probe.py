"""Run as a sandboxed service by tests/lab/test_sandbox.py: print one JSON line describing what
the sandbox lets this process see and do, then stay alive until killed.

argv[1] (optional): comma-separated paths the probe tries to write.
"""

import ctypes
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
# x86_64 syscall numbers; the lab test runs only there.
NR = {"mount": 165, "unshare": 272, "ptrace": 101, "bpf": 321, "keyctl": 250, "reboot": 169}
ARGS = {
    "mount": (b"none", b"/mnt", b"tmpfs", 0, None),
    "unshare": (0,),  # no flags: allowed for anyone unless seccomp says no
    "ptrace": (0x4206, 0, 0, 0),  # PTRACE_SEIZE of pid 0: ESRCH unless denied
    "bpf": (0, None, 0),
    "keyctl": (0, -3, 0),  # KEYCTL_GET_KEYRING_ID of the session keyring: works unprivileged
    "reboot": (0, 0, 0, None),  # bad magic: EINVAL unless denied
}
STATUS_KEYS = ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb", "NoNewPrivs", "Seccomp")


def attempt(name: str) -> str:
    res = libc.syscall(NR[name], *ARGS[name])
    return "ok" if res >= 0 else errno.errorcode[ctypes.get_errno()]


def try_write(path: str) -> str:
    try:
        Path(path).write_text("x")
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]
    return "ok"


def main() -> None:
    lines = Path("/proc/self/status").read_text().splitlines()
    status = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    resolv = Path("/etc/resolv.conf")
    report = {
        "hostname": socket.gethostname(),
        "ifaces": sorted(name for _, name in socket.if_nameindex()),
        "status": {key: status[key].strip() for key in STATUS_KEYS},
        "uid_map": Path("/proc/self/uid_map").read_text().split(),
        "resolv": resolv.read_text() if resolv.exists() else None,
        "pid": os.getpid(),
        "env": {key: os.environ.get(key) for key in ("HOME", "PATH", "HOSTNAME", "EXTRA")},
        "syscalls": {name: attempt(name) for name in NR},
        "writes": {p: try_write(p) for p in (sys.argv[1].split(",") if len(sys.argv) > 1 else [])},
    }
    print(json.dumps(report), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
