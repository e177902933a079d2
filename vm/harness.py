"""The VM tier's harness: boots a Debian kernel under QEMU (TCG) with oxwrt's PID 1.

What a boot looks like: the host root is shared read-only over virtio-9p and a tmpfs overlay is
laid on it by a busybox-static initramfs this module writes, together with `rootfs-overlay/`
(the repo's image overlay) and the VM's own extras. The guest has a persistent ext4 disk for
/etc/oxwrt and the journal, two virtio NICs (WAN, LAN) on taps that live in a network namespace
the harness owns (bridged to veths into the lab's namespaces), an i6300esb watchdog, the serial
console captured to a file, and a virtio-serial channel to `vm/guest_agent.py` for `VM.run`.
`-no-reboot` turns any guest reboot (orderly, watchdog, panic) into QEMU exiting. PID 1 runs
either its self-test loop (`pid1_argv`) or the router (`router_argv`: the daemon on the config
pair and journal of the data disk, see vm/router_config.py), the guest agent beside either.

Everything the host needs is installed on first use (`ensure_host_packages`); the kernel package
is fetched with `apt-get download` into the cache dir and reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oxwrtd import pid1
from oxwrtd.shell.init import DATA_LABEL
from vm.guest_agent import AGENT_PORT
from vm.guest_agent import READY_LINE as AGENT_READY_LINE

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("OXWRT_VM_CACHE", "/var/cache/oxwrt-vm"))
GUEST_PYTHON = REPO / ".venv" / "bin" / "python"  # the host's venv, seen in the guest via 9p
GUEST_AGENT = REPO / "vm" / "guest_agent.py"
READY_LINE = f"oxwrtd: {pid1.READY_LINE}"  # as oxwrtd's Console prints it
ROUTER_READY = "oxwrtd INFO oxwrtd ready:"  # the daemon's ready line under PID 1's logging

# binary -> Debian package providing it (busybox-static: the initramfs needs a static busybox)
HOST_PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "busybox": "busybox-static",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "depmod": "kmod",
}
# what the initramfs loads to reach the host root: virtio PCI, 9p over virtio, overlayfs.
# The load order (dependencies first) comes from `modprobe --show-depends` on the host.
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
# what the VM's hardware needs beyond the router's own list (rootfs-overlay/etc/modules.d/oxwrt);
# PID 1 loads these too, from /etc/modules.d/00-vm in the guest.
VM_MODULES = ("virtio_blk", "ext4", "virtio_net", "virtio_console", "i6300esb")
# multidevs=remap: the host root spans several filesystems; without it their inode numbers collide
VIRTFS_OPTIONS = "security_model=none,readonly=on,multidevs=remap"
# TCG boots to PID 1 ready in ~13 s here; a loaded 2-core CI runner can be several times slower
BOOT_TIMEOUT_S = 180.0


class VMError(RuntimeError):
    """The VM or the harness around it failed; the message carries the console's tail."""


# ---------------------------------------------------------------- host preparation


def ensure_host_packages() -> None:
    """apt-get install whatever of HOST_PACKAGES is missing (root, Debian)."""
    missing = sorted({pkg for binary, pkg in HOST_PACKAGES.items() if not _installed(binary, pkg)})
    if not missing:
        return
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env, check=False, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(cmd, env=env, check=True, capture_output=True)


def _installed(binary: str, package: str) -> bool:
    if package == "busybox-static":  # the dynamic `busybox` package ships /bin/busybox too
        probe = ["dpkg-query", "-W", "-f=${Status}", package]
        out = subprocess.run(probe, capture_output=True, text=True, check=False).stdout
        return out.endswith("installed")
    return shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin") is not None


@dataclass(frozen=True)
class Kernel:
    """An unpacked Debian kernel package: `root` holds boot/ and lib/modules/<version>/."""

    package: str
    version: str
    root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.version}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.version


