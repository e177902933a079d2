"""`oxctl HOST diag OP [ARGS]`: what the router's kernel holds, as text (the operator has no shell).

Pure: the runtime gathers the facts (netlink dumps, nft listing, /proc reads) and this module
checks the arguments and lays the facts out. The reference's read-only operations are here;
those that run programs (ping, traceroute, drill, ss, wg), send packets (wol), or can reboot the
box (stall) are refused as not available yet, each saying what to use instead. `wg` stays out
on purpose: the reference's prints the server's private key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from oxwrtd.core.net import Route
from oxwrtd.core.state import Lease


class LinkRow(msgspec.Struct, frozen=True):
    index: int
    name: str
    kind: str
    operstate: str
    mtu: int
    mac: str
    master: str = ""


class AddrRow(msgspec.Struct, frozen=True):
    link: str
    cidr: str  # "192.168.50.1/24", "fe80::1/64"


class RouteRow(msgspec.Struct, frozen=True):
    dest: str  # "default" or "prefix/len"
    gateway: str
    link: str
    metric: int
    table: int
    proto: int


def route_row(route: Route, proto: int, link: str) -> RouteRow:
    """A route as diag lists it; `link` is its device's name ("" when it has none)."""
    default = route.dest in {"0.0.0.0/0", "::/0"}
    return RouteRow(
        dest="default" if default else route.dest,
        gateway=route.gateway or "",
        link=link,
        metric=route.metric,
        table=route.table,
        proto=proto,
    )


class QdiscRow(msgspec.Struct, frozen=True):
    link: str
    kind: str
    handle: int  # tc's major:minor, as the kernel packs it (major << 16 | minor)
    parent: int  # TC_H_ROOT (0xffffffff) for a root qdisc


class Inventory(msgspec.Struct, frozen=True):
    links: list[LinkRow]
    addrs: list[AddrRow]
    routes: list[RouteRow]


