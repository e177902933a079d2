"""PID 1's building blocks outside a VM: module lists and load order against a temporary module
tree and a recording insmod, superblock labels on a real mkfs.ext4 image, the seed file, the
watchdog's feeding rule on a manual clock, and `pid1.run` in a child process (not PID 1, a
subreaper) for signals, reaping, escalation and never-exit on an exception."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from oxwrtd.shell import init
from oxwrtd.shell.init import ModuleOutcome, ModuleRequest

REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- module lists


def test_module_lists_are_read_in_file_order_with_params_and_comments(tmp_path: Path) -> None:
    (tmp_path / "oxwrt").write_text("# comment\nwireguard\n\nmac80211_hwsim radios=2  # two\n")
    (tmp_path / "00-board").write_text("virtio-net\n")
    (tmp_path / ".hidden").write_text("never\n")
    requests, errors = init.read_module_lists(tmp_path)
    assert errors == []
    assert [(r.name, r.params) for r in requests] == [
        ("virtio-net", ()),
        ("wireguard", ()),
        ("mac80211_hwsim", ("radios=2",)),
    ]
    assert requests[2].origin == f"{tmp_path / 'oxwrt'}:4"


def test_malformed_module_lines_are_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "list").write_text("good\nbad/name\nalso_good x=1 !oops\nlast\n")
    requests, errors = init.read_module_lists(tmp_path)
    assert [r.name for r in requests] == ["good", "last"]
    assert errors == [
        f"{tmp_path / 'list'}:2: 'bad/name' is not a module name",
        f"{tmp_path / 'list'}:3: parameter '!oops' is not name or name=value",
    ]


def test_a_missing_list_directory_is_no_modules(tmp_path: Path) -> None:
    assert init.read_module_lists(tmp_path / "absent") == ([], [])


def test_the_shipped_module_list_parses() -> None:
    requests, errors = init.read_module_lists(REPO / "rootfs-overlay" / "etc" / "modules.d")
    assert errors == []
    assert {"wireguard", "sch_cake", "nf_tables", "bridge", "8021q"} <= {r.name for r in requests}


DEP = """\
kernel/net/wireguard/wireguard.ko: kernel/net/ipv4/udp_tunnel.ko kernel/lib/libchacha.ko.xz
kernel/net/ipv4/udp_tunnel.ko:
kernel/lib/libchacha.ko.xz:
kernel/net/sched/sch_cake.ko:
"""


def test_dependency_order_puts_dependencies_first_once() -> None:
    deps = init.parse_modules_dep(DEP)
    assert deps["libchacha"] == ("kernel/lib/libchacha.ko.xz", ())
    order = init.dependency_order(["wireguard", "udp-tunnel", "builtin_thing", "sch_cake"], deps)
    assert order == ["udp_tunnel", "libchacha", "wireguard", "builtin_thing", "sch_cake"]


def test_dependency_cycles_do_not_hang() -> None:
    deps = {"a": ("a.ko", ("b",)), "b": ("b.ko", ("a",))}
    assert init.dependency_order(["a"], deps) == ["b", "a"]


def _module_tree(root: Path) -> Path:
    tree = root / "lib" / "modules" / "6.1.0-test"
    for rel in ("kernel/net/wireguard/wireguard.ko", "kernel/net/ipv4/udp_tunnel.ko",
                "kernel/lib/libchacha.ko.xz", "kernel/net/sched/sch_cake.ko"):  # fmt: skip
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"\x7fELF")
    return tree


def test_insmod_path_loads_dependencies_first_with_params(tmp_path: Path) -> None:
    tree = _module_tree(tmp_path)
    (tree / "modules.dep").write_text(DEP)
    sys_module = tmp_path / "sys_module"
    (sys_module / "udp_tunnel").mkdir(parents=True)  # already loaded
    calls: list[tuple[str, str]] = []

    def insmod(path: Path, params: str) -> None:
        calls.append((path.name, params))
        if path.name == "sch_cake.ko":
            raise OSError(errno.ENOEXEC, "Exec format error")

    requests = [ModuleRequest("wireguard", ("debug=1",), "l:1"), ModuleRequest("sch_cake", (), "")]
    outcomes = init.load_modules(requests, tree, sys_module, modprobe=None, insmod=insmod)
    assert calls == [("libchacha.ko.xz", ""), ("wireguard.ko", "debug=1"), ("sch_cake.ko", "")]
    assert outcomes[:3] == [
        ModuleOutcome("udp_tunnel", "present"),
        ModuleOutcome("libchacha", "loaded"),
        ModuleOutcome("wireguard", "loaded"),
    ]
    assert outcomes[3].status == "failed"
    assert "Exec format error" in outcomes[3].detail


def test_insmod_path_without_modules_dep_trusts_the_listed_order(tmp_path: Path) -> None:
    tree = _module_tree(tmp_path)
    calls: list[str] = []

    def insmod(path: Path, params: str) -> None:
        calls.append(path.name)
        if path.name == "udp_tunnel.ko":
            raise OSError(errno.EEXIST, "File exists")

    requests = [ModuleRequest(n, (), "") for n in ("sch_cake", "udp_tunnel", "wireguard", "nope")]
    outcomes = init.load_modules(requests, tree, tmp_path / "none", modprobe=None, insmod=insmod)
    assert calls == ["sch_cake.ko", "udp_tunnel.ko", "wireguard.ko"]
    assert [o.status for o in outcomes] == ["loaded", "present", "loaded", "failed"]
    assert outcomes[3].detail == f"no nope.ko under {tree}"


def _fake_modprobe(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "calls"
    modprobe = tmp_path / "modprobe"
    modprobe.write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n'
        'case " $* " in *" broken "*) echo "modprobe: FATAL: Module broken not found" >&2; '
        "exit 1;; esac\n"
    )
    modprobe.chmod(0o755)
    return str(modprobe), log


def test_modprobe_path_loads_parameterless_modules_in_one_call(tmp_path: Path) -> None:
    modprobe, log = _fake_modprobe(tmp_path)
    sys_module = tmp_path / "sys_module"
    (sys_module / "bridge").mkdir(parents=True)
    requests = [ModuleRequest(n, p, "") for n, p in
                (("bridge", ()), ("veth", ()), ("mac80211-hwsim", ("radios=2",)),
                 ("sch_cake", ()))]  # fmt: skip
    outcomes = init.load_modules(requests, tmp_path, sys_module, modprobe=modprobe)
    assert log.read_text().splitlines() == ["-a veth sch_cake", "mac80211-hwsim radios=2"]
    assert outcomes == [
        ModuleOutcome("bridge", "present"),
        ModuleOutcome("veth", "loaded"),
        ModuleOutcome("mac80211_hwsim", "loaded"),
        ModuleOutcome("sch_cake", "loaded"),
    ]


def test_modprobe_path_names_the_module_that_failed(tmp_path: Path) -> None:
    modprobe, log = _fake_modprobe(tmp_path)
    requests = [ModuleRequest(n, (), "") for n in ("veth", "broken")]
    outcomes = init.load_modules(requests, tmp_path, tmp_path / "none", modprobe=modprobe)
    assert log.read_text().splitlines() == ["-a veth broken", "veth", "broken"]
    assert outcomes == [
        ModuleOutcome("veth", "loaded"),
        ModuleOutcome("broken", "failed", "modprobe: FATAL: Module broken not found"),
    ]


def test_module_names_from_paths() -> None:
    assert init.module_name_of("kernel/drivers/net/virtio-net.ko.zst") == "virtio_net"
    assert init.module_name_of("x/8021q.ko") == "8021q"


# ---------------------------------------------------------------- mounts


def test_mount_points_undo_octal_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:20 / /proc rw,nosuid - proc proc rw\n"
        "40 28 0:33 / /mnt/with\\040space rw - tmpfs tmpfs rw\n"
    )
    assert init.mount_points(info) == {"/proc", "/mnt/with space"}
    assert init.mount_points(tmp_path / "absent") == set()


@pytest.mark.skipif(os.geteuid() != 0, reason="mount(2) needs root")
def test_early_mounts_mount_once_and_report_failures(tmp_path: Path) -> None:
    target = tmp_path / "run"
    mounts = [
        init.Mount("tmpfs", str(target), "tmpfs", init.MS_NOSUID, "mode=0755,size=1m"),
        init.Mount("nonsense", str(tmp_path / "bad"), "no-such-fs"),
    ]
    try:
        failures = init.early_mounts(mounts)
        assert failures == [f"mount no-such-fs on {tmp_path / 'bad'}: No such device"]
        assert init.is_mountpoint(str(target))
        assert init.early_mounts(mounts[:1]) == []  # already mounted: not stacked a second time
        stacked = [p for p in Path("/proc/self/mountinfo").read_text().split() if p == str(target)]
        assert len(stacked) == 1
    finally:
        while init.is_mountpoint(str(target)):
            init.umount(str(target))


# ---------------------------------------------------------------- data partition


@pytest.mark.skipif(shutil.which("mkfs.ext4") is None, reason="needs e2fsprogs")
def test_the_data_partition_is_found_by_its_ext4_label(tmp_path: Path) -> None:
    dev, block = tmp_path / "dev", tmp_path / "sys_class_block"
    dev.mkdir()
    block.mkdir()
    for name, label in (("vda", "other"), ("vdb", init.DATA_LABEL)):
        image = dev / name
        image.write_bytes(b"")
        os.truncate(image, 8 * 1024 * 1024)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(image)], check=True)
        (block / name).mkdir()
    (dev / "vdc").write_bytes(b"\0" * 4096)  # no filesystem
    (block / "vdc").mkdir()
    (block / "vdd").mkdir()  # a device node that does not exist
    assert init.find_labelled(init.DATA_LABEL, block, dev) == dev / "vdb"
    assert init.find_labelled("absent", block, dev) is None
    assert init.ext_label((dev / "vda").read_bytes()[:2048]) == "other"
    assert init.ext_label(b"\0" * 2048) is None
    assert init.ext_label(b"short") is None


# ---------------------------------------------------------------- hostname, seed


def test_boot_hostname_falls_back_when_missing_or_invalid(tmp_path: Path) -> None:
    path = tmp_path / "hostname"
    assert init.boot_hostname(path) == init.DEFAULT_HOSTNAME
    path.write_text("gw-1.lan\n")
    assert init.boot_hostname(path) == "gw-1.lan"
    path.write_text("bad name with spaces\n")
    assert init.boot_hostname(path) == init.DEFAULT_HOSTNAME


def test_seed_is_restored_then_replaced_at_once(tmp_path: Path) -> None:
    seed = tmp_path / "random-seed"
    assert init.restore_seed(seed) is False  # first boot: nothing to restore, one is written
    first = seed.read_bytes()
    assert len(first) == init.SEED_BYTES
    assert seed.stat().st_mode & 0o777 == 0o600
    assert init.restore_seed(seed) is True
    assert seed.read_bytes() != first  # never the same seed on two boots
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random-seed"]  # no .tmp left


def test_seed_restore_mixes_the_saved_bytes_into_the_pool(tmp_path: Path) -> None:
    seed, pool = tmp_path / "seed", tmp_path / "pool"
    seed.write_bytes(b"S" * 512)
    pool.write_bytes(b"")
    assert init.restore_seed(seed, urandom=pool) is True
    assert pool.read_bytes() == b"S" * 512  # what was written to the pool
    assert seed.read_bytes() == b"S" * 512  # re-read from this fake pool


# ---------------------------------------------------------------- processes, watchdog


def test_descendants_include_grandchildren() -> None:
    with subprocess.Popen(
        ["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None
        grandchild = int(child.stdout.readline())
        try:
            found = init.descendants(os.getpid())
            assert child.pid in found
            assert grandchild in found
            assert found.index(child.pid) < found.index(grandchild)
        finally:
            init.signal_all([grandchild, child.pid], signal.SIGKILL)


def test_watchdog_is_fed_only_while_the_loop_makes_progress() -> None:
    fed: list[float] = []
    dog = init.Watchdog(lambda: fed.append(0.0), stall_s=20.0, interval_s=5.0)
    assert dog.kick(0.0) is False  # no progress reported yet
    dog.progress(1.0)
    assert dog.kick(1.0) is True
    assert dog.next_deadline(2.0) == 6.0
    assert dog.kick(21.0) is True  # 20 s after progress: still within the limit
    assert dog.kick(21.5) is False  # stalled: let the hardware reset the board
    dog.progress(22.0)
    assert dog.kick(22.0) is True
    assert len(fed) == 3


def test_a_board_without_a_watchdog_feeds_nothing(tmp_path: Path) -> None:
    dog = init.Watchdog.open(str(tmp_path / "no-watchdog"))
    dog.progress(0.0)
    assert dog.present is False
    assert dog.kick(0.0) is False


def test_watchdog_writes_to_the_device(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    dog = init.Watchdog.open(str(device))
    dog.progress(0.0)
    assert dog.kick(0.0) and dog.kick(5.0)
    assert device.read_bytes() == b"\0\0"


# ---------------------------------------------------------------- pid1.run in a child process

PID1_HARNESS = """
import asyncio, os, signal, subprocess, sys
from oxwrtd import pid1
from oxwrtd.shell.init import Action

