"""oxwrtd as PID 1 of a real kernel (QEMU, TCG): boot, modules, mounts, reaping, cgroup v2,
NICs cabled to lab namespaces, and an orderly shutdown whose effects are read back from the
data disk on the host. One boot serves every test up to the shutdown test, which runs last."""

from __future__ import annotations

import shlex
import subprocess

from tests.vm.conftest import VMLab
from vm.harness import GUEST_PYTHON, READY_LINE, VM, disk_features, read_disk_file


def ok(vm: VM, cmd: str) -> str:
    rc, out = vm.run(cmd)
    assert rc == 0, f"{cmd!r} failed ({rc}): {out}"
    return out


def test_boots_to_oxwrtd_as_pid1(vm: VM) -> None:
    assert READY_LINE in vm.console()
    cmdline = ok(vm, "tr '\\0' ' ' < /proc/1/cmdline")
    assert "-m oxwrtd.pid1" in cmdline
    assert ok(vm, "hostname").strip() == "oxwrt-vm"  # from the image's /etc/hostname


def test_early_mounts_are_in_place(vm: VM) -> None:
    mounts = {line.split()[1]: line.split()[2] for line in ok(vm, "cat /proc/mounts").splitlines()}
    expected = {
        "/proc": "proc",
        "/sys": "sysfs",
        "/dev": "devtmpfs",
        "/dev/pts": "devpts",
        "/sys/fs/cgroup": "cgroup2",
        "/run": "tmpfs",
        "/tmp": "tmpfs",
        "/data": "ext4",
        "/etc/oxwrt": "ext4",
        "/var/lib/oxwrt": "ext4",
    }
    assert {k: mounts.get(k) for k in expected} == expected


def test_listed_modules_are_loaded(vm: VM) -> None:
    loaded = {line.split()[0] for line in ok(vm, "cat /proc/modules").splitlines()}
    assert {"wireguard", "sch_cake", "mac80211_hwsim", "nf_tables", "bridge", "8021q"} <= loaded
    # `mac80211_hwsim radios=2` in the list: the parameter reached the module
    assert ok(vm, "ls /sys/class/ieee80211").split() == ["phy0", "phy1"]
    # the kernel really has WireGuard: a link of that type can be created
    ok(vm, "ip link add wgtest type wireguard && ip link del wgtest")


INSMOD_FALLBACK = """
import os
from pathlib import Path
from oxwrtd.shell import init
requests = [
    init.ModuleRequest("nf_nat_sip", (), "t:1"),
    init.ModuleRequest("dummy", ("numdummies=3",), "t:2"),
]
tree = Path("/lib/modules") / os.uname().release
for outcome in init.load_modules(requests, tree, modprobe=None):
    print(outcome.name, outcome.status, outcome.detail)
"""


def test_the_insmod_fallback_loads_dependencies_and_params(vm: VM) -> None:
    # no modprobe: modules.dep gives the order, finit_module(2) loads, params reach the module
    out = ok(vm, f"{GUEST_PYTHON} -c {shlex.quote(INSMOD_FALLBACK)}")
    lines = out.splitlines()
    assert "nf_conntrack_sip loaded " in lines
    assert lines.index("nf_conntrack_sip loaded ") < lines.index("nf_nat_sip loaded ")
    assert "dummy loaded " in lines
    ok(vm, "ip link show dummy2")  # numdummies=3 made dummy0..dummy2 (the default is 1)


def test_cgroup_v2_controllers_are_usable(vm: VM) -> None:
    controllers = set(ok(vm, "cat /sys/fs/cgroup/cgroup.controllers").split())
    assert {"cpu", "memory", "pids", "io"} <= controllers
    ok(vm, "echo '+memory +pids +cpu' > /sys/fs/cgroup/cgroup.subtree_control")
    ok(vm, "mkdir -p /sys/fs/cgroup/probe && echo 7 > /sys/fs/cgroup/probe/pids.max")
    ok(vm, "echo 16777216 > /sys/fs/cgroup/probe/memory.max")
    assert ok(vm, "cat /sys/fs/cgroup/probe/pids.max").strip() == "7"
    assert ok(vm, "cat /sys/fs/cgroup/probe/memory.max").strip() == "16777216"
    ok(vm, "rmdir /sys/fs/cgroup/probe")


