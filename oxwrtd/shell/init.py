"""PID 1's building blocks: what the kernel leaves to init before the daemon can run.

Each function does one boot or shutdown duty and is safe to repeat: early mounts skip what is
mounted, module loading skips what is loaded, the data partition is mounted once. None of them
raises for a degraded machine (a missing module, no data disk): they report and the boot goes
on, because a PID 1 that gives up leaves a router unreachable. Paths are parameters so tests run
them against a temporary tree; the syscalls (mount, umount2, finit_module, reboot) go through
ctypes because the stdlib has none of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from schema.atomic import write_atomic

_libc = ctypes.CDLL(None, use_errno=True)
# Prototypes, so ctypes passes each argument at its C width (flags are unsigned long).
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.reboot.argtypes = [ctypes.c_int]

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


# ---------------------------------------------------------------- console


class Console:
    """PID 1's log: one line per message on the console (the UART on a router), and the same
    line into the kernel ring (/dev/kmsg) so `dmesg` shows it after the console scrolls away."""

    def __init__(self, stream: TextIO, kmsg: int | None = None) -> None:
        self.stream = stream
        self.kmsg = kmsg

    @classmethod
    def attach(cls, console: str = "/dev/console", kmsg: str = "/dev/kmsg") -> Console:
        """Put `console` on fds 0, 1 and 2 (children inherit it) and log there."""
        with contextlib.suppress(OSError):
            fd = os.open(console, os.O_RDWR | os.O_NOCTTY)
            for target in (0, 1, 2):
                os.dup2(fd, target)
            if fd > 2:
                os.close(fd)
        kmsg_fd = None
        with contextlib.suppress(OSError):
            kmsg_fd = os.open(kmsg, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        stream = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        return cls(stream, kmsg_fd)

    def exception(self, what: str) -> None:
        """`what` and the traceback being handled, at error priority."""
        self.log(f"{what}:\n{traceback.format_exc()}", level=3)

    def log(self, message: str, level: int = 6) -> None:
        """`level` is a syslog priority (3 error, 4 warning, 6 info)."""
        for line in message.splitlines() or [""]:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(f"oxwrtd: {line}\n")
                self.stream.flush()
            if self.kmsg is not None:
                with contextlib.suppress(OSError):
                    os.write(self.kmsg, f"<{level}>oxwrtd: {line}\n".encode()[:1000])


# ---------------------------------------------------------------- early mounts


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    fstype: str
    flags: int = 0
    data: str = ""


NOSUID_NODEV_NOEXEC = MS_NOSUID | MS_NODEV | MS_NOEXEC
# Order matters: each target lives on a filesystem mounted earlier in the list.
EARLY_MOUNTS = (
    Mount("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC),
    Mount("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC),
    Mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"),
    Mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"),
    Mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", NOSUID_NODEV_NOEXEC, "nsdelegate"),
    Mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=20%"),
    Mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=30%"),
)


def mount(m: Mount) -> None:
    if _libc.mount(m.source.encode(), m.target.encode(), m.fstype.encode(), m.flags,
                   m.data.encode() or None) != 0:  # fmt: skip
        raise _oserror(f"mount {m.fstype} on {m.target}")


def umount(target: str) -> None:
    if _libc.umount2(target.encode(), 0) != 0:
        raise _oserror(f"umount {target}")


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[str]:
    """Where something is mounted (field 5 of mountinfo, octal escapes undone); empty when
    /proc is not mounted yet, which is exactly when nothing else is either."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return set()
    return {_unescape(line.split()[4]) for line in lines if len(line.split()) > 4}


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def is_mountpoint(path: str) -> bool:
    """From mountinfo, not stat: under a 9p or overlay root, st_dev and st_ino of a directory
    say nothing reliable about mounts."""
    return os.path.normpath(path) in mount_points()


def early_mounts(
    mounts: Sequence[Mount] = EARLY_MOUNTS, mounted: Callable[[str], bool] = is_mountpoint
) -> list[str]:
    """Mount what is not mounted yet; returns one line per mount that failed (empty: all well).
    Checking first matters: proc, sysfs and tmpfs happily stack a second mount on the first."""
    failures = []
    for m in mounts:
        if mounted(m.target):
            continue
        try:
            Path(m.target).mkdir(mode=0o755, parents=True, exist_ok=True)
            mount(m)
        except OSError as exc:
            failures.append(exc.strerror or str(exc))  # "mount <fs> on <target>: <why>"
    return failures


# ---------------------------------------------------------------- kernel modules

MODULE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class ModuleRequest:
    name: str
    params: tuple[str, ...]
    origin: str  # "file:line", for error messages


@dataclass(frozen=True)
class ModuleOutcome:
    name: str
    status: str  # "loaded" | "present" | "failed"
    detail: str = ""


