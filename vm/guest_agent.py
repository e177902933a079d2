"""Runs inside the VM guest: executes shell commands sent by the host harness (`VM.run`).

Protocol on the virtio-serial port named AGENT_PORT, one JSON object per line each way:
    host -> guest  {"id": 7, "cmd": "cat /proc/modules", "timeout": 60}
    guest -> host  {"id": 7, "rc": 0, "out": "..."}         (stdout and stderr merged)
rc 124 means the command was killed after `timeout`. Commands run one at a time, each in its own
session, so a timeout kills its whole process group. Stdlib only: the guest's interpreter may be
any Python 3.11.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

AGENT_PORT = "oxwrt.agent"  # vm/harness.py names the QEMU virtserialport the same
PORT_WAIT_S = 60.0  # virtio_console is loaded by PID 1 from /etc/modules.d
TIMEOUT_RC = 124  # what coreutils' timeout(1) returns
READY_LINE = "oxwrt-agent: ready"  # on the console; vm/harness.py waits for it


def find_port(name: str, deadline: float) -> Path:
    while True:
        for entry in sorted(Path("/sys/class/virtio-ports").glob("*")):
            try:
                if (entry / "name").read_text().strip() == name:
                    return Path("/dev") / entry.name
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise SystemExit(f"oxwrt-agent: no virtio port named {name}")
        time.sleep(0.2)


def execute(cmd: str, timeout: float) -> tuple[int, str]:
    child = subprocess.Popen(
        ["/bin/sh", "-c", cmd],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, _ = child.communicate()
        return TIMEOUT_RC, out.decode(errors="replace")
    return child.returncode, out.decode(errors="replace")


def serve(port: Path) -> None:
    fd = os.open(port, os.O_RDWR)
    print(f"{READY_LINE} on {port}", flush=True)
    buffer = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:  # the host side is not connected (yet, or any more)
            time.sleep(0.2)
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            try:
                request = json.loads(line)
                rc, out = execute(str(request["cmd"]), float(request.get("timeout", 60)))
                reply = {"id": request.get("id"), "rc": rc, "out": out}
            except (ValueError, KeyError, TypeError, OSError) as exc:
                reply = {"id": None, "rc": 125, "out": f"oxwrt-agent: bad request: {exc}"}
            data = json.dumps(reply).encode() + b"\n"
            while data:
                data = data[os.write(fd, data) :]


def main() -> int:
    serve(find_port(AGENT_PORT, time.monotonic() + PORT_WAIT_S))
    return 0


if __name__ == "__main__":
    sys.exit(main())
