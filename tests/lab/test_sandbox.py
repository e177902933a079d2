"""Sandboxed services on the real kernel (lab tier: root, a network namespace per test).

A probe program (probe.py) runs as the service and reports its own view; the supervisor runs in
this thread while it is inside a network namespace the test created, so every veth host end lives
there and disappears with it. Every process a test starts is killed by PID in teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from oxwrtd.core.supervise import (
    BACKOFF_INITIAL_S,
    ServiceExited,
    ServiceLimitsUnsupported,
    ServiceSpawnFailed,
    ServiceStarted,
)
from oxwrtd.shell.reaper import ExitStatus, Reaper
from oxwrtd.shell.sandbox import CAPABILITIES, check_services
from oxwrtd.shell.supervisor import Supervisor
from schema.config import Bind, Security, Service, Veth

PROBE = Path(__file__).with_name("probe.py")
CLONE_NEWNET = 0x40000000
T = TypeVar("T")

lab = pytest.mark.lab
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or platform.machine() != "x86_64", reason="needs root on x86_64"
)


def cap_mask(names: list[str]) -> str:
    return f"{sum(1 << CAPABILITIES.index(n) for n in names):016x}"


PROBE_INSIDE = "/run/oxwrt-probe"  # the sandbox's /tmp and /run are private: bind the probe in


def probe_service(name: str, writes: Sequence[str] = (), **kw: Any) -> Service:
    argv = ["/usr/bin/python3", "-I", f"{PROBE_INSIDE}/{PROBE.name}", ",".join(writes)]
    kw.setdefault("net_mode", "host")
    kw["binds"] = [Bind(source=str(PROBE.parent), target=PROBE_INSIDE), *kw.get("binds", [])]
    return Service(name=name, rootfs="/", entrypoint=argv, **kw)


# ---------------------------------------------------------------- harness


@pytest.fixture
def netns() -> Iterator[str]:
    """Move this thread into a fresh network namespace for the test, and back afterwards."""
    name = f"ox7-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        assert libc.setns(target, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        yield name
    finally:
        assert libc.setns(home, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        os.close(home)
        os.close(target)
        subprocess.run(["ip", "netns", "del", name], check=True)


@pytest.fixture
def cgroup_base() -> Iterator[Path]:
    base = Path("/sys/fs/cgroup/unified") / f"ox7-{uuid.uuid4().hex[:8]}"
    yield base
    for leaf in base.glob("*/"):
        with contextlib.suppress(OSError):
            leaf.rmdir()
    with contextlib.suppress(OSError):
        base.rmdir()


def run(
    tmp_path: Path,
    scenario: Callable[[Supervisor], Awaitable[T]],
    *,
    grace_s: float = 1.0,
    cgroup_base: Path | None = None,
) -> T:
    # The state dir holds the staging roots; a root mapped to nobody (user namespace) must be
    # able to reach them, which pytest's 0700 tmp tree does not allow.
    state_dir = Path("/run") / f"ox7-{uuid.uuid4().hex[:8]}"

    async def main() -> T:
        sup = Supervisor(
            state_dir=state_dir,
            cgroup_base=cgroup_base or tmp_path / "no-cgroup",
            grace_s=grace_s,
        )
        await sup.start()
        try:
            return await scenario(sup)
        finally:
            await sup.close(timeout=grace_s + 3)
            started = {e.pid for e in sup.events if isinstance(e, ServiceStarted)}
            for pid in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.1)
            sup.reaper.sweep()

    try:
        return asyncio.run(main())
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


async def until(check: Callable[[], T | None], timeout: float = 15.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := check()) is None or value is False:
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)
    return value


async def probe_report(sup: Supervisor, name: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for line in sup.logs.ring(name).lines():
            if line.text.startswith("{"):
                return dict(json.loads(line.text))
            if line.text.startswith("oxwrtd: spawn failed"):
                raise AssertionError(line.text)
        return None

    return await until(find)


async def run_cmd(sup: Supervisor, argv: list[str]) -> int | None:
    """Run a helper command; its exit comes from the supervisor's reaper (the one waitpid)."""
    pid = os.posix_spawn(argv[0], argv, dict(os.environ))
    status = await asyncio.wait_for(sup.reaper.wait_for(pid), 10)
    return status.code


def zombies_of_this_process() -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                found.append(int(stat.parent.name))
    return found


# ---------------------------------------------------------------- the probe's view


