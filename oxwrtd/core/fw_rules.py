"""One `[[firewall.rules]]` entry as nft rule bodies (matches + statements), chain-agnostic.

Owns the meaning of every match field. Invariants:
- an ICMP rule matches ICMP (or ICMPv6) only, never "all traffic from the zone";
- ct_state is matched as listed, reject is a real reject, ports/ranges/lists become one set;
- mixed v4/v6 address lists split into one rule per family; a family with no address for a
  list that is non-empty is not emitted (the rule cannot match it);
- the result is deterministic: the same rule always renders to the same text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Final, Literal

from oxwrtd.core.fw_schedule import schedule_predicates
from schema.config import IpSet, PortSpec, Rule
from schema.schedule import parse_schedule
from schema.values import parse_limit, parse_ports

Fam = Literal[4, 6]

# ICMPv6-only type names (nft spells ND with an nd- prefix); names in ICMP_BOTH exist in both
ICMP_BOTH: Final = frozenset(
    {"echo-request", "echo-reply", "destination-unreachable", "time-exceeded", "parameter-problem"}
)
LOG_PREFIX_MAX: Final = 127  # NF_LOG_PREFIXLEN is 128 bytes including the NUL


@dataclass(frozen=True)
class RuleContext:
    """What a rule may refer to besides itself."""

    ipsets: dict[str, IpSet]
    utc_offset_minutes: int


def quoted_set(names: Sequence[str]) -> str:
    """`"a"` or `{ "a", "b" }` for interface names and the like."""
    items = [f'"{n}"' for n in names]
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def plain_set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def port_set(spec: PortSpec) -> str:
    return plain_set([f"{a}" if a == b else f"{a}-{b}" for a, b in parse_ports(spec)])


def split_families(addresses: Sequence[str]) -> dict[Fam, list[str]]:
    out: dict[Fam, list[str]] = {4: [], 6: []}
    for text in addresses:
        fam: Fam = 6 if ip_network(text, strict=False).version == 6 else 4
        out[fam].append(text)
    return out


def icmp_families(icmp_type: str, family: str) -> tuple[Fam, ...]:
    if family == "ipv6" or icmp_type.startswith(("nd-", "mld")) or icmp_type == "packet-too-big":
        return (6,)
    if family == "ipv4":
        return (4,)
    return (4, 6) if icmp_type in ICMP_BOTH else (4,)


def _families(
    rule: Rule,
    ctx: RuleContext,
    per_family: bool,
    src: dict[Fam, list[str]],
    dst: dict[Fam, list[str]],
) -> tuple[Fam | None, ...]:
    """The address families this rule must be emitted for; (None,) = family-agnostic."""
    candidates: list[Fam] = [4, 6]
    if rule.family == "ipv4":
        candidates = [4]
    elif rule.family == "ipv6":
        candidates = [6]
    if rule.match_set is not None:
        set_family = ctx.ipsets[rule.match_set.name].family
        candidates = [f for f in candidates if set_family == ("ipv4" if f == 4 else "ipv6")]
    if rule.icmp_type:
        allowed = icmp_families(rule.icmp_type, rule.family)
        candidates = [f for f in candidates if f in allowed]
    candidates = [
        f for f in candidates if (not rule.src_ip or src[f]) and (not rule.dest_ip or dst[f])
    ]
    family_bound = bool(
        rule.src_ip
        or rule.dest_ip
        or rule.match_set
        or rule.icmp_type
        or rule.proto == "icmp"
        or rule.family != "any"
        or per_family
    )
    return tuple(candidates) if family_bound else (None,)


def _proto_matches(rule: Rule, fam: Fam | None) -> list[str]:
    out: list[str] = []
    if rule.proto == "icmp" or rule.icmp_type:
        if rule.icmp_type:
            out.append(f"{'icmpv6' if fam == 6 else 'icmp'} type {rule.icmp_type}")
        else:
            out.append(f"meta l4proto {'ipv6-icmp' if fam == 6 else 'icmp'}")
        return out
    proto = rule.proto
    if proto is None and (rule.dest_port is not None or rule.src_port is not None):
        proto = "both"  # a port without a protocol means TCP or UDP, never "any"
    if proto in ("tcp", "udp"):
        if rule.dest_port is None and rule.src_port is None:
            out.append(f"meta l4proto {proto}")
        if rule.dest_port is not None:
            out.append(f"{proto} dport {port_set(rule.dest_port)}")
        if rule.src_port is not None:
            out.append(f"{proto} sport {port_set(rule.src_port)}")
    elif proto == "both":
        out.append("meta l4proto { tcp, udp }")
        if rule.dest_port is not None:
            out.append(f"th dport {port_set(rule.dest_port)}")
        if rule.src_port is not None:
            out.append(f"th sport {port_set(rule.src_port)}")
    return out


def rule_matches(
    rule: Rule,
    ctx: RuleContext,
    *,
    iif: Sequence[str] = (),
    oif: Sequence[str] = (),
    with_ct_state: bool = True,
    per_family: bool = False,
    device_side: Literal["iifname", "oifname"] = "iifname",
) -> list[str]:
    """Match prefixes for this rule (one per schedule window x address family).

    `per_family` forces one prefix per family even without addresses (DSCP is set per family).
    `device` names the input interface, or the output one for router-originated (output) rules.
    """
    schedules = [""]
    if rule.schedule:
        schedules = schedule_predicates(parse_schedule(rule.schedule), ctx.utc_offset_minutes)
    out = []
    src, dst = split_families(rule.src_ip), split_families(rule.dest_ip)
    for when in schedules:
        for fam in _families(rule, ctx, per_family, src, dst):
            parts = [when] if when else []
            if rule.device:
                parts.append(f'{device_side} "{rule.device}"')
            elif iif:
                parts.append(f"iifname {quoted_set(iif)}")
            if oif:
                parts.append(f"oifname {quoted_set(oif)}")
            ip = "ip6" if fam == 6 else "ip"
            addressed = False
            if fam is not None and src[fam]:
                parts.append(f"{ip} saddr {plain_set(src[fam])}")
                addressed = True
            if fam is not None and dst[fam]:
                parts.append(f"{ip} daddr {plain_set(dst[fam])}")
                addressed = True
            if rule.match_set is not None:
                field = "saddr" if rule.match_set.direction == "src" else "daddr"
                op = "!= " if rule.match_set.negate else ""
                parts.append(f"{ip} {field} {op}@{rule.match_set.name}")
                addressed = True
            if rule.src_mac:
                parts.append(f"ether saddr {plain_set([m.lower() for m in rule.src_mac])}")
            if with_ct_state and rule.ct_state:
                parts.append(f"ct state {plain_set([s.lower() for s in rule.ct_state])}")
            protos = _proto_matches(rule, fam)
            icmp_bound = rule.proto == "icmp" or bool(rule.icmp_type)
            if fam is not None and not addressed and not icmp_bound:
                parts.append(f"meta nfproto {'ipv6' if fam == 6 else 'ipv4'}")
            parts.extend(protos)
            out.append(" ".join(parts))
    return out


def rule_tail(rule: Rule) -> str:
    """limit, log, counter and the verdict, in nft's statement order."""
    parts = []
    if rule.limit:
        rate, unit = parse_limit(rule.limit)
        burst = f" burst {rule.limit_burst} packets" if rule.limit_burst else ""
        parts.append(f"limit rate {rate}/{unit}{burst}")
    if rule.log is not None:
        prefix = rule.log.replace('"', "'").replace("\\", "/")[:LOG_PREFIX_MAX]
        parts.append(f'log prefix "{prefix}"')
    if rule.counter:
        parts.append("counter")
    if rule.action == "reject":
        parts.append(f"reject with {rule.reject_with}" if rule.reject_with else "reject")
    else:
        parts.append(rule.action)
    return " ".join(parts)


def rule_lines(
    rule: Rule,
    ctx: RuleContext,
    *,
    oif: Sequence[str] = (),
    device_side: Literal["iifname", "oifname"] = "iifname",
) -> list[str]:
    tail = rule_tail(rule)
    matches = rule_matches(rule, ctx, oif=oif, device_side=device_side)
    return [f"{m} {tail}".strip() for m in matches]


def ipset_lines(ipset: IpSet) -> list[str]:
    kind = "ipv6_addr" if ipset.family == "ipv6" else "ipv4_addr"
    body = [f"type {kind}"]
    flags = []
    if any("/" in e for e in ipset.entries):
        flags.append("interval")
    if ipset.timeout:
        flags.append("timeout")
        body.append(f"timeout {ipset.timeout}")
    if flags:
        body.insert(1, f"flags {', '.join(flags)}")
    if ipset.entries:
        body.append("elements = { " + ", ".join(ipset.entries) + " }")
    return body


__all__ = [
    "RuleContext",
    "icmp_families",
    "ipset_lines",
    "plain_set",
    "port_set",
    "quoted_set",
    "rule_lines",
    "rule_matches",
    "rule_tail",
    "split_families",
]
