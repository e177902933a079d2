"""Pure parsers for the small languages inside config strings, shared by validation and compilers.

Owns the meaning of port specs, DSCP names, conntrack helpers, rate limits, durations, socket
addresses, MAC addresses, cgroup `cpu.max`, Linux capability names and syscall names. Invariants:
- every parser either returns a normalised value or raises `ValueError` whose message names the
  offending text and says what was expected (callers prefix the TOML path);
- nothing here reads the system: the capability and syscall tables are static, so validation gives
  the same answer on the build host and on the router.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# ---------------------------------------------------------------- ports

PORT_MIN: Final = (
    1  # port 0 cannot be connected to or matched usefully; nft accepts it, we refuse it
)
PORT_MAX: Final = 65535


def _port(value: object, what: str) -> int:
    # bool is an int subclass; `true` is never a port
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not PORT_MIN <= value <= PORT_MAX:
        raise ValueError(f"{what} {value} is out of range ({PORT_MIN}..{PORT_MAX})")
    return value


def _port_text(text: str, what: str, spec: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise ValueError(f"port range {spec!r}: {what} {text!r} is not a number")
    return _port(int(text), f"port range {spec!r}: {what}")


def parse_ports(spec: int | list[int] | str) -> list[tuple[int, int]]:
    """A port spec as inclusive (first, last) ranges: `22`, `[80, 443]`, `"6000-6010"` or `"53"`.

    Whitespace around the numbers of a range is tolerated (`"6000 - 6010"`), as in the reference.
    """
    if isinstance(spec, str):
        if "-" not in spec:
            return [(p := _port_text(spec, "port", spec), p)]
        first_text, sep, last_text = spec.partition("-")
        if "-" in last_text or not sep:
            raise ValueError(f"port range {spec!r}: expected 'START-END' with a single '-'")
        first = _port_text(first_text, "start", spec)
        last = _port_text(last_text, "end", spec)
        if first > last:
            raise ValueError(f"port range {spec!r}: start {first} is greater than end {last}")
        return [(first, last)]
    if isinstance(spec, list):
        if not spec:
            raise ValueError("port list is empty (omit the key to match every port)")
        return [(p, p) for p in (_port(v, "port") for v in spec)]
    p = _port(spec, "port")
    return [(p, p)]


# ---------------------------------------------------------------- DSCP

# RFC 2474 class selectors, RFC 2597 assured forwarding, RFC 3246 EF, RFC 5865 VOICE-ADMIT,
# RFC 8622 lower effort: the names nft accepts after `ip dscp set`.
DSCP_CLASSES: Final[dict[str, int]] = {
    "be": 0,
    "le": 1,
    "ef": 46,
    "va": 44,
    **{f"cs{n}": n * 8 for n in range(8)},
    **{f"af{c}{d}": c * 8 + d * 2 for c in range(1, 5) for d in range(1, 4)},
}
DSCP_MAX: Final = 63


def parse_dscp(value: str) -> int:
    """A DSCP class name (case-insensitive, e.g. `AF41`, `ef`) or an integer 0..63."""
    text = value.strip().lower()
    if text in DSCP_CLASSES:
        return DSCP_CLASSES[text]
    if text.isdigit() and int(text) <= DSCP_MAX:
        return int(text)
    raise ValueError(
        f"DSCP {value!r} must be a class name ({', '.join(DSCP_CLASSES)}) "
        f"or an integer 0..{DSCP_MAX}"
    )


# ---------------------------------------------------------------- conntrack helpers

# config name -> (kernel helper name for `ct helper ... type`, layer-4 protocol it tracks)
HELPERS: Final[dict[str, tuple[str, str]]] = {
    "ftp": ("ftp", "tcp"),
    "sip": ("sip", "udp"),
    "tftp": ("tftp", "udp"),
    "pptp": ("pptp", "tcp"),
    "h323": ("H.323", "udp"),
    "irc": ("irc", "tcp"),
    "rtsp": ("rtsp", "tcp"),
}

# ---------------------------------------------------------------- rate limits

LIMIT_UNITS: Final = ("second", "minute", "hour", "day")
_LIMIT_RE: Final = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


def parse_limit(text: str) -> tuple[int, str]:
    """`"10/second"` -> (10, "second"); units as nft spells them: second, minute, hour, day."""
    m = _LIMIT_RE.match(text)
    if not m:
        raise ValueError(f"limit {text!r} must look like N/second, N/minute, N/hour or N/day")
    rate, unit = int(m.group(1)), m.group(2)
    if unit not in LIMIT_UNITS:
        raise ValueError(f"limit {text!r}: unit {unit!r} must be one of {', '.join(LIMIT_UNITS)}")
    if rate == 0:
        raise ValueError(f"limit {text!r}: a rate of 0 matches nothing")
    return rate, unit


# ---------------------------------------------------------------- durations

# Go's time.ParseDuration units (coredhcp reads lease_time with it) in nanoseconds; `d` is nft's.
_DURATION_UNITS_NS: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # Go accepts the micro sign too
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
_DURATION_PART_RE: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(text: str, *, days: bool = False) -> int:
    """A Go-style duration (`"12h"`, `"90m"`, `"1h30m"`, `"1.5h"`) as whole seconds.

    `days=True` also accepts the `d` unit (nft set timeouts); Go, and so dhcp.lease_time, has none.
    """
    s = text.strip()
    if not s:
        raise ValueError("duration is empty (expected e.g. 12h, 90m, 1h30m, 45s)")
    if s == "0":
        return 0
    pos, total_ns = 0, 0
    while pos < len(s):
        m = _DURATION_PART_RE.match(s, pos)
        if not m:
            raise ValueError(f"duration {text!r} is not valid (expected e.g. 12h, 90m, 1h30m, 45s)")
        number, unit = m.group(1), m.group(2)
        if unit == "d" and not days:
            raise ValueError(f"duration {text!r}: unit 'd' is not accepted here; use hours (24h)")
        whole, _, frac = number.partition(".")
        scale = _DURATION_UNITS_NS[unit]
        total_ns += int(whole or "0") * scale
        if frac:
            total_ns += int(frac) * scale // 10 ** len(frac)
        pos = m.end()
    if total_ns % 1_000_000_000:
        raise ValueError(f"duration {text!r} is not a whole number of seconds")
    return total_ns // 1_000_000_000


# ---------------------------------------------------------------- addresses

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_socket_addr(text: str) -> tuple[IPAddress, int]:
    """`"192.0.2.1:53"` or `"[2001:db8::1]:53"` -> (address, port); port 0 allowed as in Rust."""
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"socket address {text!r} must look like [ipv6]:port")
        try:
            addr: IPAddress = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"socket address {text!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"socket address {text!r} must look like ip:port or [ipv6]:port")
        try:
            addr = ipaddress.IPv4Address(host)
        except ValueError:
            hint = " (write IPv6 as [addr]:port)" if ":" in host else ""
            raise ValueError(
                f"socket address {text!r}: {host!r} is not an IPv4 address{hint}"
            ) from None
    if not port_text.isdigit() or int(port_text) > PORT_MAX:
        raise ValueError(f"socket address {text!r}: port {port_text!r} is not 0..{PORT_MAX}")
    return addr, int(port_text)


_MAC_RE: Final = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}$")


def parse_mac(text: str) -> str:
    """A MAC written with `:` or `-` between six hex octets -> lower case with `:`."""
    if not _MAC_RE.match(text):
        raise ValueError(f"MAC address {text!r} must be six hex octets separated by ':' or '-'")
    return text.lower().replace("-", ":")


def mac_is_multicast(mac: str) -> bool:
    """The I/G bit of the first octet: such an address cannot be an interface's own address."""
    return bool(int(mac[:2], 16) & 1)