def canonical(name: str) -> str:
    """The kernel treats '-' and '_' in module names alike and reports '_'."""
    return name.replace("-", "_")


def read_module_lists(directory: Path) -> tuple[list[ModuleRequest], list[str]]:
    """Every `name [param=value ...]` line of the files in `directory`, files in name order
    (so 00-board loads before oxwrt), '#' comments and blank lines skipped. Returns the requests
    and one error per malformed line (naming file and line)."""
    requests: list[ModuleRequest] = []
    errors: list[str] = []
    if not directory.is_dir():
        return requests, errors
    for path in sorted(p for p in directory.iterdir() if p.is_file() and p.name[0] != "."):
        for number, raw in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            origin = f"{path}:{number}"
            if not MODULE_NAME.match(words[0]):
                errors.append(f"{origin}: {words[0]!r} is not a module name")
                continue
            if bad := [w for w in words[1:] if "=" not in w and not MODULE_NAME.match(w)]:
                errors.append(f"{origin}: parameter {bad[0]!r} is not name or name=value")
                continue
            requests.append(ModuleRequest(words[0], tuple(words[1:]), origin))
    return requests, errors


def parse_modules_dep(text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """modules.dep (`path: dep1 dep2`) as canonical name -> (path, dependency names)."""
    table: dict[str, tuple[str, tuple[str, ...]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            table[module_name_of(path)] = (path, tuple(module_name_of(d) for d in deps.split()))
    return table


def module_name_of(path: str) -> str:
    """kernel/net/wireguard/wireguard.ko.xz -> wireguard."""
    return canonical(re.sub(r"\.ko(\.(xz|gz|zst))?$", "", path.rsplit("/", 1)[-1]))


def dependency_order(
    names: Iterable[str], deps: Mapping[str, tuple[str, tuple[str, ...]]]
) -> list[str]:
    """`names` with their dependencies, each after everything it needs and each once; a name
    the table does not know keeps its listed place (it may be built in)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:  # a cycle in modules.dep cannot load anyway
            return
        visiting.add(name)
        for dep in deps.get(name, ("", ()))[1]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(canonical(name))
    return order


def _modprobe(modprobe: str, args: list[str]) -> tuple[bool, str]:
    done = subprocess.run([modprobe, *args], capture_output=True, text=True, check=False)
    return done.returncode == 0, done.stderr.strip()


_FINIT_MODULE = {"x86_64": 313, "aarch64": 273, "armv7l": 379, "mips": 4348, "mips64": 5307}


def finit_module(path: Path, params: str = "") -> None:
    """insmod without a binary: the kernel reads the file (and decompresses .ko.xz itself when
    built with MODULE_DECOMPRESS; flag 4 is MODULE_INIT_COMPRESSED_FILE)."""
    number = _FINIT_MODULE.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"finit_module: no syscall number for {platform.machine()}")
    flags = 4 if path.suffix in {".xz", ".gz", ".zst"} else 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        args = (ctypes.c_long(number), ctypes.c_int(fd), params.encode(), ctypes.c_int(flags))
        if _libc.syscall(*args) != 0:
            raise _oserror(f"finit_module {path.name}")
    finally:
        os.close(fd)


def load_modules(
    requests: Sequence[ModuleRequest],
    modules_dir: Path,
    sys_module: Path = Path("/sys/module"),
    modprobe: str | None = None,
    insmod: Callable[[Path, str], None] = finit_module,
) -> list[ModuleOutcome]:
    """Load each requested module once, dependencies first. With `modprobe` (a path), it
    resolves dependencies; without, modules.dep in `modules_dir` gives the order when present,
    else the listed order is trusted. Failures are reported, never raised."""
    outcomes: list[ModuleOutcome] = []
    params = {canonical(r.name): " ".join(r.params) for r in requests}
    if modprobe is not None:
        wanted = [r for r in requests if not (sys_module / canonical(r.name)).exists()]
        # One `modprobe -a` for every module without parameters: a process per module costs
        # ~0.2 s each under emulation or on a slow SoC. Only if it fails is each one retried
        # alone, to tell which failed and why.
        batch = [r.name for r in wanted if not r.params]
        batch_ok = not batch or _modprobe(modprobe, ["-a", *batch])[0]
        for request in requests:
            name = canonical(request.name)
            if request not in wanted:
                outcomes.append(ModuleOutcome(name, "present"))
                continue
            ok, detail = (
                (True, "")
                if batch_ok and not request.params
                else _modprobe(modprobe, [request.name, *request.params])
            )
            outcomes.append(ModuleOutcome(name, "loaded" if ok else "failed", detail))
        return outcomes
    dep_file = modules_dir / "modules.dep"
    deps = parse_modules_dep(dep_file.read_text()) if dep_file.exists() else {}
    if not deps:
        for ko in sorted(modules_dir.rglob("*.ko*")) if modules_dir.is_dir() else []:
            deps.setdefault(module_name_of(ko.name), (str(ko.relative_to(modules_dir)), ()))
    for name in dependency_order([r.name for r in requests], deps):
        if (sys_module / name).exists():
            outcomes.append(ModuleOutcome(name, "present"))
            continue
        if name not in deps:
            outcomes.append(ModuleOutcome(name, "failed", f"no {name}.ko under {modules_dir}"))
            continue
        try:
            insmod(modules_dir / deps[name][0], params.get(name, ""))
        except OSError as exc:
            if exc.errno == errno.EEXIST:  # loaded meanwhile, or built in
                outcomes.append(ModuleOutcome(name, "present"))
            else:
                outcomes.append(ModuleOutcome(name, "failed", str(exc)))
            continue
        outcomes.append(ModuleOutcome(name, "loaded"))
    return outcomes


# ---------------------------------------------------------------- persistent data partition

DATA_LABEL = "oxwrt-data"  # the filesystem label of the data partition (mkfs.ext4 -L)
DATA_MOUNT = "/data"
# (directory on the data partition, where it appears) - config and the journal survive reboot
DATA_BINDS = (("etc/oxwrt", "/etc/oxwrt"), ("state", "/var/lib/oxwrt"))
EXT_MAGIC = 0xEF53
_SUPERBLOCK = 1024


def ext_label(head: bytes) -> str | None:
    """The volume label of an ext2/3/4 superblock in the first 2 KiB of a device, or None
    when it holds no ext filesystem (s_magic at 0x38, s_volume_name at 0x78 of the block)."""
    if len(head) < _SUPERBLOCK + 136:
        return None
    if int.from_bytes(head[_SUPERBLOCK + 0x38 : _SUPERBLOCK + 0x3A], "little") != EXT_MAGIC:
        return None
    return head[_SUPERBLOCK + 0x78 : _SUPERBLOCK + 0x88].split(b"\0", 1)[0].decode(errors="replace")


def find_labelled(
    label: str, block: Path = Path("/sys/class/block"), dev: Path = Path("/dev")
) -> Path | None:
    """The block device (whole disk or partition) whose ext filesystem is labelled `label`."""
    if not block.is_dir():
        return None
    for entry in sorted(block.iterdir()):
        node = dev / entry.name
        try:
            with node.open("rb") as f:
                head = f.read(2048)
        except OSError:
            continue
        if ext_label(head) == label:
            return node
    return None


def mount_data(
    device: Path, mountpoint: str = DATA_MOUNT, binds: Sequence[tuple[str, str]] = DATA_BINDS
) -> None:
    """Mount the data partition and bind its directories over the image's. On first boot a
    directory is seeded from the image (the default config pair), so an empty disk works."""
    Path(mountpoint).mkdir(parents=True, exist_ok=True)
    mount(Mount(str(device), mountpoint, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME))
    for inner, target in binds:
        source = Path(mountpoint) / inner
        if not source.is_dir():
            if Path(target).is_dir():
                shutil.copytree(target, source, symlinks=True)
            else:
                source.mkdir(mode=0o700, parents=True)
        Path(target).mkdir(parents=True, exist_ok=True)
        mount(Mount(str(source), target, "none", MS_BIND))


def unmount_data(
    mountpoint: str = DATA_MOUNT, binds: Sequence[tuple[str, str]] = DATA_BINDS
) -> str:
    """Undo mount_data before power off; a busy filesystem is remounted read-only instead, so
    the journal is consistent either way. Returns what was done, for the log."""
    for _, target in reversed(binds):
        with contextlib.suppress(OSError):
            umount(target)
    try:
        umount(mountpoint)
    except OSError as exc:
        try:
            mount(Mount("none", mountpoint, "none", MS_REMOUNT | MS_RDONLY))
        except OSError as exc2:
            return f"{mountpoint} stays writable ({exc.strerror}; {exc2.strerror})"
        return f"{mountpoint} busy ({exc.strerror}), remounted read-only"
    return f"{mountpoint} unmounted"


# ---------------------------------------------------------------- hostname, random seed

DEFAULT_HOSTNAME = "oxwrt"
SEED_BYTES = 512  # the kernel's pool is 256 bits; 512 bytes is the customary seed file size


def boot_hostname(etc_hostname: Path = Path("/etc/hostname")) -> str:
    """The name to carry until the daemon applies the configured one."""
    try:
        name = etc_hostname.read_text().strip()
    except OSError:
        return DEFAULT_HOSTNAME
    return name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", name) else DEFAULT_HOSTNAME


def set_hostname(name: str) -> None:
    socket.sethostname(name)


def restore_seed(seed: Path, urandom: Path = Path("/dev/urandom")) -> bool:
    """Mix the saved seed into the pool, then replace it at once: a crash before the next save
    must not let the same seed be used twice. Returns whether a seed was found."""
    try:
        data = seed.read_bytes()
    except OSError:
        data = b""
    if data:
        with urandom.open("wb") as pool:  # mixes without crediting entropy: never weakens it
            pool.write(data)
    save_seed(seed, urandom)
    return bool(data)


def save_seed(seed: Path, urandom: Path = Path("/dev/urandom")) -> None:
    """Write SEED_BYTES fresh bytes durably (schema.atomic: tmp, fsync, rename, fsync dir)."""
    with urandom.open("rb") as pool:
        data = pool.read(SEED_BYTES)
    write_atomic(seed, data, 0o600)


# ---------------------------------------------------------------- shutdown and power


class Action(enum.Enum):
    REBOOT = "reboot"
    POWEROFF = "poweroff"
    HALT = "halt"


# What a signal to PID 1 asks for. BusyBox's reboot/poweroff/halt send SIGTERM/SIGUSR2/SIGUSR1;
# the kernel sends SIGINT for Ctrl-Alt-Del (once CAD is disabled) and a UPS daemon SIGPWR.
SHUTDOWN_SIGNALS = {
    signal.SIGTERM: Action.REBOOT,
    signal.SIGINT: Action.REBOOT,
    signal.SIGPWR: Action.POWEROFF,
    signal.SIGUSR2: Action.POWEROFF,
    signal.SIGUSR1: Action.HALT,
}
# <linux/reboot.h>
_REBOOT_CMD = {Action.REBOOT: 0x01234567, Action.POWEROFF: 0x4321FEDC, Action.HALT: 0xCDEF0123}
RB_DISABLE_CAD = 0


def disable_ctrl_alt_del() -> None:
    """Make Ctrl-Alt-Del send SIGINT to PID 1 (an orderly reboot) instead of resetting at once."""
    if _libc.reboot(RB_DISABLE_CAD) != 0:
        raise _oserror("reboot(CAD_OFF)")


def power(action: Action) -> None:
    """sync, then reboot(2). Returns only if the kernel refused (not PID 1's namespace, EPERM)."""
    os.sync()
    if _libc.reboot(ctypes.c_int(_REBOOT_CMD[action]).value) != 0:  # the magic is an int
        raise _oserror(f"reboot({action.value})")


def descendants(root: int, proc: Path = Path("/proc")) -> list[int]:
    """PIDs below `root` (children first), from the PPid field of every /proc/<pid>/stat. For
    PID 1 that is all of userspace; kernel threads hang off kthreadd (PID 2)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # comm may hold spaces and parens
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def signal_all(pids: Iterable[int], sig: int) -> int:
    """Send `sig` to each PID that still exists; returns how many got it."""
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
            sent += 1
    return sent


# ---------------------------------------------------------------- watchdog

WATCHDOG_INTERVAL_S = 5.0  # how often to feed; i6300esb and most SoC watchdogs default to ~30 s
WATCHDOG_STALL_S = 20.0  # no main-loop progress for this long: stop feeding, let it reset


class Watchdog:
    """Feeds a hardware watchdog only while the main loop makes progress. The main loop calls
    `progress(now)` each time it completes work; a timer calls `kick(now)`, which writes to the
    device only if progress is recent. A wedged loop therefore ends in a hardware reset
    WATCHDOG_STALL_S plus the device timeout later, not in a silently dead router."""

    def __init__(
        self,
        feed: Callable[[], None] | None,
        stall_s: float = WATCHDOG_STALL_S,
        interval_s: float = WATCHDOG_INTERVAL_S,
    ) -> None:
        self.feed = feed
        self.stall_s = stall_s
        self.interval_s = interval_s
        self.last_progress: float | None = None
        self.last_kick: float | None = None

    @classmethod
    def open(cls, device: str = "/dev/watchdog") -> Watchdog:
        """The device's watchdog, or one that feeds nothing when the board has none."""
        try:
            fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return cls(None)

        def feed() -> None:
            os.write(fd, b"\0")  # any write restarts the countdown; NUL has no meaning

        return cls(feed)

    @property
    def present(self) -> bool:
        return self.feed is not None

    def progress(self, now: float) -> None:
        self.last_progress = now

    def stalled(self, now: float) -> bool:
        return self.last_progress is None or now - self.last_progress > self.stall_s

    def kick(self, now: float) -> bool:
        """Feed the device if the loop made progress recently; returns whether it was fed."""
        if self.feed is None or self.stalled(now):
            return False
        self.feed()
        self.last_kick = now
        return True

    def next_deadline(self, now: float) -> float:
        return now if self.last_kick is None else self.last_kick + self.interval_s


def find_tool(name: str) -> str | None:
    """A binary on PATH, or in the sbin/bin dirs when PID 1 started without a PATH."""
    return shutil.which(name, path=os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin")
