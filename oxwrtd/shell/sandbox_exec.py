"""Child side of the sandbox: run as `python -I -S sandbox_exec.py PLAN` by `sandbox.spawn`
(PLAN is the launch plan, marshalled and hex-encoded: marshal needs no import).

It is its own small program (stdlib, prctl, seccomp; nothing from the daemon) because Python 3.11
has no os.unshare/os.setns and namespace setup must not happen inside the daemon. fd 0 is
/dev/null, fds 1 and 2 are the service's log pipe, fd 3 is the status pipe back to the daemon,
which reads `pid N`, `warn TEXT` and `error TEXT` lines until EOF (EOF with a pid and no error
means the service's execve succeeded: fd 3 is close-on-exec in the final process).

Steps, in this order (each needs the previous one):
  launcher (the process the daemon spawned, in the daemon's namespaces)
    1. join the service's cgroup, so nothing runs outside its limits
    2. create the veth pair (host end `veth-<name>`) in the daemon's network namespace
    3. fork a helper that stays outside, then unshare mount/UTS/IPC/cgroup (+net, +user)
    4. the helper writes uid/gid maps (0 -> 65534) and moves the veth peer into the new netns
    5. become root of the user namespace, configure lo/eth0/default route, set the hostname
    6. unshare PID (when asked), fork the service process, report its PID, exit
  service process (PID 1 of its PID namespace when asked)
    7. build the root: read-only view of `rootfs`, private /tmp and /run, binds, proc, sys, dev
    8. pivot_root, detach the old root
    9. no_new_privs, landlock (writes only where allowed), seccomp deny list, capabilities
   10. execve the entrypoint with a clean environment
"""

# ruff: noqa: PTH102, PTH103, PTH110, PTH112, PTH120, PTH123, PTH211, SIM105
# os.path, open() and try/except instead of pathlib, contextlib and typing: those imports cost
# more than the rest of the launcher's start-up, which is on every spawn (bench/service_spawn.py).
from __future__ import annotations

import ctypes
import errno
import marshal
import os
import stat
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy honours the name)
if TYPE_CHECKING:
    from typing import Any

    Plan = dict[str, Any]  # the launch plan from sandbox.build_plan, as unmarshalled

STATUS_FD = 3

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 1

PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETPCAP = 8

# Syscall numbers: pivot_root differs per architecture; the newer ones are shared (asm-generic).
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_MOUNT_SETATTR = 442
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446

LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_WRITE_FILE = 1 << 1
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_ALL = sum(1 << bit for bit in range(6, 13))  # char, dir, reg, sock, fifo, block, sym
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FILE_ONLY_RIGHTS = FS_WRITE_FILE | FS_TRUNCATE

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
libc.mount.argtypes += [ctypes.c_char_p]


class MountAttr(ctypes.Structure):
    """struct mount_attr (mount_setattr)."""

    _fields_ = (
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    )


class PathBeneath(ctypes.Structure):
    """struct landlock_path_beneath_attr, which the kernel declares packed."""

    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class SandboxError(Exception):
    """A step failed; the message names the step and the path or value involved."""

    def __init__(self, message: str, err: int = 0) -> None:
        super().__init__(message)
        self.errno = err


def check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)} (errno {err})", err)
    return result


def report(line: str) -> None:
    try:
        os.write(STATUS_FD, (line.replace("\n", " ") + "\n").encode())
    except OSError:
        pass  # the daemon gave up on this spawn; nobody is left to tell


def unshare(flags: int) -> None:
    check(libc.unshare(flags), f"unshare({flags:#x})")


def _c(text: str | None) -> bytes | None:
    return text.encode() if text else None


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    what = f"mount {fstype or source} on {target}"
    check(libc.mount(_c(source), target.encode(), _c(fstype), flags, _c(data)), what)


def make_readonly(path: str) -> None:
    """Read-only for the whole subtree at once (mount_setattr, Linux 5.12)."""

    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    res = libc.syscall(
        SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr),
        ctypes.sizeof(attr),
    )  # fmt: skip
    check(res, f"read-only {path}")


