"""The WAN DHCPv4 client, pure half: the client's command from the WAN config, the lease its hook
reports parsed into typed facts, and the deadlines that follow from a lease.

The client is busybox `udhcpc`: it negotiates, renews and rebinds on its own; its hook script
only reports (oxwrtd applies the address itself, through `net.desired` and `NetFacts.leases`).
Invariants:
- a hook report becomes exactly one `LeaseBound`, `LeaseLost` or `LeaseFailed`, or a
  `ReportError` naming the variable at fault; never a half-filled lease;
- DHCP option 12 (hostname) is sent only when `send_hostname` is true and the name is non-empty;
  option 60 (vendor class) only when `vendor_class_id` is set (udhcpc's default is suppressed);
- time comes in as `now`; renew (T1), rebind (T2) and expiry are absolute deadlines out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from oxwrtd.core import net
from oxwrtd.core.state import Lease as LeaseRow
from schema.config import Bind, Config, Security, Service, Wan
from schema.events import LeaseAcquired

# Debian's busybox-static; the applet is `busybox udhcpc` (no separate udhcpc binary there).
BUSYBOX: Final = "/bin/busybox"
# Environment the hook reads: where to report, and which Python runs the stdlib-only hook.
ENV_SOCKET: Final = "OXWRT_DHCP_SOCKET"
ENV_PYTHON: Final = "OXWRT_PYTHON"
# Discovery pacing. Upstream: 15 s per attempt, then 10 s doubling to 300 s. udhcpc has no
# growing backoff; 4 DISCOVERs 3 s apart, then 10 s of quiet, keeps a cold modem answered within
# ~25 s and costs one small broadcast per 3 s while the line is down.
DISCOVER_TRIES: Final = 4
DISCOVER_PAUSE_S: Final = 3
FAILED_WAIT_S: Final = 10
# RFC 2131 §4.4.5 defaults when the server sends no option 58/59.
T1_FRACTION: Final = 0.5
T2_FRACTION: Final = 0.875
INFINITE_LEASE: Final = 0xFFFFFFFF  # RFC 2131 §3.3: "infinite" lease time
HOOK_MOUNT: Final = "/run/oxwrt-dhcp-hook"  # where the hook's directory appears in the sandbox
MAX_REPORT_BYTES: Final = 8192  # a DHCP reply fits in 1500 bytes; its hook report does too
_IFNAME = re.compile(r"^[^\s/:]{1,15}$")  # the kernel's IFNAMSIZ and forbidden characters

HookEvent = Literal["deconfig", "bound", "renew", "leasefail", "nak"]


class ReportError(ValueError):
    """A hook report that cannot be trusted; the message names the variable."""


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """One IPv4 lease as the client reported it. Durations are seconds from when it was bound;
    `lease_s` is None for an infinite lease."""

    interface: str
    address: str
    prefix: int
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    lease_s: int | None = None
    renew_s: int | None = None  # option 58 (T1), if the server sent it
    rebind_s: int | None = None  # option 59 (T2)
    server: str | None = None
    domain: str | None = None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix}"


class LeaseBound(msgspec.Struct, frozen=True):
    """`bound` (a new lease) or `renew` (the same lease extended, maybe with new options)."""

    lease: Lease
    renewed: bool = False


class LeaseLost(msgspec.Struct, frozen=True):
    """`deconfig`: the client starts over and holds no address (start-up, expiry, NAK)."""

    interface: str


class LeaseFailed(msgspec.Struct, frozen=True):
    """`leasefail` (no offer yet, the client keeps trying) or `nak` (the server refused)."""

    interface: str
    event: Literal["leasefail", "nak"]


Report = LeaseBound | LeaseLost | LeaseFailed


class Deadlines(msgspec.Struct, frozen=True):
    """Absolute times (the caller's clock). None everywhere for an infinite lease."""

    renew: float | None
    rebind: float | None
    expiry: float | None


class _HookPayload(msgspec.Struct, frozen=True):
    v: int
    event: str
    env: dict[str, str]


# ---------------------------------------------------------------- the command


class ClientPaths(msgspec.Struct, frozen=True, kw_only=True):
    """Where the pieces live on this machine: the hook script, the report socket, the Python
    that runs the hook, and busybox."""

    hook: str
    socket: str
    python: str = "/usr/bin/python3"
    busybox: str = BUSYBOX


def sent_hostname(wan: Wan, hostname: str) -> str | None:
    """The option-12 value, or None when nothing is to be sent."""
    if not wan.send_hostname:
        return None
    name = (wan.hostname_override if wan.hostname_override is not None else hostname).strip()
    return name or None


def client_argv(wan: Wan, hostname: str, paths: ClientPaths) -> list[str]:
    """udhcpc in the foreground on the WAN's iface, reporting through `paths.hook`.

    No `-R`: releasing on every stop would hand a reload a new address from the ISP.
    """
    if wan.mode != "dhcp":
        raise ValueError(f'WAN "{wan.name}" has mode "{wan.mode}"; only "dhcp" runs a client')
    argv = [
        paths.busybox, "udhcpc", "-f",
        "-i", wan.iface,
        "-s", paths.hook,
        "-t", str(DISCOVER_TRIES), "-T", str(DISCOVER_PAUSE_S), "-A", str(FAILED_WAIT_S),
    ]  # fmt: skip
    name = sent_hostname(wan, hostname)
    if name is not None:
        argv += ["-x", f"hostname:{name}"]
    # udhcpc sends "udhcp 1.35.0" as option 60 unless told otherwise; "" sends none.
    argv += ["-V", wan.vendor_class_id or ""]
    return argv


def client_env(paths: ClientPaths) -> dict[str, str]:
    return {ENV_SOCKET: paths.socket, ENV_PYTHON: paths.python}


def client_service(wan: Wan, hostname: str, paths: ClientPaths) -> Service:
    """The client as a supervised service: host network (it must reach the WAN link), raw sockets
    for DHCP, and the report socket's directory bound in (the sandbox has a private /run).
    Read-only is enough: connecting to a unix socket is not a write to its filesystem."""
    socket_dir = paths.socket.rpartition("/")[0] or "/"
    # The hook's directory is bound at a fixed place: the sandbox's /tmp and /run are private,
    # so a checkout or install living there would otherwise be invisible to the client.
    hook_dir, _, hook_file = paths.hook.rpartition("/")
    inside = msgspec.structs.replace(paths, hook=f"{HOOK_MOUNT}/{hook_file}")
    return Service(
        name=f"dhcp-{wan.name}",
        rootfs="/",
        entrypoint=client_argv(wan, hostname, inside),
        env=client_env(paths),
        net_mode="host",
        binds=[
            Bind(source=socket_dir, target=socket_dir),
            Bind(source=hook_dir or "/", target=HOOK_MOUNT),
        ],
        security=Security(caps=["NET_RAW", "NET_BIND_SERVICE"], pid_namespace=True),
        pids_max=8,
        memory_max=64 * 1024 * 1024,  # the hook is a short-lived Python
    )


# ---------------------------------------------------------------- reports


def parse_report(payload: bytes) -> Report:
    """One datagram from the hook (`{"v": 1, "event": "...", "env": {...}}`)."""
    if len(payload) > MAX_REPORT_BYTES:
        raise ReportError(f"report of {len(payload)} bytes exceeds {MAX_REPORT_BYTES}")
    try:
        hook = msgspec.json.decode(payload, type=_HookPayload)
    except msgspec.DecodeError as exc:
        raise ReportError(f"report is not a hook payload: {exc}") from None
    if hook.v != 1:
        raise ReportError(f"report version {hook.v} is not understood (expected 1)")
    return parse_event(hook.event, hook.env)


def parse_event(event: str, env: Mapping[str, str]) -> Report:
    """udhcpc's script arguments: `$1` and the variables it exports."""
    interface = _ifname(env)
    if event == "deconfig":
        return LeaseLost(interface)
    if event in ("leasefail", "nak"):
        return LeaseFailed(interface, "nak" if event == "nak" else "leasefail")
    if event not in ("bound", "renew"):
        raise ReportError(f'event "{event}" is not one of deconfig, bound, renew, leasefail, nak')
    address = _ipv4(env, "ip")
    if address is None:
        raise ReportError(f'event "{event}" without `ip`')
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise ReportError(f"`ip` {address} cannot be an interface address")
    routers = _ipv4_list(env, "router")
    lease_s = _seconds(env, "lease")
    if lease_s is None:
        raise ReportError(f'event "{event}" without `lease`')
    server = _ipv4(env, "serverid")
    domain = env.get("domain", "").strip() or None
    return LeaseBound(
        Lease(
            interface=interface,
            address=str(address),
            prefix=_prefix(env),
            gateway=str(routers[0]) if routers else None,
            dns=tuple(str(a) for a in _ipv4_list(env, "dns")),
            lease_s=None if lease_s == INFINITE_LEASE else lease_s,
            renew_s=_hex_seconds(env, "opt58"),
            rebind_s=_hex_seconds(env, "opt59"),
            server=str(server) if server is not None else None,
            domain=domain,
        ),
        renewed=event == "renew",
    )


def _ifname(env: Mapping[str, str]) -> str:
    name = env.get("interface", "")
    if not _IFNAME.match(name):
        raise ReportError(f"`interface` {name!r} is not an interface name")
    return name


def _ipv4(env: Mapping[str, str], key: str) -> ipaddress.IPv4Address | None:
    text = env.get(key, "").strip()
    if not text:
        return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ReportError(f"`{key}` {text!r} is not an IPv4 address") from None


def _ipv4_list(env: Mapping[str, str], key: str) -> list[ipaddress.IPv4Address]:
    out = []
    for item in env.get(key, "").split():
        try:
            out.append(ipaddress.IPv4Address(item))
        except ValueError:
            raise ReportError(f"`{key}` entry {item!r} is not an IPv4 address") from None
    return out


def _prefix(env: Mapping[str, str]) -> int:
    mask = env.get("mask", "").strip()
    if mask:
        if not mask.isdigit() or int(mask) > 32:
            raise ReportError(f"`mask` {mask!r} is not a prefix length 0..32")
        return int(mask)
    subnet = env.get("subnet", "").strip()
    if not subnet:
        return 32  # no option 1: RFC 2131 leaves the mask to the client; a host route is safe
    try:
        return ipaddress.IPv4Network(f"0.0.0.0/{subnet}").prefixlen
    except ValueError:
        raise ReportError(f"`subnet` {subnet!r} is not a netmask") from None


def _seconds(env: Mapping[str, str], key: str) -> int | None:
    text = env.get(key, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) > INFINITE_LEASE:
        raise ReportError(f"`{key}` {text!r} is not a number of seconds")
    return int(text)


def _hex_seconds(env: Mapping[str, str], key: str) -> int | None:
    """udhcpc passes options it has no name for as hex (`opt58=00000708`)."""
    text = env.get(key, "").strip()
    if not text:
        return None
    if len(text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ReportError(f"`{key}` {text!r} is not a 32-bit hex number")
    value = int(text, 16)
    return None if value == INFINITE_LEASE else value


# ---------------------------------------------------------------- facts and deadlines


def deadlines(lease: Lease, bound_at: float) -> Deadlines:
    if lease.lease_s is None:
        return Deadlines(None, None, None)
    renew = lease.renew_s if lease.renew_s is not None else lease.lease_s * T1_FRACTION
    rebind = lease.rebind_s if lease.rebind_s is not None else lease.lease_s * T2_FRACTION
    # A server may send T1/T2 beyond the lease; the lease still ends when it ends.
    return Deadlines(
        renew=bound_at + min(renew, lease.lease_s),
        rebind=bound_at + min(rebind, lease.lease_s),
        expiry=bound_at + lease.lease_s,
    )


def acquired(lease: Lease, now: float) -> LeaseAcquired:
    """The journal fact. `address` is "a.b.c.d/prefix": the event has no prefix field, and the
    address is useless to `net.desired` without one."""
    return LeaseAcquired(
        interface=lease.interface,
        address=lease.cidr,
        gateway=lease.gateway,
        dns=list(lease.dns),
        expires=deadlines(lease, now).expiry,
    )


def lease_facts(config: Config, leases: Mapping[str, LeaseRow], now: float) -> dict[str, net.Lease]:
    """`NetFacts.leases` (WAN name -> lease) from the folded leases (keyed by interface).

    A lease counts only for a DHCP WAN on that interface and only until it expires: a client that
    died silently must not keep the address and default route alive forever.
    """
    out: dict[str, net.Lease] = {}
    for wan in config.networks:
        if not isinstance(wan, Wan) or wan.mode != "dhcp":
            continue
        row = leases.get(wan.iface)
        if row is None or (row.expires is not None and row.expires <= now):
            continue
        address, _, prefix = row.address.partition("/")
        out[wan.name] = net.Lease(address, int(prefix) if prefix.isdigit() else 32, row.gateway)
    return out


def wan_dns(config: Config, leases: Mapping[str, LeaseRow], now: float) -> tuple[str, ...]:
    """The DNS servers the ISP gave: those of the best-priority WAN that has an address (a
    static WAN's `dns`, a DHCP WAN's unexpired lease). What dnsmasq falls back to when [dns]
    lists no upstream (`DnsmasqOptions.lease_dns`)."""
    for wan in config.wans_by_priority():
        if wan.mode == "static":
            return tuple(wan.dns)
        row = leases.get(wan.iface)
        if wan.mode == "dhcp" and row is not None and (row.expires is None or row.expires > now):
            return tuple(row.dns)
    return ()


def next_expiry(leases: Mapping[str, LeaseRow], now: float) -> float | None:
    """The earliest future expiry among the leases, for the runtime's one timer."""
    future = [r.expires for r in leases.values() if r.expires is not None and r.expires > now]
    return min(future, default=None)


__all__ = [
    "BUSYBOX",
    "ENV_PYTHON",
    "ENV_SOCKET",
    "ClientPaths",
    "Deadlines",
    "Lease",
    "LeaseBound",
    "LeaseFailed",
    "LeaseLost",
    "Report",
    "ReportError",
    "acquired",
    "client_argv",
    "client_env",
    "client_service",
    "deadlines",
    "lease_facts",
    "next_expiry",
    "parse_event",
    "parse_report",
    "sent_hostname",
    "wan_dns",
]
