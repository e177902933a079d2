"""Parent side of the sandbox: validate a service's security settings, prepare its cgroup, and
launch it through `sandbox_exec.py` (the child side, which does the namespace work).

`spawn` returns once the service's execve has happened (or failed), with its PID as seen from the
daemon. The launcher process it starts is the daemon's direct child and exits at once; the
service itself is re-parented to the daemon (PID 1 or child subreaper), whose `Reaper` reaps both.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import marshal
import os
import re
import signal
import sys
from pathlib import Path
from typing import Final

import msgspec

from schema.config import Service
from schema.errors import ConfigIssue

EXEC_PATH: Final = Path(__file__).with_name("sandbox_exec.py")
# Upstream's deny list (container.rs), each returning EPERM; `seccomp_allow` removes entries.
SECCOMP_DENY: Final = (
    "ptrace", "mount", "umount2", "pivot_root", "setns", "unshare",
    "init_module", "finit_module", "delete_module",
    "bpf", "keyctl", "add_key", "request_key", "kexec_load", "reboot",
    "swapon", "swapoff", "userfaultfd", "perf_event_open", "syslog", "acct", "quotactl",
)  # fmt: skip
# <linux/capability.h>, CAP_ prefix dropped (0 .. CAP_CHECKPOINT_RESTORE = 40).
CAPABILITIES: Final = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
IFNAMSIZ = 15  # usable bytes of a Linux interface name
BASE_ENV_PATH = "/usr/bin:/bin"
LAUNCHER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"  # the launcher runs `ip`
SPAWN_TIMEOUT_S = 10.0
CPU_MAX = re.compile(r"^(max|[1-9][0-9]*)( [1-9][0-9]*)?$")
LIMIT_CONTROLLER: Final = {"memory_max": "memory", "cpu_max": "cpu", "pids_max": "pids"}


def _library_dirs(*modules: str) -> list[str]:
    """Where the launcher's libraries live, so it can start without `site`."""
    dirs: list[str] = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"the sandbox launcher needs the {name!r} module")
        found = str(Path(spec.origin).parent)
        if found not in dirs:
            dirs.append(found)
    return dirs


LIBRARY_DIRS: Final = _library_dirs("prctl", "_prctl", "seccomp")


class SpawnError(Exception):
    """The sandbox could not be set up or the entrypoint not executed; the text says which step.
    `launcher_pid` is the launcher process, if one was started (the caller's reaper reaps it)."""

    def __init__(self, message: str, launcher_pid: int | None = None) -> None:
        super().__init__(message)
        self.launcher_pid = launcher_pid


class Launched(msgspec.Struct, frozen=True):
    pid: int
    launcher_pid: int
    log_fd: int  # read end of the service's stdout+stderr pipe; the caller owns it
    warnings: list[str]


def host_veth_name(service: str) -> str:
    return f"veth-{service}"[:IFNAMSIZ]


def normalize_cap(name: str) -> str:
    upper = name.upper()
    return upper.removeprefix("CAP_")