def write_file(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def run_ip(commands: list[str], what: str) -> None:
    """Batch `ip` commands (one exec for the lot) in the current network namespace."""
    import subprocess  # only isolated services need it; the launcher's start-up is the hot path

    proc = subprocess.run(
        ["ip", "-batch", "-"], input="\n".join(commands) + "\n", capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SandboxError(f"{what}: {proc.stderr.strip() or proc.stdout.strip()}")


# ---------------------------------------------------------------- launcher (steps 1-6)


def launch(plan: Plan) -> None:
    # Import the hardening modules while the host's filesystem is still in view: after the
    # mount namespace changes (pivot_root, or the private /tmp and /run of rootfs "/") the
    # venv or checkout they come from may be gone. Later imports are sys.modules look-ups.
    import prctl  # noqa: F401

    if plan["seccomp_deny"]:
        import seccomp  # noqa: F401
    if plan["cgroup_procs"]:
        try:
            write_file(plan["cgroup_procs"], str(os.getpid()))
        except OSError as exc:
            raise SandboxError(f"joining cgroup {plan['cgroup_procs']}: {exc}") from exc
    veth = plan["veth"]
    peer_tmp = f"oxp{os.getpid()}"[:15]
    if veth:
        # A host end left from an earlier instance would block the new pair; its peer is gone.
        try:
            run_ip([f"link del {veth['host_if']}"], "removing the stale host end")
        except SandboxError:
            pass  # none was left
        run_ip(
            [
                f"link add {veth['host_if']} type veth peer name {peer_tmp}",
                f"addr add {veth['host_ip']}/{veth['prefix']} dev {veth['host_if']}",
                f"link set {veth['host_if']} up",
            ],
            f"creating veth {veth['host_if']}",
        )
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP
    flags |= CLONE_NEWNET if plan["isolated"] else 0
    flags |= CLONE_NEWUSER if plan["userns"] else 0
    helper = start_helper(plan, peer_tmp) if (plan["userns"] or veth) else None
    unshare(flags)
    if helper is not None:
        finish_helper(*helper)
    if plan["userns"]:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if plan["isolated"]:
        commands = ["link set lo up"]
        if veth:
            commands += [
                f"link set {peer_tmp} name eth0",
                f"addr add {veth['peer_ip']}/{veth['prefix']} dev eth0",
                "link set eth0 up",
                f"route add default via {veth['host_ip']}",
            ]
        run_ip(commands, "configuring the service network")
    name = plan["hostname"].encode()
    check(libc.sethostname(name, len(name)), "sethostname")
    if plan["pidns"]:
        unshare(CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        try:
            serve(plan)
        except (SandboxError, OSError) as exc:
            report(f"error {exc}")
        os._exit(127)
    report(f"pid {pid}")


def start_helper(plan: Plan, peer_tmp: str) -> tuple[int, int, int]:
    """Fork a helper that stays in the daemon's user and network namespaces: only a process
    outside can map our uids and push the veth peer in once we have unshared."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid != 0:
        os.close(go_r)
        os.close(done_w)
        return pid, go_w, done_r
    os.close(go_w)
    os.close(done_r)
    code = 0
    try:
        if os.read(go_r, 1) != b"1":
            os._exit(1)
        if plan["userns"]:
            write_file(f"/proc/{parent}/setgroups", "deny")
            write_file(f"/proc/{parent}/uid_map", "0 65534 1")
            write_file(f"/proc/{parent}/gid_map", "0 65534 1")
        if plan["veth"]:
            run_ip([f"link set {peer_tmp} netns {parent}"], "moving the veth peer")
    except (SandboxError, OSError) as exc:
        os.write(done_w, f"{exc}".encode())
        code = 1
    os._exit(code)


def finish_helper(pid: int, go_w: int, done_r: int) -> None:
    os.write(go_w, b"1")
    os.close(go_w)
    failure = os.read(done_r, 4096).decode()
    os.close(done_r)
    _, status = os.waitpid(pid, 0)  # the launcher's own helper, never seen by the daemon
    if failure or os.waitstatus_to_exitcode(status) != 0:
        raise SandboxError(f"namespace helper: {failure or 'failed'}")


# ---------------------------------------------------------------- service process (7-10)


def serve(plan: Plan) -> None:
    root = plan["staging"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount(plan["rootfs"], root, None, MS_BIND | MS_REC)
    make_readonly(root)
    private = [d for d in ("tmp", "run") if os.path.isdir(f"{root}/{d}")]
    for sub in private:
        mount("tmpfs", f"{root}/{sub}", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for bind in plan["binds"]:
        apply_bind(root, bind)
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)
    try:
        # Read-only per mount, not per superblock: a netns's sysfs superblock is shared, and
        # asking for MS_RDONLY on one that is mounted read-write elsewhere fails with EBUSY.
        mount("sysfs", f"{root}/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV)
        make_readonly(f"{root}/sys")
    except SandboxError as exc:
        if exc.errno == errno.EBUSY:
            pass  # this netns's sysfs is already there, read-only, from the rootfs view of /
        elif not plan["userns"]:
            raise
        else:
            report(f"warn /sys left as the host's read-only view: {exc}")
    build_dev(root)
    os.chdir(root)
    check(libc.syscall(SYS_PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    check(libc.umount2(b".", MNT_DETACH), "detaching the old root")
    os.chdir("/")
    harden(plan, writable=[f"/{d}" for d in private] + writable_targets(plan))
    os.set_inheritable(STATUS_FD, False)  # EOF on the status pipe now means "exec done"
    try:
        os.execvpe(plan["argv"][0], plan["argv"], plan["env"])
    except OSError as exc:
        raise SandboxError(f"exec {plan['argv'][0]}: {exc.strerror}") from exc


def apply_bind(root: str, bind: Plan) -> None:
    source, target = bind["source"], f"{root}{bind['target']}"
    if not os.path.exists(source):
        raise SandboxError(f"bind source {source} does not exist")
    if not os.path.exists(target):
        try:
            if os.path.isdir(source):
                os.makedirs(target)
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                write_file(target, "")
        except OSError as exc:
            raise SandboxError(
                f"bind target {bind['target']} is missing and cannot be created in the "
                f"read-only rootfs (only under /tmp or /run): {exc.strerror}"
            ) from exc
    mount(source, target, None, MS_BIND | MS_REC)
    if bind["readonly"]:
        make_readonly(target)


def writable_targets(plan: Plan) -> list[str]:
    return [b["target"] for b in plan["binds"] if not b["readonly"]]


def build_dev(root: str) -> None:
    """A fresh /dev holding only harmless devices, bound from the host (mknod needs more than a
    user namespace grants, a bind works everywhere)."""
    dev = f"{root}/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            write_file(f"{dev}/{name}", "")
            mount(f"/dev/{name}", f"{dev}/{name}", None, MS_BIND)
    os.mkdir(f"{dev}/shm", 0o1777)
    for link, to in (("fd", ""), ("stdin", "/0"), ("stdout", "/1"), ("stderr", "/2")):
        os.symlink(f"/proc/self/fd{to}", f"{dev}/{link}")


def harden(plan: Plan, writable: list[str]) -> None:
    if plan["no_new_privs"]:
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if plan["landlock"]:
        restrict_writes(writable + [f"/dev/{d}" for d in DEVICES if os.path.exists(f"/dev/{d}")])
    if plan["seccomp_deny"]:
        load_seccomp(plan["seccomp_deny"], plan["no_new_privs"])
    limit_capabilities(plan["caps"])


def restrict_writes(allowed: list[str]) -> None:
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    if abi < 0:
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EOPNOTSUPP):
            report(f"warn landlock unavailable ({os.strerror(err)}): writes are not restricted")
            return
        check(abi, "landlock ABI")
    handled = FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_ALL
    handled |= FS_REFER if abi >= 2 else 0
    handled |= FS_TRUNCATE if abi >= 3 else 0
    attr = ctypes.c_uint64(handled)  # struct landlock_ruleset_attr, fs field only
    ruleset = check(
        libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0),
        "landlock ruleset",
    )

    for path in allowed:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            rule = PathBeneath(handled if is_dir else handled & FILE_ONLY_RIGHTS, fd)
            res = libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH,
                               ctypes.byref(rule), 0)  # fmt: skip
            check(res, f"landlock rule for {path}")
        finally:
            os.close(fd)
    check(libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock restrict_self")
    os.close(ruleset)


def load_seccomp(deny: list[str], no_new_privs: bool) -> None:
    import seccomp

    flt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    # libseccomp sets no_new_privs itself unless told not to; the config decides.
    flt.set_attr(seccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
    for name in deny:
        flt.add_rule(seccomp.ERRNO(errno.EPERM), name)
    flt.load()


def limit_capabilities(keep_names: list[str]) -> None:
    import prctl

    keep = {getattr(prctl, f"CAP_{name}") for name in keep_names}
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    # Bounding set first (needs CAP_SETPCAP, so SETPCAP itself goes last), then the process sets.
    drop = [cap for cap in range(last + 1) if cap not in keep and cap != CAP_SETPCAP]
    drop += [CAP_SETPCAP] if CAP_SETPCAP not in keep else []
    for cap in drop:
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient caps")
    prctl.cap_inheritable.limit()
    prctl.cap_effective.limit(*keep)
    prctl.cap_permitted.limit(*keep)


def main() -> None:
    plan = marshal.loads(bytes.fromhex(sys.argv[1]))
    sys.path[:0] = plan["sys_path"]  # started with -S: the daemon says where prctl/seccomp are
    try:
        launch(plan)
    except (SandboxError, OSError) as exc:
        report(f"error {exc}")
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
