"""Boot to oxwrtd's PID 1 ready vs boot to a plain shell, in the same VM (QEMU, TCG).

    .venv/bin/python bench/vm_boot.py [--runs 2]

Both boots use the same kernel, initramfs, 9p host root, overlay and data disk; only the program
switch_root hands over to differs. The floor is `/bin/sh` echoing a line as the new PID 1; the
measured boot is `/sbin/init --selftest` (rootfs-overlay) printing READY_LINE after its boot
steps (mounts, the module list, the data partition, hostname, seed). Times run from QEMU's
start to the line appearing on the serial console. Needs root (apt, QEMU); touches no network
namespace (the VM gets no NICs here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vm.harness import READY_LINE, VM, VMConfig

SHELL_LINE = r"^oxwrt-bench: shell up 2\s*$"  # `$((1+1))` expands only when the shell runs
SHELL_ARGV = ["/bin/sh", "-c", "echo 'oxwrt-bench: shell up' $((1+1)); exec sleep 3600"]


def boot_once(workdir: Path, init_argv: list[str] | None, line: str) -> float:
    config = VMConfig(workdir=workdir, net=None, data_disk=workdir.parent / "data.img")
    if init_argv is not None:
        config.init_argv = init_argv
    with VM(config) as vm:
        vm.start()
        vm.wait_for_line(line, 300.0)
        return time.monotonic() - vm.started_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    shell: list[float] = []
    pid1: list[float] = []
    with tempfile.TemporaryDirectory(prefix="oxwrt-vm-bench-") as tmp:
        for run in range(args.runs):  # interleaved, so drift on a shared machine hits both
            shell.append(boot_once(Path(tmp) / f"shell{run}", SHELL_ARGV, SHELL_LINE))
            pid1.append(boot_once(Path(tmp) / f"pid1{run}", None, READY_LINE))
    floor, measured = statistics.median(shell), statistics.median(pid1)
    print(f"boot to a shell (floor):    {floor:6.2f} s  median of {args.runs}")
    print(f"boot to PID 1 ready:        {measured:6.2f} s  median of {args.runs}")
    print(f"ratio PID 1 / shell:        {measured / floor:6.2f}x")
    print(f"PID 1 boot steps cost:      {measured - floor:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
