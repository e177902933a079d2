"""Blocklists: fetched CIDR lists as interval sets in their own table, `inet oxwrt-blocklist`.

Kept out of the main transaction (a 100,000-prefix interval set costs seconds to rewrite), so a
config reload never rewrites them and a refresh never touches the firewall. Invariants:
- each list is dropped at prerouting (router input and forwarded traffic alike), for the list's
  `zones` interfaces when given, else from every interface; v4 and v6 prefixes both count;
- with no blocklists configured the table is deleted, never left stale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from ipaddress import IPv6Network, collapse_addresses

from oxwrtd.core.fw_rules import quoted_set
from oxwrtd.core.fw_script import Ruleset, Table, absent, render
from schema.config import Config
from schema.errors import format_path

TABLE = "inet oxwrt-blocklist"
# raw priority: a listed source is dropped before conntrack allocates an entry for it
HOOK = "type filter hook prerouting priority raw; policy accept;"


def set_name(list_name: str, family: int) -> str:
    """nft set names are identifiers: sanitise, and suffix the family."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", list_name)
    if not re.match(r"[A-Za-z_]", base):
        base = "_" + base
    return f"{base}_v{family}"


def compile_blocklists(
    config: Config, entries: Mapping[str, Sequence[str]], zone_ifaces: Mapping[str, Sequence[str]]
) -> Ruleset:
    """`entries`: list name -> prefixes fetched for it (already parsed; bad lines dropped)."""
    table = Table("inet", "oxwrt-blocklist")
    chain = table.chain("prerouting", HOOK)
    for i, bl in enumerate(config.blocklists):
        origin = format_path(("blocklists", i))
        v4: list[tuple[int, int]] = []
        v6: list[IPv6Network] = []
        for text in entries.get(bl.name, ()):
            if ":" in text:
                v6.append(IPv6Network(text, strict=False))
            else:
                v4.append(_v4_interval(text))
        # interval sets refuse overlapping elements: merge them first
        by_family = {
            4: [_v4_element(lo, hi) for lo, hi in _merge(v4)],
            6: [str(n) for n in collapse_addresses(v6)],
        }
        ifaces = sorted({i for z in bl.zones for i in zone_ifaces.get(z, ())})
        iif = f"iifname {quoted_set(ifaces)} " if ifaces else ""
        for family, nets in by_family.items():
            name = set_name(bl.name, family)
            kind = "ipv4_addr" if family == 4 else "ipv6_addr"
            body = [f"type {kind}", "flags interval"]
            if nets:
                body.append("elements = { " + ", ".join(nets) + " }")
            table.sets.append((name, body, origin))
            ip = "ip" if family == 4 else "ip6"
            chain.add(f"{iif}{ip} saddr @{name} drop", origin)
    if not config.blocklists:
        return absent(TABLE)
    return render(table)


def _v4_interval(text: str) -> tuple[int, int]:
    """`a.b.c.d[/p]` -> inclusive integer range, host bits ignored. Hand-parsed: ipaddress costs
    ~10 us an entry, a second for a 100,000-entry list."""
    addr, _, prefix_text = text.strip().partition("/")
    octets = addr.split(".")
    ok = len(octets) == 4 and all(o.isdigit() and int(o) <= 255 for o in octets)
    if not ok or not (prefix_text == "" or (prefix_text.isdigit() and int(prefix_text) <= 32)):
        raise ValueError(f"blocklist entry {text!r} is not an IPv4 address or prefix")
    value = int(octets[0]) << 24 | int(octets[1]) << 16 | int(octets[2]) << 8 | int(octets[3])
    size = 1 << (32 - int(prefix_text or 32))
    start = value & ~(size - 1)
    return start, start + size - 1


def _merge(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _dotted(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def _v4_element(lo: int, hi: int) -> str:
    size = hi - lo + 1
    if size & (size - 1) == 0 and lo % size == 0:  # an aligned power of two: a prefix
        return f"{_dotted(lo)}/{33 - size.bit_length()}"
    return f"{_dotted(lo)}-{_dotted(hi)}"


__all__ = ["TABLE", "compile_blocklists", "set_name"]
