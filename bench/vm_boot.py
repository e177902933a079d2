"""VM boots (QEMU, TCG) against floors measured in the same run, in the same VM.

    .venv/bin/python bench/vm_boot.py [--runs 2] [--events 100000]

1. PID 1 ready vs a plain shell: the floor is `/bin/sh` echoing a line as the new PID 1; the
   measured boot is `/sbin/init --selftest` (rootfs-overlay) printing READY_LINE after its boot
   steps (mounts, the module list, the data partition, hostname, seed).
2. Control plane ready vs the same shell: `/sbin/init` as the router (oxwrtd's daemon under
   PID 1 on the VM config of vm/router_config.py, empty journal) until the daemon's ready line,
   i.e. its revision applied and oxctl's listener bound.
3. Journal of `--events` events vs an empty one: the router boot again, its data disk starting
   with a journal of that many events (health probes and service starts/exits, appended on the
   host through the daemon's own EventLog, snapshots and all) built with `mkfs.ext4 -d`.

Every boot runs on a fresh copy of its disk, the kinds interleaved so drift on a shared machine
hits all of them. Times run from QEMU's start to the line on the serial console. Needs root (apt,
QEMU, the VM's network namespace: its NICs are cabled to nothing).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clients.keys import keygen
from journal.lmdb import LmdbStore
from oxwrtd.eventlog import EventLog
from schema import events as ev
from vm.harness import (
    READY_LINE,
    ROUTER_READY,
    VM,
    NetPlan,
    VMConfig,
    make_data_disk,
    router_argv,
)
from vm.router_config import data_tree, vm_router_toml

SHELL_LINE = r"^oxwrt-bench: shell up 2\s*$"  # `$((1+1))` expands only when the shell runs
SHELL_ARGV = ["/bin/sh", "-c", "echo 'oxwrt-bench: shell up' $((1+1)); exec sleep 3600"]
DISK_MIB = 512  # room for a 100,000-event journal and its snapshots
BATCH = 500  # events per append: a busy router's burst, not one transaction per event


def chatter(n: int) -> list[ev.Event]:
    """A router's machine events: probes mostly, services restarting now and then."""
    rng = random.Random(1)
    detail = "probe 198.51.100.1 via eth0: icmp echo, 3 tries"
    out: list[ev.Event] = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.8:
            out.append(ev.HealthProbed(target=f"ping:{i % 4}", ok=roll < 0.75, detail=detail))
        elif roll < 0.9:
            out.append(ev.ServiceStarted(name=f"svc{i % 8}", pid=1000 + i, generation=i))
        else:
            out.append(ev.ServiceExited(name=f"svc{i % 8}", pid=1000 + i, code=0))
    return out


def add_journal(tree: Path, n: int) -> float:
    """Append `n` events to the data tree's journal; returns seconds taken."""
    started = time.monotonic()
    events = chatter(n)
    log = EventLog(LmdbStore(tree / "state" / "journal"))
    for i in range(0, n, BATCH):
        log.append(events[i : i + BATCH], 1.7e9 + i)
    log.close()
    return time.monotonic() - started


def boot_once(
    workdir: Path, tree: Path | None, init_argv: Sequence[str] | None, line: str
) -> tuple[float, int | None]:
    """Seconds from QEMU's start to `line`, and the journal seq the router reports there."""
    disk = make_data_disk(workdir.with_suffix(".img"), DISK_MIB, root=tree)
    config = VMConfig(workdir=workdir, data_disk=disk, net=NetPlan({"wan": None, "lan": None}))
    if init_argv is not None:
        config.init_argv = list(init_argv)
    with VM(config) as vm:
        vm.start()
        seen = vm.wait_for_line(line, 300.0)
        seconds = time.monotonic() - vm.started_at
    disk.unlink()
    at = re.search(r"journal at seq (\d+)", seen)  # the router's line says what it booted on
    return seconds, int(at.group(1)) if at else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    kinds = ("shell", "pid1", "router", "journal")
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    seqs: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="oxwrt-vm-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        empty = root / "empty"
        data_tree(empty, vm_router_toml(keygen(root / "operator.key")))
        full = root / "full"
        shutil.copytree(empty, full)
        took = add_journal(full, args.events)
        print(f"built a {args.events:,}-event journal in {took:.1f} s on the host")
        boots = {
            "shell": (None, SHELL_ARGV, SHELL_LINE),
            "pid1": (None, None, READY_LINE),
            "router": (empty, router_argv(), ROUTER_READY),
            "journal": (full, router_argv(), ROUTER_READY),
        }
        for run in range(args.runs):
            for kind in kinds:
                tree, argv, line = boots[kind]
                seconds, seq = boot_once(root / f"{kind}{run}", tree, argv, line)
                times[kind].append(seconds)
                if seq is not None:
                    seqs[kind] = seq
    shell, pid1, router, journal = (statistics.median(times[kind]) for kind in kinds)
    print(f"boot to a shell (floor):        {shell:6.2f} s  median of {args.runs}")
    print(f"boot to PID 1 ready:            {pid1:6.2f} s  ratio to shell {pid1 / shell:5.2f}x")
    print(f"boot to control plane ready:    {router:6.2f} s  ratio to shell {router / shell:5.2f}x")
    print(f"  same, {args.events:,}-event journal: {journal:6.2f} s  "
          f"ratio to the empty journal {journal / router:5.2f}x")  # fmt: skip
    print(f"journal seq at ready: {seqs.get('router')} (empty), {seqs.get('journal')} (full)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