@lab
@needs_root
def test_isolated_service_sees_only_its_own_world(tmp_path: Path, netns: str) -> None:
    data, ro = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    ro.mkdir()
    svc = probe_service(
        "probe-iso",
        writes=["/run/data/f", "/run/ro/f", "/tmp/f", "/dev/f", "/etc/f", "/var/tmp/f"],
        net_mode="isolated",
        veth=Veth(host_ip="10.77.0.1", peer_ip="10.77.0.2"),
        binds=[
            Bind(source=str(data), target="/run/data", readonly=False),
            Bind(source=str(ro), target="/run/ro"),
        ],
        env={"EXTRA": "1"},
        security=Security(pid_namespace=True),
    )

    async def scenario(sup: Supervisor) -> tuple[dict[str, Any], list[str], int | None]:
        sup.reconcile([svc])
        report = await probe_report(sup, "probe-iso")
        host_ifaces = [name for _, name in socket.if_nameindex()]
        ping = await run_cmd(sup, ["/usr/bin/ping", "-c1", "-W2", "10.77.0.2"])
        return report, host_ifaces, ping

    report, host_ifaces, ping = run(tmp_path, scenario)
    assert report["hostname"] == "probe-iso"
    assert report["ifaces"] == ["eth0", "lo"]
    assert "veth-probe-iso" in host_ifaces and ping == 0
    assert report["resolv"] == "nameserver 10.77.0.1\n"
    assert report["pid"] == 1
    assert report["env"] == {
        "HOME": "/",
        "PATH": "/usr/bin:/bin",
        "HOSTNAME": "probe-iso",
        "EXTRA": "1",
    }
    default_caps = cap_mask(["SETUID", "SETGID", "SETPCAP", "NET_BIND_SERVICE"])
    status = report["status"]
    assert status["CapBnd"] == status["CapEff"] == status["CapPrm"] == default_caps
    assert status["CapInh"] == status["CapAmb"] == "0" * 16
    assert (status["NoNewPrivs"], status["Seccomp"]) == ("1", "2")
    assert report["syscalls"] == dict.fromkeys(
        ("mount", "unshare", "ptrace", "bpf", "keyctl", "reboot"), "EPERM"
    )
    assert report["writes"] == {
        "/run/data/f": "ok",
        "/run/ro/f": "EROFS",
        "/tmp/f": "ok",
        "/dev/f": "EACCES",  # a writable tmpfs, but not on the Landlock allow list
        "/etc/f": "EROFS",
        "/var/tmp/f": "EROFS",
    }
    assert (data / "f").read_text() == "x"
    assert list(ro.iterdir()) == []


@lab
@needs_root
def test_seccomp_allow_lets_only_that_syscall_through(tmp_path: Path, netns: str) -> None:
    caps = ["SETUID", "SETGID", "SETPCAP", "NET_BIND_SERVICE", "SYS_ADMIN"]
    svc = probe_service(
        "probe-allow", security=Security(caps=caps, seccomp_allow=["unshare"], landlock=False)
    )

    async def scenario(sup: Supervisor) -> dict[str, Any]:
        sup.reconcile([svc])
        return await probe_report(sup, "probe-allow")

    report = run(tmp_path, scenario)
    assert report["status"]["CapBnd"] == cap_mask(caps)
    # SYS_ADMIN is kept, so only the filter can still refuse mount: it does; unshare passes.
    assert report["syscalls"]["unshare"] == "ok"
    assert {k: v for k, v in report["syscalls"].items() if k != "unshare"} == dict.fromkeys(
        ("mount", "ptrace", "bpf", "keyctl", "reboot"), "EPERM"
    )


@lab
@needs_root
def test_user_namespace_maps_root_to_nobody(tmp_path: Path, netns: str) -> None:
    svc = probe_service("probe-userns", writes=["/tmp/f"], security=Security(user_namespace=True))

    async def scenario(sup: Supervisor) -> dict[str, Any]:
        sup.reconcile([svc])
        return await probe_report(sup, "probe-userns")

    report = run(tmp_path, scenario)
    assert report["uid_map"] == ["0", "65534", "1"]
    assert report["pid"] == 1  # a user namespace always comes with its own PID namespace
    assert report["writes"] == {"/tmp/f": "ok"}
    assert report["status"]["Seccomp"] == "2"


# ---------------------------------------------------------------- lifecycle on real processes