def current_kernel_package() -> str:
    """The kernel package `linux-image-amd64` points at, e.g. linux-image-6.1.0-56-amd64."""
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=False
    ).stdout
    found = re.search(r"Depends:\s*(linux-image-\S+-amd64)\b", out)
    if found is None:
        raise VMError(f"apt-cache depends linux-image-amd64 names no kernel package:\n{out}")
    return found.group(1)


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def fetch_kernel(cache_dir: Path = CACHE_DIR, package: str | None = None) -> Kernel:
    """Download (once) and unpack the kernel package; `depmod` it so the guest's modprobe works
    (Debian generates modules.dep in postinst, so the .deb does not carry it)."""
    package = package or os.environ.get("OXWRT_VM_KERNEL_PKG") or current_kernel_package()
    dest = cache_dir / package
    with _locked(cache_dir):
        if not (dest / ".complete").exists():
            debs = cache_dir / "debs"
            debs.mkdir(exist_ok=True)
            if not list(debs.glob(f"{package}_*.deb")):
                _check(["apt-get", "download", package], cwd=debs)
            deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
            shutil.rmtree(dest, ignore_errors=True)
            _check(["dpkg", "-x", str(deb), str(dest)])
            version = _only_version(dest)
            _check(["depmod", "-b", str(dest), version])
            (dest / ".complete").write_text(deb.name + "\n")
    kernel = Kernel(package=package, version=_only_version(dest), root=dest)
    if not kernel.vmlinuz.exists():
        raise VMError(f"{package} unpacked without {kernel.vmlinuz}")
    return kernel