# ---------------------------------------------------------------- cgroup v2 cpu.max

CPU_PERIOD_MIN_US: Final = 1000  # kernel limits for cpu.max (kernel/sched/core.c)
CPU_PERIOD_MAX_US: Final = 1_000_000


def parse_cpu_max(text: str) -> tuple[int | None, int]:
    """cgroup v2 `cpu.max`: `"QUOTA PERIOD"`, `"max PERIOD"`, `"QUOTA"` or `"max"`.

    Returns (quota µs or None for unlimited, period µs; the kernel default period is 100000).
    """
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"cpu_max {text!r} must be 'QUOTA PERIOD' or 'max PERIOD' (microseconds)")
    period = 100_000
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"cpu_max {text!r}: period {parts[1]!r} is not a number")
        period = int(parts[1])
        if not CPU_PERIOD_MIN_US <= period <= CPU_PERIOD_MAX_US:
            raise ValueError(
                f"cpu_max {text!r}: period {period} must be "
                f"{CPU_PERIOD_MIN_US}..{CPU_PERIOD_MAX_US} microseconds"
            )
    if parts[0] == "max":
        return None, period
    if not parts[0].isdigit():
        raise ValueError(f"cpu_max {text!r}: quota {parts[0]!r} must be a number or 'max'")
    quota = int(parts[0])
    if quota < CPU_PERIOD_MIN_US:
        raise ValueError(f"cpu_max {text!r}: quota {quota} must be at least {CPU_PERIOD_MIN_US}")
    return quota, period


# ---------------------------------------------------------------- capabilities

# linux/capability.h, CAP_CHOWN (0) .. CAP_CHECKPOINT_RESTORE (40), without the CAP_ prefix.
CAPABILITIES: Final = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)


def parse_capability(name: str) -> str:
    """A capability as the reference accepts it (`NET_ADMIN` or `CAP_NET_ADMIN`) -> `NET_ADMIN`."""
    bare = name.removeprefix("CAP_")
    if bare in CAPABILITIES:
        return bare
    upper = name.upper().removeprefix("CAP_")
    if upper in CAPABILITIES:
        raise ValueError(f"capability {name!r} must be written in capitals: {upper!r}")
    raise ValueError(f"unknown capability {name!r} (linux/capability.h names, e.g. NET_ADMIN)")