def check_services(services: list[Service]) -> list[ConfigIssue]:
    """What the sandbox itself cannot honour: unknown capability or syscall names, relative
    paths, bad cpu.max syntax, host veth names that collide after truncation to 15 bytes."""
    issues: list[ConfigIssue] = []
    veth_owner: dict[str, str] = {}
    for i, svc in enumerate(services):
        at: tuple[str | int, ...] = ("services", i)
        sec = svc.security
        for j, cap in enumerate(sec.caps):
            if normalize_cap(cap) not in CAPABILITIES:
                issues.append(
                    ConfigIssue(
                        path=(*at, "security", "caps", j),
                        message=f"unknown capability {cap!r} (expected a name such as NET_ADMIN)",
                    )
                )
        for j, name in enumerate(sec.seccomp_allow):
            if name not in SECCOMP_DENY:
                issues.append(
                    ConfigIssue(
                        path=(*at, "security", "seccomp_allow", j),
                        message=f"{name!r} is not on the seccomp deny list "
                        f"({', '.join(SECCOMP_DENY)})",
                    )
                )
        if not svc.rootfs.startswith("/"):
            issues.append(ConfigIssue(path=(*at, "rootfs"), message="must be an absolute path"))
        if not svc.entrypoint or not svc.entrypoint[0]:
            issues.append(ConfigIssue(path=(*at, "entrypoint"), message="must name a program"))
        for j, bind in enumerate(svc.binds):
            if not bind.target.startswith("/"):
                issues.append(
                    ConfigIssue(
                        path=(*at, "binds", j, "target"), message="must be an absolute path"
                    )
                )
            if not bind.source.startswith("/"):
                issues.append(
                    ConfigIssue(
                        path=(*at, "binds", j, "source"), message="must be an absolute path"
                    )
                )
        if svc.cpu_max is not None and not CPU_MAX.match(svc.cpu_max):
            issues.append(
                ConfigIssue(
                    path=(*at, "cpu_max"),
                    message=f"{svc.cpu_max!r} is not cgroup v2 cpu.max syntax "
                    '("QUOTA PERIOD" or "max PERIOD", microseconds)',
                )
            )
        if svc.veth is not None:
            host_if = host_veth_name(svc.name)
            other = veth_owner.setdefault(host_if, svc.name)
            if other != svc.name:
                issues.append(
                    ConfigIssue(
                        path=(*at, "name"),
                        message=f"host interface {host_if!r} would also be used by service "
                        f"{other!r} (names are cut to {IFNAMSIZ} bytes)",
                    )
                )
    return issues