@lab
@needs_root
def test_kill_9_is_followed_by_a_restart_after_backoff(tmp_path: Path, netns: str) -> None:
    svc = Service(name="sleeper", rootfs="/", entrypoint=["/bin/sleep", "3600"], net_mode="host")

    async def scenario(sup: Supervisor) -> None:
        sup.reconcile([svc])
        first = await until(lambda: sup.pid_of("sleeper"))
        os.kill(first, signal.SIGKILL)
        second = await until(lambda: (p := sup.pid_of("sleeper")) not in (None, first) and p)
        (exited,) = [e for e in sup.events if isinstance(e, ServiceExited)]
        started = [e for e in sup.events if isinstance(e, ServiceStarted)]
        assert (exited.pid, exited.signal, exited.code) == (first, signal.SIGKILL, None)
        assert [s.pid for s in started] == [first, second]
        assert started[1].at - exited.at >= BACKOFF_INITIAL_S
        await asyncio.sleep(0.1)
        assert zombies_of_this_process() == []

    run(tmp_path, scenario)


@lab
@needs_root
def test_slow_exit_is_killed_after_grace_with_no_duplicate(tmp_path: Path, netns: str) -> None:
    stubborn = "trap '' TERM; while :; do sleep 0.05; done"
    svc = Service(
        name="stubborn", rootfs="/", entrypoint=["/bin/sh", "-c", stubborn], net_mode="host"
    )
    grace = 0.6

    async def scenario(sup: Supervisor) -> None:
        sup.reconcile([svc])
        old = await until(lambda: sup.pid_of("stubborn"))
        loop = asyncio.get_running_loop()
        asked = loop.time()
        sup.restart("stubborn")
        await asyncio.sleep(grace / 2)
        assert sup.phase_of("stubborn").value == "stopping"  # type: ignore[union-attr]
        assert sup.pid_of("stubborn") == old
        os.kill(old, 0)  # still alive: SIGTERM is ignored
        new = await until(lambda: (p := sup.pid_of("stubborn")) not in (None, old) and p)
        with pytest.raises(ProcessLookupError):
            os.kill(old, 0)
        (exit_event,) = [e for e in sup.events if isinstance(e, ServiceExited)]
        assert exit_event.pid == old and exit_event.signal == signal.SIGKILL
        assert exit_event.at - asked >= grace
        starts = [e for e in sup.events if isinstance(e, ServiceStarted)]
        assert [s.pid for s in starts] == [old, new]
        assert starts[1].at >= exit_event.at
        await asyncio.sleep(0.2)  # the orphaned `sleep` children are reaped too
        assert zombies_of_this_process() == []

    run(tmp_path, scenario, grace_s=grace)


@lab
@needs_root
def test_reload_keeps_unchanged_restarts_changed_removes_removed(
    tmp_path: Path, netns: str, cgroup_base: Path
) -> None:
    keep = Service(name="keep", rootfs="/", entrypoint=["/bin/sleep", "3600"], net_mode="host")
    limited = Service(
        name="limited",
        rootfs="/",
        entrypoint=["/bin/sleep", "3600"],
        net_mode="host",
        memory_max=64 << 20,
        cpu_max="50000 100000",
        pids_max=16,
    )

    async def scenario(sup: Supervisor) -> None:
        sup.reconcile([keep, limited])
        keep_pid = await until(lambda: sup.pid_of("keep"))
        limited_pid = await until(lambda: sup.pid_of("limited"))
        leaf = cgroup_base / "limited"
        # The launcher joined the leaf before forking, so the service was never outside it.
        assert (leaf / "cgroup.procs").read_text().split() == [str(limited_pid)]
        (unsupported,) = [e for e in sup.events if isinstance(e, ServiceLimitsUnsupported)]
        assert unsupported.limits == ["memory_max", "cpu_max", "pids_max"]
        line = next(s for s in sup.status() if s.name == "limited")
        assert line.last_log is not None and "limits not enforced" in line.last_log
        assert line.unenforced == ["memory_max", "cpu_max", "pids_max"]

        sup.reconcile([keep, limited])
        await asyncio.sleep(0.3)
        assert (sup.pid_of("keep"), sup.pid_of("limited")) == (keep_pid, limited_pid)

        changed = Service(**{**_fields(limited), "entrypoint": ["/bin/sleep", "3601"]})
        sup.reconcile([keep, changed])
        await until(lambda: (p := sup.pid_of("limited")) not in (None, limited_pid) and p)
        assert sup.pid_of("keep") == keep_pid

        sup.reconcile([keep])
        await until(lambda: sup.core.names() == ["keep"])
        assert not leaf.exists()
        assert sup.pid_of("keep") == keep_pid

    run(tmp_path, scenario, cgroup_base=cgroup_base)