def _only_version(root: Path) -> str:
    versions = sorted(p.name for p in (root / "lib" / "modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise VMError(f"expected one module tree under {root}/lib/modules, found {versions}")
    return versions[0]


def _check(cmd: Sequence[str], cwd: Path | None = None) -> str:
    done = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise VMError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def module_load_order(kernel: Kernel, names: Iterable[str]) -> list[Path]:
    """The .ko files to insmod for `names`, dependencies first, each once (built-ins skipped)."""
    order: list[Path] = []
    for name in names:
        out = _check(
            ["modprobe", "-d", str(kernel.root), "-S", kernel.version, "--show-depends", name]
        )
        for line in out.splitlines():
            if line.startswith("insmod "):
                path = Path(line.split()[1])
                if path not in order:
                    order.append(path)
    return order


# ---------------------------------------------------------------- initramfs


@dataclass(frozen=True)
class CpioEntry:
    name: str  # without a leading slash
    mode: int  # including the file type bits
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def cpio_newc(entries: Iterable[CpioEntry]) -> bytes:
    """A `newc` cpio archive, the format the kernel unpacks into the initramfs; writing it here
    lets the archive hold /dev/console without mknod on the host."""
    out = bytearray()

    def pad4() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    for ino, entry in enumerate([*entries, CpioEntry("TRAILER!!!", 0)], start=1):
        name = entry.name.encode() + b"\0"
        fields = (ino, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
        out.extend(b"070701" + b"".join(b"%08X" % f for f in fields) + name)
        pad4()
        out.extend(entry.data)
        pad4()
    return bytes(out)


def _dir(name: str) -> CpioEntry:
    return CpioEntry(name, stat.S_IFDIR | 0o755)


def _file(name: str, data: bytes, mode: int = 0o644) -> CpioEntry:
    return CpioEntry(name, stat.S_IFREG | mode, data)


def tree_entries(src: Path, prefix: str) -> list[CpioEntry]:
    """A host directory (e.g. rootfs-overlay/) as cpio entries under `prefix`, parents first."""
    entries = [_dir(prefix)]
    for path in sorted(src.rglob("*")):
        name = f"{prefix}/{path.relative_to(src).as_posix()}"
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            entries.append(CpioEntry(name, info.st_mode, str(path.readlink()).encode()))
        elif stat.S_ISDIR(info.st_mode):
            entries.append(CpioEntry(name, stat.S_IFDIR | stat.S_IMODE(info.st_mode)))
        elif stat.S_ISREG(info.st_mode):
            entries.append(_file(name, path.read_bytes(), stat.S_IMODE(info.st_mode)))
    return entries


def init_script(kernel: Kernel, init_argv: Sequence[str], env: dict[str, str]) -> str:
    """The initramfs /init: reach the host root, overlay it, hand over to `init_argv`."""
    modules_on_host = kernel.modules_dir
    exports = "".join(f"export {k}={_sh_quote(v)}\n" for k, v in sorted(env.items()))
    argv = " ".join(_sh_quote(a) for a in init_argv)
    return f"""#!/bin/busybox sh
# Written by vm/harness.py. Host root over 9p (read-only) + tmpfs upper = the guest's root.
B=/bin/busybox
die() {{ echo "initramfs: $*"; $B poweroff -f; }}
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
for ko in $($B ls /modules | $B sort); do
    $B insmod /modules/$ko || echo "initramfs: insmod $ko failed"
done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose host /lower \\
    || die "cannot mount the host root over 9p"
$B mount -t tmpfs -o mode=0755 tmpfs /upper
$B mkdir -p /upper/data /upper/work
$B mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work /newroot \\
    || die "cannot mount the overlay root"
cd /overlay  # file by file: the host's /sbin, /lib are symlinks into /usr that cp -a would trip on
for f in $($B find . ! -type d); do
    $B mkdir -p "/newroot/${{f%/*}}" && $B rm -f "/newroot/$f" && $B cp -a "$f" "/newroot/$f" \\
        || die "cannot lay $f from the image overlay"
done
cd /
$B mkdir -p /newroot/lib/modules/{kernel.version}
$B mount --bind /lower{modules_on_host} /newroot/lib/modules/{kernel.version}
{_checkout_in_view()}$B umount /proc /sys
{exports}echo "initramfs: switching root to: {argv}"
exec $B switch_root /newroot {argv}
"""


def _checkout_in_view() -> str:
    """Init lines that keep this checkout visible in the guest at its own path. PID 1 mounts a
    tmpfs on /tmp and /run unless one is there already, which would hide a checkout living
    there (a fresh CI clone may): so mount that tmpfs first and bind the checkout inside it."""
    for top, mode in (("/tmp", "1777"), ("/run", "0755")):
        if REPO.is_relative_to(top):
            repo = _sh_quote(str(REPO))
            return (
                f"$B mount -t tmpfs -o mode={mode} tmpfs /newroot{top}\n"
                f"$B mkdir -p /newroot{repo}\n"
                f"$B mount --bind /lower{repo} /newroot{repo}\n"
            )
    return ""


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def build_initramfs(
    kernel: Kernel,
    out: Path,
    *,
    init_argv: Sequence[str],
    env: dict[str, str],
    overlay_dirs: Sequence[Path] = (),
    extra_files: dict[str, tuple[bytes, int]] | None = None,
) -> Path:
    """Write an uncompressed initramfs to `out` (unpacking is faster than gunzip under TCG)."""
    busybox = Path("/bin/busybox")
    entries = [_dir(d) for d in ("bin", "dev", "proc", "sys", "lower", "upper", "newroot")]
    entries += [
        CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        _file("bin/busybox", busybox.read_bytes(), 0o755),
        _file("init", init_script(kernel, init_argv, env).encode(), 0o755),
        _dir("modules"),
    ]
    for i, ko in enumerate(module_load_order(kernel, INITRAMFS_MODULES)):
        entries.append(_file(f"modules/{i:02d}-{ko.name}", ko.read_bytes()))
    entries.append(_dir("overlay"))
    seen = {"overlay"}
    for src in overlay_dirs:
        for entry in tree_entries(src, "overlay")[1:]:
            if entry.name not in seen:
                seen.add(entry.name)
                entries.append(entry)
    for rel, (data, mode) in sorted((extra_files or {}).items()):
        parts = rel.strip("/").split("/")
        for depth in range(1, len(parts)):
            parent = "overlay/" + "/".join(parts[:depth])
            if parent not in seen:
                seen.add(parent)
                entries.append(_dir(parent))
        entries.append(_file("overlay/" + "/".join(parts), data, mode))
    out.write_bytes(cpio_newc(entries))
    return out


# ---------------------------------------------------------------- persistent disk


def make_data_disk(path: Path, size_mib: int = 64, root: Path | None = None) -> Path:
    """A raw ext4 image labelled DATA_LABEL: the guest's flash data partition. ext4 on a block
    device (not a 9p share) because LMDB needs a shared writable mmap and real fsync, and
    because a block device exercises the mount path a router takes; the host reads it back
    with e2fsprogs (`read_disk_file`) without mounting it. `root`: a host directory whose
    contents the new filesystem starts with (`mkfs.ext4 -d`), e.g. a config pair and a journal."""
    with path.open("wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    populate = ["-d", str(root)] if root is not None else []
    _check(["mkfs.ext4", "-q", "-F", "-L", DATA_LABEL, *populate, str(path)])
    return path


def read_disk_file(image: Path, guest_path: str) -> bytes:
    """A file's bytes from the data disk (paths relative to the partition root)."""
    done = subprocess.run(
        ["debugfs", "-R", f"cat {guest_path}", str(image)], capture_output=True, check=False
    )
    if done.returncode != 0 or b"File not found" in done.stderr:
        raise FileNotFoundError(f"{guest_path} not on {image}: {done.stderr.decode().strip()}")
    return done.stdout


def read_disk_tree(image: Path, guest_dir: str, dest: Path) -> Path:
    """Copy a directory of the data disk (e.g. the journal) to `dest` on the host; returns the
    copy's path (`dest`/<basename>)."""
    dest.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["debugfs", "-R", f"rdump {guest_dir} {dest}", str(image)], capture_output=True, check=False
    )
    copied = dest / Path(guest_dir).name
    if done.returncode != 0 or not copied.is_dir():
        raise FileNotFoundError(f"{guest_dir} not on {image}: {done.stderr.decode().strip()}")
    return copied


def write_disk_file(image: Path, guest_path: str, data: bytes, scratch: Path) -> None:
    """Replace a file on the (unmounted) data disk, as a bad flash write or a hand edit would."""
    scratch.write_bytes(data)
    _check(["debugfs", "-w", "-R", f"rm {guest_path}", str(image)])
    _check(["debugfs", "-w", "-R", f"write {scratch} {guest_path}", str(image)])


def disk_features(image: Path) -> set[str]:
    """The ext4 feature flags; `needs_recovery` is set while mounted and cleared by a clean
    unmount, so its absence after shutdown proves the guest unmounted the disk."""
    out = _check(["dumpe2fs", "-h", str(image)])
    found = re.search(r"^Filesystem features:\s*(.*)$", out, re.MULTILINE)
    return set(found.group(1).split()) if found else set()


# ---------------------------------------------------------------- network


@dataclass
class NetPlan:
    """The guest's NICs: `nics` maps a NIC role (wan, lan) to the lab namespace its veth peer goes
    into (None: the NIC is cabled to nothing). Guest interface order follows the dict."""

    nics: dict[str, str | None] = field(default_factory=lambda: {"wan": None, "lan": None})
    peer_names: dict[str, str] = field(default_factory=dict)  # role -> name in the lab ns


class VMNetwork:
    """A network namespace owned by one VM: QEMU runs in it, so its taps never touch the root
    namespace; each tap is bridged to a veth whose peer sits in a lab namespace."""

    def __init__(self, plan: NetPlan) -> None:
        self.plan = plan
        self.ns = f"oxvm-{secrets.token_hex(4)}"
        self.macs: dict[str, str] = {}

    def up(self) -> None:
        _check(["ip", "netns", "add", self.ns])
        try:
            self._ip("link", "set", "lo", "up")
            for i, (role, lab_ns) in enumerate(self.plan.nics.items()):
                self.macs[role] = f"52:54:00:0a:{i:02x}:01"
                self._ip("tuntap", "add", "dev", f"tap-{role}", "mode", "tap")
                self._ip("link", "add", f"br-{role}", "type", "bridge")
                self._ip("link", "set", f"tap-{role}", "master", f"br-{role}")
                for dev in (f"tap-{role}", f"br-{role}"):
                    self._ip("link", "set", dev, "up")
                if lab_ns is not None:
                    peer = self.plan.peer_names.get(role, f"vm-{role}")
                    self._ip("link", "add", f"v-{role}", "type", "veth", "peer", "name", peer,
                             "netns", lab_ns)  # fmt: skip
                    self._ip("link", "set", f"v-{role}", "master", f"br-{role}")
                    self._ip("link", "set", f"v-{role}", "up")
                    _check(["ip", "-n", lab_ns, "link", "set", peer, "up"])
        except Exception:
            self.down()
            raise

    def qemu_args(self) -> list[str]:
        args: list[str] = []
        for role, mac in self.macs.items():
            args += [
                "-netdev", f"tap,id={role},ifname=tap-{role},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev={role},mac={mac}",
            ]  # fmt: skip
        return args

    def wrap(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns, *cmd]  # execs in place: the PID stays QEMU's

    def down(self) -> None:
        # deleting the namespace deletes its taps, bridges and veths (and so the lab-side peers)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, check=False)

    def _ip(self, *args: str) -> None:
        _check(["ip", "-n", self.ns, *args])


# ---------------------------------------------------------------- the VM


def pid1_argv(selftest_service: Sequence[str] | None = None) -> list[str]:
    """Boot oxwrtd's PID 1 (through rootfs-overlay/sbin/init) in self-test mode, supervising the
    guest agent so `VM.run` works."""
    service = list(selftest_service or [str(GUEST_PYTHON), str(GUEST_AGENT)])
    return ["/sbin/init", "--selftest", "--", *service]


def router_argv() -> list[str]:
    """Boot oxwrtd as the router (the daemon under PID 1, config and journal on the data disk),
    with the guest agent kept running beside it, outside the services' sandboxes."""
    return ["/sbin/init", "--", str(GUEST_PYTHON), str(GUEST_AGENT)]


@dataclass
class VMConfig:
    workdir: Path
    init_argv: list[str] = field(default_factory=pid1_argv)
    memory_mib: int = 512
    cpus: int = 1
    net: NetPlan | None = field(default_factory=NetPlan)
    data_disk: Path | None = None  # None: a fresh one in workdir
    kernel_args: tuple[str, ...] = ()
    cache_dir: Path = CACHE_DIR
    hostname: str = "oxwrt-vm"
    ready_line: str = READY_LINE  # what `boot` waits for: PID 1's, or the daemon's (ROUTER_READY)


class VM:
    """One QEMU guest. `start()` returns at once; `wait_for_line` and `run` drive it; `stop()`
    always leaves no QEMU and no namespace behind."""

    def __init__(self, config: VMConfig) -> None:
        self.config = config
        self.workdir = config.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.console_path = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu.log"
        self.data_disk = config.data_disk or self.workdir / "data.img"
        self.network = VMNetwork(config.net) if config.net is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self._listener: socket.socket | None = None
        self._agent: socket.socket | None = None
        self._agent_buffer = b""
        self._request_id = 0

    # -- lifecycle

    def start(self) -> None:
        ensure_host_packages()
        kernel = fetch_kernel(self.config.cache_dir)
        if not self.data_disk.exists():
            make_data_disk(self.data_disk)
        initramfs = build_initramfs(
            kernel,
            self.workdir / "initramfs.cpio",
            init_argv=self.config.init_argv,
            env={"OXWRT_PYTHON": str(GUEST_PYTHON), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            overlay_dirs=[REPO / "rootfs-overlay"],
            extra_files={
                "etc/modules.d/00-vm": (_vm_modules_list(), 0o644),
                "etc/hostname": (self.config.hostname.encode() + b"\n", 0o644),
            },
        )
        agent_sock = self.workdir / "agent.sock"
        agent_sock.unlink(missing_ok=True)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(agent_sock))
        self._listener.listen(1)
        self.console_path.write_bytes(b"")
        append = " ".join(["console=ttyS0", "panic=-1", "loglevel=4", *self.config.kernel_args])
        cmd = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max",  # /dev/kvm hangs here: TCG
            "-m", str(self.config.memory_mib), "-smp", str(self.config.cpus),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(kernel.vmlinuz), "-initrd", str(initramfs), "-append", append,
            "-chardev", f"file,id=console,path={self.console_path}", "-serial", "chardev:console",
            "-virtfs", f"local,path=/,mount_tag=host,{VIRTFS_OPTIONS}",
            "-drive", f"file={self.data_disk},format=raw,if=virtio",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={agent_sock}",
            "-device", f"virtserialport,chardev=agent,name={AGENT_PORT}",
            "-device", "i6300esb",
        ]  # fmt: skip
        if self.network is not None:
            self.network.up()
            cmd = self.network.wrap(cmd + self.network.qemu_args())
        self.started_at = time.monotonic()
        with self.qemu_log.open("wb") as log:
            self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self._listener.settimeout(30.0)
        try:
            self._agent, _ = self._listener.accept()  # QEMU connects as it starts
        except TimeoutError as exc:
            self.kill()
            raise VMError(f"QEMU never connected the agent channel:\n{self.tail()}") from exc

    def boot(self, timeout: float = BOOT_TIMEOUT_S) -> float:
        """start() and wait until the guest agent answers; returns seconds to the ready line."""
        self.start()
        try:
            self.wait_for_line(self.config.ready_line, timeout)
            ready = time.monotonic() - self.started_at
            self.wait_for_line(AGENT_READY_LINE, timeout)
        except VMError:
            self.stop()
            raise
        return ready

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_exit(self, timeout: float) -> int:
        if self.process is None:
            raise VMError("the VM was never started")
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise VMError(f"QEMU still running after {timeout:.0f} s:\n{self.tail()}") from exc

    def shutdown(self, signal_name: str = "TERM", timeout: float = 90.0) -> int:
        """Ask the guest's PID 1 for an orderly shutdown (TERM reboot, USR2 poweroff, ...) and
        wait for QEMU to exit; returns QEMU's exit status. The signal is sent from a detached
        shell so the agent's reply goes out before PID 1 starts stopping processes."""
        self.run(f"(sleep 0.2; kill -{signal_name} 1) >/dev/null 2>&1 &")
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)  # QEMU's own PID (netns exec execs)
            self.process.wait()

    def stop(self) -> None:
        """Kill QEMU if still running and release the socket and the namespace."""
        self.kill()
        for sock in (self._agent, self._listener):
            if sock is not None:
                sock.close()
        self._agent = self._listener = None
        if self.network is not None:
            self.network.down()

    def __enter__(self) -> VM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- console

    def console(self, start: int = 0) -> str:
        """The console so far, from byte `start` (a `console_size()` taken earlier)."""
        return self.console_path.read_bytes()[start:].decode(errors="replace")

    def tail(self, lines: int = 40) -> str:
        qemu = self.qemu_log.read_text(errors="replace") if self.qemu_log.exists() else ""
        return "\n".join(self.console().splitlines()[-lines:]) + (
            f"\n[qemu] {qemu}" if qemu else ""
        )

    def wait_for_line(self, pattern: str, timeout: float, start: int = 0) -> str:
        """The first console line (from byte `start`) containing `pattern` (a regex). Raises
        VMError with the console's tail when `timeout` passes or QEMU exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.console_path.read_bytes()[start:].decode(errors="replace")
            for line in text.splitlines():
                if regex.search(line):
                    return line
            if not self.alive():
                raise VMError(f"QEMU exited before {pattern!r}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise VMError(f"no {pattern!r} on the console in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)

    def console_size(self) -> int:
        return self.console_path.stat().st_size

    # -- the guest agent

    def run(self, cmd: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run `cmd` with /bin/sh in the guest; its exit code and merged stdout+stderr.
        rc 124 means the guest killed it after `timeout`."""
        if self._agent is None or not self.alive():
            raise VMError(f"the VM is not running:\n{self.tail()}")
        self._request_id += 1
        request = {"id": self._request_id, "cmd": cmd, "timeout": timeout}
        self._agent.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout + 15.0  # the guest enforces `timeout` itself
        while True:
            line = self._agent_line(deadline)
            reply = json.loads(line)
            if reply.get("id") == self._request_id:
                return int(reply["rc"]), str(reply["out"])

    def _agent_line(self, deadline: float) -> bytes:
        assert self._agent is not None
        while b"\n" not in self._agent_buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise VMError(f"the guest agent did not answer in time:\n{self.tail()}")
            self._agent.settimeout(min(left, 1.0))
            try:
                chunk = self._agent.recv(65536)
            except TimeoutError:
                if not self.alive():
                    raise VMError(f"QEMU exited during a command:\n{self.tail()}") from None
                continue
            if not chunk:
                raise VMError(f"the agent channel closed:\n{self.tail()}")
            self._agent_buffer += chunk
        line, _, self._agent_buffer = self._agent_buffer.partition(b"\n")
        return line


def _vm_modules_list() -> bytes:
    header = "# Written by vm/harness.py: drivers for the VM's virtual hardware.\n"
    return (header + "".join(f"{m}\n" for m in VM_MODULES)).encode()


def main(argv: list[str] | None = None) -> int:
    """`python -m vm.harness prepare` installs and fetches everything (a CI cache step);
    `python -m vm.harness boot [WORKDIR]` boots the self-test VM and waits for Enter."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["prepare"]:
        ensure_host_packages()
        kernel = fetch_kernel()
        print(f"kernel {kernel.version} in {kernel.root}")
        return 0
    if args[:1] == ["boot"]:
        workdir = Path(args[1]) if len(args) > 1 else Path("/tmp") / f"oxvm-{os.getpid()}"
        with VM(VMConfig(workdir=workdir)) as vm:
            seconds = vm.boot()
            print(f"ready in {seconds:.1f} s; console: {vm.console_path}; Enter stops it")
            sys.stdin.readline()
        return 0
    print("usage: python -m vm.harness prepare | boot [WORKDIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