class Cgroups:
    """Service leaves under `base` in the cgroup v2 hierarchy, and which limits it can enforce."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = _v2_mount_of(base)
        self.controllers = _available_controllers(self.root) if self.root else set()

    def unsupported(self, svc: Service) -> list[str]:
        """Limits `svc` asks for that this kernel's cgroup v2 cannot enforce."""
        wanted = [key for key in LIMIT_CONTROLLER if getattr(svc, key) is not None]
        return [key for key in wanted if LIMIT_CONTROLLER[key] not in self.controllers]

    def reason(self) -> str:
        if self.root is None:
            return f"no cgroup v2 hierarchy holds {self.base}"
        have = ", ".join(sorted(self.controllers)) or "none"
        return f"cgroup v2 at {self.root} offers controllers: {have}"

    def prepare(self, svc: Service) -> Path | None:
        """Create the leaf, enable what can be enabled, write limits; returns cgroup.procs."""
        if self.root is None:
            return None
        leaf = self.base / svc.name
        leaf.mkdir(parents=True, exist_ok=True)
        wanted = sorted({"memory", "cpu", "pids"} & self.controllers)
        if wanted:
            node = self.root
            for part in leaf.relative_to(self.root).parts[:-1]:
                _write(node / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
                node = node / part
            _write(node / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        limits = {"memory.max": svc.memory_max, "cpu.max": svc.cpu_max, "pids.max": svc.pids_max}
        for file, value in limits.items():
            controller = file.split(".", 1)[0]
            if controller in self.controllers:
                _write(leaf / file, "max" if value is None else str(value))
        return leaf / "cgroup.procs"

    def kill(self, name: str) -> None:
        """SIGKILL whatever is left in the leaf (children that outlived the service's main
        process); `cgroup.kill` exists from Linux 5.14."""
        if self.root is None:
            return
        with contextlib.suppress(FileNotFoundError):
            (self.base / name / "cgroup.kill").write_text("1")

    def remove(self, name: str) -> None:
        """Remove the leaf; EBUSY while killed processes are still being reaped."""
        self.kill(name)
        with contextlib.suppress(FileNotFoundError):
            (self.base / name).rmdir()


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise SpawnError(f"writing {value!r} to {path}: {exc.strerror}") from exc


def _v2_mount_of(path: Path) -> Path | None:
    best: Path | None = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                mnt = Path(fields[1])
                if (path == mnt or mnt in path.parents) and (
                    best is None or len(mnt.parts) > len(best.parts)
                ):
                    best = mnt
    return best


def _available_controllers(root: Path) -> set[str]:
    try:
        return set((root / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def service_env(svc: Service) -> dict[str, str]:
    return {"HOME": "/", "PATH": BASE_ENV_PATH, "HOSTNAME": svc.name, **svc.env}


def build_plan(
    svc: Service, *, staging: Path, cgroup_procs: Path | None, resolv_conf: Path | None
) -> dict[str, object]:
    sec = svc.security
    binds = [
        {"source": b.source, "target": b.target.rstrip("/") or "/", "readonly": b.readonly}
        for b in svc.binds
    ]
    if resolv_conf is not None:
        binds.append({"source": str(resolv_conf), "target": "/etc/resolv.conf", "readonly": True})
    veth = None
    if svc.net_mode == "isolated" and svc.veth is not None:
        veth = {
            "host_if": host_veth_name(svc.name),
            "host_ip": svc.veth.host_ip,
            "peer_ip": svc.veth.peer_ip,
            "prefix": svc.veth.prefix,
        }
    return {
        "hostname": svc.name,
        "rootfs": svc.rootfs,
        "staging": str(staging),
        "argv": list(svc.entrypoint),
        "env": service_env(svc),
        "isolated": svc.net_mode == "isolated",
        "veth": veth,
        "binds": binds,
        "userns": sec.user_namespace,
        # A user namespace gets its own PID namespace too: a root mapped to nobody must not see
        # (or signal) the host's processes.
        "pidns": sec.pid_namespace or sec.user_namespace,
        "caps": [normalize_cap(c) for c in sec.caps],
        "no_new_privs": sec.no_new_privs,
        "seccomp_deny": (
            [n for n in SECCOMP_DENY if n not in sec.seccomp_allow] if sec.seccomp else []
        ),
        "landlock": sec.landlock,
        "cgroup_procs": str(cgroup_procs) if cgroup_procs else None,
        "sys_path": LIBRARY_DIRS,
    }


async def spawn(plan: dict[str, object], timeout: float = SPAWN_TIMEOUT_S) -> Launched:
    """Run the launcher and wait for the service's execve. The launcher (a direct child) is left
    for the daemon's reaper; on failure the service process, if any, has already exited."""
    status_r, status_w = map(_above_stdio, os.pipe())
    log_r, log_w = map(_above_stdio, os.pipe())
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, log_w, 1),
            (os.POSIX_SPAWN_DUP2, log_w, 2),
            (os.POSIX_SPAWN_DUP2, status_w, 3),
        ]
        # -S: no site processing (a third of the launcher's start-up); the two libraries it needs
        # are found through `sys_path` in the plan instead.
        argv = [sys.executable, "-I", "-S", str(EXEC_PATH), marshal.dumps(plan).hex()]
        launcher = os.posix_spawn(
            sys.executable, argv, {"PATH": LAUNCHER_PATH}, file_actions=actions
        )
    except OSError as exc:
        os.close(log_r)
        os.close(status_r)
        raise SpawnError(f"starting the launcher: {exc.strerror}") from exc
    finally:
        os.close(status_w)
        os.close(log_w)
    try:
        raw = await asyncio.wait_for(_read_to_eof(status_r), timeout)
    except TimeoutError as exc:
        os.close(log_r)
        with contextlib.suppress(ProcessLookupError):
            os.kill(launcher, signal.SIGKILL)
        raise SpawnError(f"sandbox setup took longer than {timeout} s", launcher) from exc
    pid, warnings, errors = None, [], []
    for line in raw.decode(errors="replace").splitlines():
        kind, _, text = line.partition(" ")
        if kind == "pid":
            pid = int(text)
        elif kind == "warn":
            warnings.append(text)
        elif kind == "error":
            errors.append(text)
    if errors or pid is None:
        os.close(log_r)
        reason = "; ".join(errors) or "the launcher exited without starting the service"
        raise SpawnError(reason, launcher)
    return Launched(pid=pid, launcher_pid=launcher, log_fd=log_r, warnings=warnings)


def _above_stdio(fd: int) -> int:
    """Keep pipe ends off fds 0-3, which the spawn file actions overwrite."""
    if fd > 3:
        return fd
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


async def _read_to_eof(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await reader.read()
    finally:
        transport.close()