@lab
@needs_root
def test_children_do_not_outlive_the_service(tmp_path: Path, netns: str, cgroup_base: Path) -> None:
    svc = Service(
        name="forker",
        rootfs="/",
        entrypoint=["/bin/sh", "-c", "/bin/sleep 3600 & exec /bin/sleep 3601"],
        net_mode="host",
    )

    async def scenario(sup: Supervisor) -> None:
        sup.reconcile([svc])
        main = await until(lambda: sup.pid_of("forker"))
        procs = cgroup_base / "forker" / "cgroup.procs"
        members = await until(lambda: len(pids := procs.read_text().split()) == 2 and pids)
        (child,) = [int(p) for p in members if int(p) != main]
        os.kill(main, signal.SIGKILL)
        await until(lambda: (p := sup.pid_of("forker")) not in (None, main) and p)
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)  # killed with its service and reaped (no zombie either)

    run(tmp_path, scenario, cgroup_base=cgroup_base)


@lab
@needs_root
def test_spawn_failure_names_the_cause_and_backs_off(tmp_path: Path, netns: str) -> None:
    svc = Service(
        name="broken", rootfs=str(tmp_path / "missing"), entrypoint=["/x"], net_mode="host"
    )

    async def scenario(sup: Supervisor) -> None:
        sup.reconcile([svc])
        failed = await until(
            lambda: [e for e in sup.events if isinstance(e, ServiceSpawnFailed)] or None
        )
        assert str(tmp_path / "missing") in failed[0].reason
        assert sup.phase_of("broken").value in ("backoff", "starting")  # type: ignore[union-attr]
        assert zombies_of_this_process() == []

    run(tmp_path, scenario)


def test_reaper_reaps_orphans_and_keeps_their_status(tmp_path: Path) -> None:
    """Not privileged: a child subreaper needs no root. The orphan was never our child."""
    pid_file = tmp_path / "orphan"

    async def main() -> None:
        seen: list[int] = []

        def on_exit(status: ExitStatus) -> bool:
            seen.append(status.pid)
            return False

        reaper = Reaper(on_exit=on_exit)
        reaper.start()
        orphan = None
        try:
            script = f"/bin/sleep 0.2 & echo $! > {pid_file}"
            parent = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", script], {})
            status = await asyncio.wait_for(reaper.wait_for(parent), 10)
            assert (status.code, status.signal) == (0, None)
            orphan = int(pid_file.read_text())
            orphan_status = await until(lambda: reaper.claim(orphan))
            assert orphan_status.code == 0
            ran, output = await reaper.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
            assert (ran.code, output) == (3, b"out\nerr\n")
            assert seen == [parent, orphan, ran.pid]
            assert zombies_of_this_process() == []
        finally:
            reaper.stop()
            if orphan is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(orphan, signal.SIGKILL)

    asyncio.run(main())


# ---------------------------------------------------------------- validation (pure)


def test_unknown_capability_and_syscall_names_are_errors() -> None:
    svc = Service(
        name="x",
        rootfs="relative",
        entrypoint=["/bin/true"],
        veth=Veth(host_ip="10.0.0.1", peer_ip="10.0.0.2"),
        cpu_max="half",
        binds=[Bind(source="/a", target="b")],
        security=Security(caps=["NET_ADMN", "cap_net_raw"], seccomp_allow=["open", "bpf"]),
    )
    issues = {i.path: i.message for i in check_services([svc])}
    assert set(issues) == {
        ("services", 0, "security", "caps", 0),
        ("services", 0, "security", "seccomp_allow", 0),
        ("services", 0, "rootfs"),
        ("services", 0, "cpu_max"),
        ("services", 0, "binds", 0, "target"),
    }
    assert "NET_ADMN" in issues[("services", 0, "security", "caps", 0)]
    assert "deny list" in issues[("services", 0, "security", "seccomp_allow", 0)]


def test_truncated_host_veth_names_must_not_collide() -> None:
    veth = Veth(host_ip="10.0.0.1", peer_ip="10.0.0.2")
    a = Service(name="resolver-main1", rootfs="/", entrypoint=["/x"], veth=veth)
    b = Service(name="resolver-main2", rootfs="/", entrypoint=["/x"], veth=veth)
    (issue,) = check_services([a, b])
    assert issue.path == ("services", 1, "name") and "veth-resolver-" in issue.message


def _fields(svc: Service) -> dict[str, Any]:
    return {f: getattr(svc, f) for f in svc.__struct_fields__}