class DiagError(ValueError):
    """A diag request that cannot be answered: unknown op, bad argument, or not available."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# the reference's curated flags (`diag sysctl` without a key)
SYSCTL_DEFAULTS: Final = (
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv6/conf/all/accept_ra",
    "net/ipv6/conf/default/accept_ra",
)
FILES: Final = {  # op -> the file it shows
    "conntrack": "/proc/net/nf_conntrack",
    "resolv": "/etc/resolv.conf",
    "modules": "/proc/modules",
}
READS: Final = (
    "links",
    "addresses",
    "routes",
    "firewall",
    "nft",
    "nft-summary",
    "dhcp",
    "sysctl",
    "qdisc",
    "dmesg",
    *FILES,
)
DMESG_LINES: Final = 2000  # the newest; a whole kernel ring can be megabytes
NOT_YET: Final = {
    "ping": 'run the `ping` health probe ([health] probes = ["ping:IP"]) or ping from a LAN host',
    "traceroute": "trace from a LAN host: the router forwards it",
    "drill": "query the router's resolver from a LAN host (`dig @192.168.50.1 NAME`)",
    "ss": "`oxctl HOST status` lists each service; `diag nft` shows what the firewall accepts",
    "ping-many": "ping from a LAN host",
    "wg": "WireGuard is not built yet (status lists it under problems)",
    "wol": "send the magic packet from a LAN host",
    "stall": "not offered: it would reboot the router through the watchdog",
}
_SYSCTL_KEY = re.compile(r"[A-Za-z0-9_.\-/]{1,200}")


def check(op: str, args: Sequence[str]) -> None:
    """Refuse an unknown op, one that is not available, or arguments it does not take."""
    if op in NOT_YET:
        raise DiagError(
            "unsupported", f"diag {op} is not available on this router yet; {NOT_YET[op]}"
        )
    if op not in READS:
        known = ", ".join(READS)
        raise DiagError("bad-request", f"no diag operation {op!r}; available: {known}")
    if op == "sysctl":
        if len(args) > 1:
            raise DiagError("bad-request", "diag sysctl takes at most one key")
        if args:
            sysctl_path(args[0])
    elif args:
        raise DiagError("bad-request", f"diag {op} takes no arguments")


def sysctl_path(key: str) -> str:
    """`net.ipv4.ip_forward` or `net/ipv4/ip_forward` -> the path under /proc/sys, never
    outside it."""
    if not _SYSCTL_KEY.fullmatch(key):
        raise DiagError("bad-request", f"{key!r} is not a sysctl key (letters, digits, . _ - /)")
    path = key.replace(".", "/") if "/" not in key else key
    parts = path.strip("/").split("/")
    if any(part in {"", ".", ".."} for part in parts):
        raise DiagError("bad-request", f"{key!r} is not a sysctl key")
    return "/".join(parts)


def links_text(inv: Inventory) -> str:
    rows = [(r.index, r.name, r.kind, r.operstate, r.mtu, r.mac, r.master) for r in inv.links]
    return table(("INDEX", "NAME", "KIND", "STATE", "MTU", "MAC", "MASTER"), sorted(rows))


def addresses_text(inv: Inventory) -> str:
    rows = [(a.link, a.cidr) for a in sorted(inv.addrs, key=lambda a: (a.link, a.cidr))]
    return table(("LINK", "ADDRESS"), rows)


def routes_text(inv: Inventory) -> str:
    rows = [
        (r.dest, r.gateway or "-", r.link or "-", r.metric, _table_name(r.table), _proto(r.proto))
        for r in inv.routes
    ]
    return table(("DESTINATION", "GATEWAY", "LINK", "METRIC", "TABLE", "PROTO"), rows)


def nft_summary(listing: str) -> str:
    """Per table, from `nft list ruleset` text: its chains (hook, rule count) and its sets
    (element count): the shape of a ruleset of thousands of lines in a screenful."""
    out: list[str] = []
    kind, name, hook, count = "", "", "", 0
    elements: str | None = None
    for raw in listing.splitlines():
        line = raw.strip()
        if not kind:
            if line.startswith("table ") and line.endswith("{"):
                out.append(line[:-1].rstrip())
            elif line.startswith(("chain ", "set ", "map ")) and line.endswith("{"):
                kind, name, hook, count, elements = line.split()[0], line.split()[1], "", 0, None
            continue
        if line == "}":
            if kind == "chain":
                out.append(f"  chain {name}{f' ({hook})' if hook else ''}: {count} rules")
            else:
                items = (elements or "").rstrip("} ").strip()
                out.append(f"  {kind} {name}: {items.count(',') + 1 if items else 0} elements")
            kind = ""
        elif kind == "chain":
            if line.startswith("type ") and " hook " in line:
                hook = line.split(";")[0]
            elif line:
                count += 1
        elif line.startswith("elements = {"):
            elements = line.removeprefix("elements = {")
        elif elements is not None and "}" not in elements:
            elements += " " + line
    return "\n".join(out) + "\n" if out else "no tables\n"


def qdiscs_text(rows: Sequence[QdiscRow]) -> str:
    out = [(r.link, r.kind, _tc_handle(r.handle), _tc_parent(r.parent)) for r in rows]
    return table(("LINK", "QDISC", "HANDLE", "PARENT"), sorted(out))


def kmsg_text(records: Sequence[bytes], limit: int = DMESG_LINES) -> str:
    """/dev/kmsg records (`prio,seq,usec,flags;text` plus ` KEY=value` lines) as dmesg prints
    them: `[seconds] text`, the newest `limit` lines."""
    lines: list[str] = []
    for record in records:
        head, sep, rest = record.decode(errors="replace").partition(";")
        fields = head.split(",")
        if not sep or len(fields) < 3 or not fields[2].isdigit():
            continue
        text = rest.split("\n", 1)[0]
        lines.append(f"[{int(fields[2]) / 1e6:12.6f}] {text}")
    dropped = len(lines) - limit
    head_note = [f"({dropped} older lines not shown)"] if dropped > 0 else []
    return "\n".join(head_note + lines[-limit:]) + "\n" if lines else "(kernel log is empty)\n"


def _tc_handle(handle: int) -> str:
    major, minor = handle >> 16, handle & 0xFFFF
    return f"{major:x}:{minor:x}" if minor else f"{major:x}:"


def _tc_parent(parent: int) -> str:
    return "root" if parent == 0xFFFFFFFF else _tc_handle(parent)


def dhcp_text(leases: Mapping[str, Lease], wan_ifaces: Sequence[str], now: float) -> str:
    """The DHCP lease each DHCP WAN holds, as the journal last recorded it."""
    if not wan_ifaces:
        return "no DHCP WAN in the running revision\n"
    lines = []
    for iface in wan_ifaces:
        lease = leases.get(iface)
        if lease is None:
            lines.append(f"{iface}: no lease yet")
            continue
        left = f"{int(lease.expires - now)} s left" if lease.expires is not None else "no expiry"
        expired = lease.expires is not None and lease.expires <= now
        lines.append(
            f"{iface}: {lease.address} via {lease.gateway or '-'}, dns "
            f"{', '.join(lease.dns) or '-'}, {'EXPIRED' if expired else left}"
        )
    return "\n".join(lines) + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def _table_name(number: int) -> str:
    return {254: "main", 255: "local", 253: "default"}.get(number, str(number))


def _proto(number: int) -> str:
    return {2: "kernel", 3: "boot", 4: "static", 16: "dhcp", 155: "oxwrt"}.get(number, str(number))


__all__ = [
    "FILES",
    "NOT_YET",
    "READS",
    "SYSCTL_DEFAULTS",
    "AddrRow",
    "DiagError",
    "Inventory",
    "LinkRow",
    "QdiscRow",
    "RouteRow",
    "addresses_text",
    "check",
    "dhcp_text",
    "kmsg_text",
    "links_text",
    "nft_summary",
    "qdiscs_text",
    "route_row",
    "routes_text",
    "sysctl_path",
    "table",
]