# ---------------------------------------------------------------- syscalls

# The sandbox's seccomp deny list (every matched call returns EPERM); `seccomp_allow` removes names
# from it. Same list and order as the reference.
SYSCALLS_DENIED_BY_DEFAULT: Final = (
    "ptrace",
    "mount",
    "umount2",
    "pivot_root",
    "setns",
    "unshare",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "reboot",
    "swapon",
    "swapoff",
    "userfaultfd",
    "perf_event_open",
    "syslog",
    "acct",
    "quotactl",
)

# Every syscall name of x86_64 (asm/unistd_64.h) and aarch64 (asm-generic/unistd.h, 64-bit), up to
# Linux 6.15. Static rather than asked of libseccomp so schema/ stays pure and gives the same
# answer everywhere; a name missing here is at worst reported as unknown, never silently accepted.
_SYSCALL_TABLE: Final = """
_sysctl accept accept4 access acct add_key adjtimex afs_syscall alarm arch_prctl bind bpf brk
cachestat capget capset chdir chmod chown chroot clock_adjtime clock_getres clock_gettime
clock_nanosleep clock_settime clone clone3 close close_range connect copy_file_range creat
create_module delete_module dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
exit_group faccessat faccessat2 fadvise64 fallocate fanotify_init fanotify_mark fchdir fchmod
fchmodat fchmodat2 fchown fchownat fcntl fdatasync fgetxattr file_getattr file_setattr
finit_module flistxattr flock fork fremovexattr fsconfig fsetxattr fsmount fsopen fspick fstat
fstatfs fsync ftruncate futex futex_requeue futex_wait futex_waitv futex_wake futimesat
get_kernel_syms get_mempolicy get_robust_list get_thread_area getcpu getcwd getdents getdents64
getegid geteuid getgid getgroups getitimer getpeername getpgid getpgrp getpid getpmsg getppid
getpriority getrandom getresgid getresuid getrlimit getrusage getsid getsockname getsockopt
gettid gettimeofday getuid getxattr getxattrat init_module inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents io_pgetevents io_setup
io_submit io_uring_enter io_uring_register io_uring_setup ioctl ioperm iopl ioprio_get
ioprio_set kcmp kexec_file_load kexec_load keyctl kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lgetxattr link linkat listen listmount listxattr listxattrat
llistxattr lookup_dcookie lremovexattr lseek lsetxattr lsm_get_self_attr lsm_list_modules
lsm_set_self_attr lstat madvise map_shadow_stack mbind membarrier memfd_create memfd_secret
migrate_pages mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap modify_ldt mount
mount_setattr move_mount move_pages mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedsend mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall munmap
name_to_handle_at nanosleep newfstatat nfsservctl open open_by_handle_at open_tree
open_tree_attr openat openat2 pause perf_event_open personality pidfd_getfd pidfd_open
pidfd_send_signal pipe pipe2 pivot_root pkey_alloc pkey_free pkey_mprotect poll ppoll prctl
pread64 preadv preadv2 prlimit64 process_madvise process_mrelease process_vm_readv
process_vm_writev pselect6 ptrace putpmsg pwrite64 pwritev pwritev2 query_module quotactl
quotactl_fd read readahead readlink readlinkat readv reboot recvfrom recvmmsg recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 request_key
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_get_priority_max
sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp security select semctl semget semop semtimedop sendfile sendmmsg sendmsg
sendto set_mempolicy set_mempolicy_home_node set_robust_list set_thread_area set_tid_address
setdomainname setfsgid setfsuid setgid setgroups sethostname setitimer setns setpgid
setpriority setregid setresgid setresuid setreuid setrlimit setsid setsockopt settimeofday
setuid setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
socket socketpair splice stat statfs statmount statx swapoff swapon symlink symlinkat sync
sync_file_range syncfs sysfs sysinfo syslog tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_settime timerfd_create timerfd_gettime timerfd_settime
times tkill truncate tuxcall umask umount2 uname unlink unlinkat unshare uretprobe uselib
userfaultfd ustat utime utimensat utimes vfork vhangup vmsplice vserver wait4 waitid write writev
"""
SYSCALL_NAMES: Final = frozenset(_SYSCALL_TABLE.split())


def is_syscall(name: str) -> bool:
    """Whether `name` is a Linux syscall on x86_64 or aarch64 (bare name, no `SYS_`/`__NR_`)."""
    return name in SYSCALL_NAMES


__all__ = [
    "CAPABILITIES",
    "DSCP_CLASSES",
    "HELPERS",
    "LIMIT_UNITS",
    "SYSCALLS_DENIED_BY_DEFAULT",
    "SYSCALL_NAMES",
    "IPAddress",
    "is_syscall",
    "mac_is_multicast",
    "parse_capability",
    "parse_cpu_max",
    "parse_dscp",
    "parse_duration",
    "parse_limit",
    "parse_mac",
    "parse_ports",
    "parse_socket_addr",
]