pid1.TERM_GRACE_S = 0.5

def power(action):
    print("POWER", action.value, flush=True)
    os._exit(0)

async def main(boot):
    async def hook():
        print("HOOK first-registered", flush=True)
    async def hook2():
        print("HOOK second-registered", flush=True)
    boot.on_shutdown(hook)
    boot.on_shutdown(hook2)
{body}

pid1.run(main, as_pid1=False, boot_steps=lambda console: False, power=power)
"""


def run_pid1(body: str, send: signal.Signals | None = None) -> tuple[int, list[str]]:
    script = PID1_HARNESS.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as child:  # fmt: skip
        assert child.stdout is not None
        lines: list[str] = []
        try:
            for line in child.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("MAIN ready") and send is not None:
                    child.send_signal(send)
            return child.wait(30), lines
        finally:
            if child.poll() is None:
                child.kill()


def test_sigterm_runs_hooks_newest_first_then_reboots() -> None:
    rc, lines = run_pid1(
        """
        print("MAIN ready", flush=True)
        await boot.stopping.wait()
        """,
        send=signal.SIGTERM,
    )
    assert rc == 0
    assert "oxwrtd: shutdown requested: reboot" in lines
    hooks = [line for line in lines if line.startswith("HOOK")]
    assert hooks == ["HOOK second-registered", "HOOK first-registered"]
    assert lines[-1] == "POWER reboot"


@pytest.mark.parametrize(
    ("sig", "action"),
    [
        (signal.SIGPWR, "poweroff"),
        (signal.SIGUSR2, "poweroff"),
        (signal.SIGUSR1, "halt"),
        (signal.SIGINT, "reboot"),
    ],
)
def test_each_shutdown_signal_maps_to_its_action(sig: signal.Signals, action: str) -> None:
    rc, lines = run_pid1(
        """
        print("MAIN ready", flush=True)
        await boot.stopping.wait()
        """,
        send=sig,
    )
    assert rc == 0
    assert lines[-1] == f"POWER {action}"


def test_an_exception_in_main_is_logged_and_becomes_a_reboot() -> None:
    rc, lines = run_pid1('raise RuntimeError("the daemon broke")')
    assert rc == 0  # exited through power(), not through the exception
    assert "oxwrtd: PID 1 failed, rebooting:" in lines
    assert "oxwrtd: RuntimeError: the daemon broke" in lines
    assert lines[-1] == "POWER reboot"


def test_main_returning_on_its_own_is_a_reboot() -> None:
    _, lines = run_pid1("return")
    assert "oxwrtd: main loop returned without a shutdown request: rebooting" in lines
    assert lines[-1] == "POWER reboot"


def test_orphans_are_reaped_and_stubborn_processes_killed_at_shutdown() -> None:
    rc, lines = run_pid1(
        """
        # an orphan: the shell exits at once, `sleep` is re-parented to us (a subreaper)
        out = subprocess.run(["sh", "-c", "sleep 0.3 >/dev/null & echo $!"],
                             capture_output=True, text=True).stdout
        orphan = int(out)
        print("ORPHAN ppid", open(f"/proc/{orphan}/stat").read().rsplit(")", 1)[1].split()[1]
              == str(os.getpid()), flush=True)
        await asyncio.sleep(1.0)
        print("ORPHAN gone", not os.path.exists(f"/proc/{orphan}"), flush=True)
        # a process that ignores SIGTERM must still be gone before power-off
        stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        await asyncio.sleep(0.5)
        print("STUBBORN pid", stubborn.pid, flush=True)
        boot.request(Action.POWEROFF)
        """
    )
    assert rc == 0, lines
    assert "ORPHAN ppid True" in lines
    assert "ORPHAN gone True" in lines
    stubborn = int(next(line for line in lines if line.startswith("STUBBORN pid")).split()[-1])
    assert "oxwrtd: sending SIGTERM to 1 processes" in lines, lines
    assert "oxwrtd: sending SIGKILL to 1 processes" in lines, lines
    assert lines[-1] == "POWER poweroff"
    deadline = time.monotonic() + 5
    while Path(f"/proc/{stubborn}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{stubborn}").exists()


def test_outside_pid1_the_defaults_leave_the_machine_alone() -> None:
    hostname = os.uname().nodename
    argv = [sys.executable, "-m", "oxwrtd.pid1", "--selftest", "--", "sleep", "60"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as child:
        assert child.stdout is not None
        lines: list[str] = []
        try:
            for line in child.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("oxwrtd: pid1 ready"):
                    time.sleep(0.3)  # let it start `sleep`
                    child.send_signal(signal.SIGTERM)
            assert child.wait(30) == 0
        finally:
            if child.poll() is None:
                child.kill()
    assert (
        lines[0] == "oxwrtd: not PID 1: the machine is left as it is (no mounts, modules, hostname)"
    )
    assert "oxwrtd: sending SIGTERM to 1 processes" in lines  # the self-test's service
    assert lines[-1] == "oxwrtd: not PID 1: exiting instead of reboot"
    assert os.uname().nodename == hostname