def test_orphans_are_reaped_by_pid1(vm: VM) -> None:
    # the shell exits at once, so `sleep` is orphaned and re-parented to PID 1
    pid = ok(vm, "sh -c 'sleep 2 >/dev/null 2>&1 & echo $!'").strip()
    assert ok(vm, f"awk '/^PPid:/ {{print $2}}' /proc/{pid}/status").strip() == "1"
    # once it exits, a PID 1 that reaps leaves nothing; one that does not leaves a zombie (Z)
    rc, out = vm.run(f"for i in $(seq 100); do [ -e /proc/{pid} ] || exit 0; sleep 0.1; done; "
                     f"grep State /proc/{pid}/status; exit 1")  # fmt: skip
    assert rc == 0, f"orphan {pid} not reaped: {out}"


def test_watchdog_is_fed(vm: VM) -> None:
    assert ok(vm, "cat /sys/class/watchdog/watchdog0/state").strip() == "active"


def test_nics_reach_the_lab_namespaces(vm: VM, vm_lab: VMLab) -> None:
    assert vm.network is not None
    for role, ns, net in (("wan", vm_lab.wan_ns, "192.0.2"), ("lan", vm_lab.lan_ns, "198.51.100")):
        mac = vm.network.macs[role]
        dev = ok(vm, f"ip -o link | awk -F': ' '/{mac}/ {{print $2}}'").strip()
        assert dev, f"no guest NIC with MAC {mac}"
        ok(vm, f"ip addr replace {net}.2/24 dev {dev} && ip link set {dev} up")
        subprocess.run(["ip", "-n", ns, "addr", "replace", f"{net}.1/24", "dev", "vm-" + role],
                       check=True)  # fmt: skip
        ping = subprocess.run(
            ["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "10", f"{net}.2"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert ping.returncode == 0, f"{role}: {ping.stdout}{ping.stderr}"


def test_sigterm_to_pid1_is_an_orderly_shutdown_and_data_persists(vm: VM, vm_lab: VMLab) -> None:
    ok(vm, "echo persisted > /etc/oxwrt/marker && sync")
    seed_before = ok(vm, "od -An -tx1 -N16 /data/random-seed")
    start = vm.console_size()
    assert vm.shutdown("TERM") == 0  # -no-reboot: the guest's reboot(2) ends QEMU
    after = vm.console(start)
    steps = ["shutdown requested: reboot", "sending SIGTERM", "/data unmounted", "reboot now"]
    positions = [after.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), after
    assert "Kernel panic" not in after
    # what the guest wrote is on the disk, the disk was cleanly unmounted, the seed was renewed
    assert read_disk_file(vm.data_disk, "/etc/oxwrt/marker") == b"persisted\n"
    assert "needs_recovery" not in disk_features(vm.data_disk)
    seed = read_disk_file(vm.data_disk, "/random-seed")
    assert len(seed) == 512
    assert seed[:16].hex() != "".join(seed_before.split())
    # the next boot, on the same disk, sees it as its /etc/oxwrt
    again = vm_lab.vm()
    assert again is not vm
    assert ok(again, "cat /etc/oxwrt/marker") == "persisted\n"


def test_sigpwr_to_pid1_powers_the_machine_off(vm: VM) -> None:
    start = vm.console_size()
    assert vm.shutdown("PWR") == 0
    after = vm.console(start)
    assert "shutdown requested: poweroff" in after
    assert "reboot: Power down" in after  # the kernel's own line: reboot(2) POWER_OFF ran
