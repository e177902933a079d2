"""The firewall compiler: config + runtime facts -> one nft transaction owning `table inet oxwrt`.

Owns the chain layout and rule placement. Invariants:
- base chains input/forward drop (output accepts) anything not from a zone interface; zone traffic
  is dispatched by a verdict map to `zone_<name>_<hook>`, whose last verdict is the zone's
  `default_input`/`default_forward`/`default_output`;
- the baseline (loopback, established/related, invalid drop, ICMPv6 ND/MLD/PTB, rate-limited echo,
  DHCP replies on every DHCP WAN, WireGuard ports) precedes every operator rule and raw_nft line,
  and lives in the same transaction as them, so a bad raw_nft line cannot leave it missing;
- pure and deterministic: the same (config, facts) renders the same bytes and digest.
"""

from __future__ import annotations

import msgspec

from oxwrtd.core import fw_nat
from oxwrtd.core.fw_rules import (
    RuleContext,
    ipset_lines,
    port_set,
    quoted_set,
    rule_lines,
    rule_matches,
)
from oxwrtd.core.fw_script import Chain, Ruleset, Table, render
from schema.config import Config, Rule, Wan, Zone
from schema.errors import format_path
from schema.values import HELPERS, parse_dscp

TABLE_FAMILY, TABLE_NAME = "inet", "oxwrt"
# Tables the Rust oxwrt created that this layout folds into `inet oxwrt`: deleted on every apply.
LEGACY_TABLES = ("ip oxwrt-nat", "ip6 oxwrt-nat6", "ip oxwrt-dnat", "ip6 oxwrt-dnat6")
HOOKS = {
    "input": "type filter hook input priority filter; policy drop;",
    "forward": "type filter hook forward priority filter; policy drop;",
    "output": "type filter hook output priority filter; policy accept;",
    # notrack must run before conntrack (-200); helpers after it, once the flow exists
    "notrack_prerouting": "type filter hook prerouting priority raw; policy accept;",
    "helper_prerouting": "type filter hook prerouting priority filter; policy accept;",
    # runs before the filter chains (-150 < 0): the mark/DSCP is set whatever the verdict
    "mangle_forward": "type filter hook forward priority mangle; policy accept;",
}
ND_TYPES = (
    "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, "
    "nd-router-advert, nd-redirect } accept"
)
MLD_TYPES = (
    "icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, "
    "mld2-listener-report } accept"
)
PTB = "icmpv6 type packet-too-big accept"
ECHO_LIMIT = "limit rate 20/second burst 50 packets"  # answers pings without becoming an amplifier
SYNFLOOD = "tcp flags & (fin|syn|rst|ack) == syn limit rate over 25/second burst 50 packets drop"


class FirewallFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What the compiler needs from the running system, gathered by the shell.

    wan_addresses: the router's current addresses on WAN-zone interfaces (hairpin NAT matches them).
    service_veths: isolated service name -> host-side veth interface (automatic forwards).
    utc_offset_minutes: offset of `config.timezone` from UTC at the current instant (schedules).
    """

    wan_addresses: tuple[str, ...] = ()
    service_veths: dict[str, str] = {}
    utc_offset_minutes: int = 0


def zone_chain(zone: str, hook: str) -> str:
    """Chain names are nft identifiers: anything but letters, digits and `_` becomes `_x<hex>_`."""
    safe = "".join(
        c if c.isascii() and (c.isalnum() or c == "_") else f"_x{ord(c):x}_" for c in zone
    )
    return f"zone_{safe}_{hook}"


def zone_interfaces(config: Config) -> dict[str, list[str]]:
    """Zone name -> its interfaces; an interface belongs to the first zone naming its network."""
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for zone in config.firewall.zones:
        ifaces = []
        for name in zone.networks:
            network = config.network(name)
            if network is not None and network.device not in seen:
                seen.add(network.device)
                ifaces.append(network.device)
        out[zone.name] = ifaces
    return out


def compile_firewall(config: Config, facts: FirewallFacts) -> Ruleset:
    table = Table(TABLE_FAMILY, TABLE_NAME)
    zones = zone_interfaces(config)
    ctx = RuleContext({s.name: s for s in config.ipsets}, facts.utc_offset_minutes)
    for i, ipset in enumerate(config.ipsets):
        table.sets.append((ipset.name, ipset_lines(ipset), format_path(("ipsets", i))))
    _baseline(table, config, zones)
    _automatic_forwards(table, config, facts, zones)
    fw_nat.masquerade(table, config, zones)
    for i, pf in enumerate(config.port_forwards):
        fw_nat.port_forward(table, i, pf, zones, facts.wan_addresses)
    zone_chains = {
        (z.name, hook): table.chain(zone_chain(z.name, hook))
        for z in config.firewall.zones
        for hook in ("input", "forward", "output")
    }
    _via_vpn(table, config, zones, zone_chains)
    for i, rule in enumerate(config.firewall.rules):
        if rule.enabled:
            _place_rule(
                table,
                zone_chains=zone_chains,
                zones=zones,
                ctx=ctx,
                index=i,
                rule=rule,
                config=config,
            )
    for i, fwd in enumerate(config.firewall.forwardings):
        chain = zone_chains.get((fwd.src, "forward"))
        dest = zones.get(fwd.dest, [])
        if chain is not None and dest:
            family = "" if fwd.family == "any" else f"meta nfproto {fwd.family} "
            chain.add(
                f"oifname {quoted_set(dest)} {family}accept",
                format_path(("firewall", "forwardings", i)),
            )
    extra = _raw_nft(table, config)
    for zone in config.firewall.zones:
        for hook, policy in (
            ("input", zone.default_input),
            ("forward", zone.default_forward),
            ("output", zone.default_output),
        ):
            zone_chains[(zone.name, hook)].add(
                policy, format_path(("firewall", "zones", _index(config, zone)))
            )
    _dispatch(table, config.firewall.zones, zones)
    return render(table, deletes=LEGACY_TABLES, extra=extra)


def _index(config: Config, zone: Zone) -> int:
    return config.firewall.zones.index(zone)


def _baseline(table: Table, config: Config, zones: dict[str, list[str]]) -> None:
    inp = table.chain("input", HOOKS["input"])
    fwd = table.chain("forward", HOOKS["forward"])
    out = table.chain("output", HOOKS["output"])
    defaults = config.firewall.defaults
    inp.add('iifname "lo" accept')
    out.add('oifname "lo" accept')
    for chain in (inp, fwd, out):
        chain.add("ct state established,related accept")
    if defaults.drop_invalid:
        inp.add("ct state invalid drop")
        fwd.add("ct state invalid drop")
    if defaults.synflood_protect:
        inp.add(SYNFLOOD)
    for chain in (inp, out):
        chain.extend([ND_TYPES, MLD_TYPES])
    for chain in (inp, fwd, out):
        chain.add(PTB)
    inp.add(f"icmp type echo-request {ECHO_LIMIT} accept")
    inp.add(f"icmpv6 type echo-request {ECHO_LIMIT} accept")
    for i, net in enumerate(config.networks):
        if isinstance(net, Wan) and net.mode == "dhcp":
            inp.add(
                f'iifname "{net.iface}" udp sport 67 udp dport 68 accept',
                format_path(("networks", i)),
            )
    wan_ifaces = sorted({n.iface for n in config.networks if isinstance(n, Wan)})
    for i, wg in enumerate(config.wireguard):
        if wan_ifaces:
            inp.add(
                f"iifname {quoted_set(wan_ifaces)} udp dport {wg.listen_port} accept",
                format_path(("wireguard", i)),
            )
    for zone in config.firewall.zones:
        if zone.mtu_fix and zones[zone.name]:
            ifs = quoted_set(zones[zone.name])
            for side in ("iifname", "oifname"):
                fwd.add(f"{side} {ifs} tcp flags syn tcp option maxseg size set rt mtu")


def _via_vpn(
    table: Table,
    config: Config,
    zones: dict[str, list[str]],
    zone_chains: dict[tuple[str, str], Chain],
) -> None:
    """`via_vpn` zones leave through the VPN tunnels only: a kill switch ahead of every rule drops
    their traffic towards the WANs (never towards other inside zones), and their DNS goes to the
    preferred VPN profile's resolver. Tunnels get the MSS clamp (their MTU is below 1500)."""
    tunnels = sorted({v.iface for v in config.vpn_client})
    if tunnels:
        fwd = table.chain("forward")
        for side in ("iifname", "oifname"):
            fwd.add(f"{side} {quoted_set(tunnels)} tcp flags syn tcp option maxseg size set rt mtu")
    wan_ifaces = sorted({n.iface for n in config.networks if isinstance(n, Wan)})
    profiles = sorted(config.vpn_client, key=lambda v: v.priority)
    dns = next((v.dns[0] for v in profiles if v.dns), None)
    for i, zone in enumerate(config.firewall.zones):
        if not zone.via_vpn:
            continue
        origin = format_path(("firewall", "zones", i))
        chain = zone_chains[(zone.name, "forward")]
        if tunnels:
            chain.add(f"oifname {quoted_set(tunnels)} accept", origin)
        if wan_ifaces:
            chain.add(f"oifname {quoted_set(wan_ifaces)} drop", origin)
        if dns and zones[zone.name]:
            table.chain(fw_nat.DSTNAT, fw_nat.HOOKS[fw_nat.DSTNAT]).add(
                f"iifname {quoted_set(zones[zone.name])} meta nfproto ipv4 "
                f"meta l4proto {{ tcp, udp }} th dport 53 dnat ip to {dns}",
                origin,
            )


def _automatic_forwards(
    table: Table, config: Config, facts: FirewallFacts, zones: dict[str, list[str]]
) -> None:
    """Isolated services: reachable from the first LAN, may reach the WAN and their dependencies."""
    fwd = table.chain("forward")
    lan = config.first_lan()
    wan_ifaces = sorted({n.iface for n in config.networks if isinstance(n, Wan)})
    for i, svc in enumerate(config.services):
        veth = facts.service_veths.get(svc.name)
        if veth is None:
            continue
        origin = format_path(("services", i))
        if lan is not None:
            fwd.add(f'iifname "{lan.bridge}" oifname "{veth}" accept', origin)
        if wan_ifaces:
            fwd.add(f'iifname "{veth}" oifname {quoted_set(wan_ifaces)} accept', origin)
        for dep in svc.depends_on:
            if dep in facts.service_veths:
                fwd.add(f'iifname "{veth}" oifname "{facts.service_veths[dep]}" accept', origin)


def _place_rule(
    table: Table,
    *,
    zone_chains: dict[tuple[str, str], Chain],
    zones: dict[str, list[str]],
    ctx: RuleContext,
    index: int,
    rule: Rule,
    config: Config,
) -> None:
    """src+dest -> the src zone's forward chain; src -> its input; dest -> the dest zone's output;
    neither -> input and forward before zone dispatch. Expects a validated config: a dangling
    zone reference is a bug upstream and raises rather than silently dropping the rule."""
    origin = f"firewall.rules[{index}]"  # format_path's rendering, without its cost per rule
    if rule.action == "dnat":
        fw_nat.legacy_dnat(table, index, rule, zones, config)
        return
    for side in ("src", "dest"):
        name = getattr(rule, side)
        if name is not None and name not in zones:
            raise ValueError(f"{origin}.{side}: zone {name!r} is not declared in firewall.zones")
    dest = zones.get(rule.dest, []) if rule.dest else []
    if rule.src and rule.dest:
        if dest:
            zone_chains[(rule.src, "forward")].extend(rule_lines(rule, ctx, oif=dest), origin)
    elif rule.src:
        zone_chains[(rule.src, "input")].extend(rule_lines(rule, ctx), origin)
    elif rule.dest:
        lines = rule_lines(rule, ctx, device_side="oifname")
        zone_chains[(rule.dest, "output")].extend(lines, origin)
    else:
        table.chain("input").extend(rule_lines(rule, ctx), origin)
        table.chain("forward").extend(rule_lines(rule, ctx), origin)
    src = zones.get(rule.src, []) if rule.src else []
    _companions(table, ctx, rule, origin=origin, src=src, dest=dest)


def _companions(
    table: Table, ctx: RuleContext, rule: Rule, *, origin: str, src: list[str], dest: list[str]
) -> None:
    """notrack, conntrack helper, mark and DSCP: extra chains that act alongside the verdict."""
    if not (rule.notrack or rule.helper or rule.set_mark is not None or rule.set_dscp is not None):
        return
    bare = msgspec.structs.replace(rule, limit=None, limit_burst=None, log=None, counter=False)
    if rule.notrack:
        chain = table.chain("notrack_prerouting", HOOKS["notrack_prerouting"])
        chain.extend(
            [f"{m} notrack" for m in rule_matches(bare, ctx, iif=src, with_ct_state=False)], origin
        )
    if rule.helper and rule.dest_port is not None:
        kernel_name, l4 = HELPERS[rule.helper]
        head = f"ct helper {rule.helper}"
        if all(h != head for h, _ in table.objects):
            table.objects.append((head, [f'type "{kernel_name}" protocol {l4}', "l3proto inet"]))
        iif = f"iifname {quoted_set(src)} " if src else ""
        table.chain("helper_prerouting", HOOKS["helper_prerouting"]).add(
            f'{iif}{l4} dport {port_set(rule.dest_port)} ct helper set "{rule.helper}"', origin
        )
    if rule.set_mark is not None or rule.set_dscp is not None:
        chain = table.chain("mangle_forward", HOOKS["mangle_forward"])
        for match in rule_matches(bare, ctx, iif=src, oif=dest, per_family=True):
            stmts = []
            if rule.set_mark is not None:
                stmts.append(f"meta mark set {rule.set_mark:#x}")
            if rule.set_dscp is not None:
                v6 = any(k in match for k in ("ip6 ", "nfproto ipv6", "icmpv6", "ipv6-icmp"))
                stmts.append(f"{'ip6' if v6 else 'ip'} dscp set {parse_dscp(rule.set_dscp)}")
            chain.add(f"{match} {' '.join(stmts)}".strip(), origin)


def _raw_nft(table: Table, config: Config) -> list[tuple[str, str | None]]:
    """raw_nft lines for our own chains go inline (after the baseline, before zone verdicts, so
    they can use the ipsets); lines for other tables follow the table as `add rule`."""
    extra: list[tuple[str, str | None]] = []
    for i, raw in enumerate(config.firewall.raw_nft):
        origin = format_path(("firewall", "raw_nft", i))
        if raw.table.split() == [TABLE_FAMILY, TABLE_NAME] and raw.chain in table.chains:
            table.chains[raw.chain].add(raw.rule, origin)
        else:
            extra.append((f"add rule {raw.table} {raw.chain} {raw.rule}", origin))
    return extra


def _dispatch(table: Table, zones_cfg: list[Zone], zones: dict[str, list[str]]) -> None:
    for hook, side in (("input", "iifname"), ("forward", "iifname"), ("output", "oifname")):
        entries = [
            f'"{iface}" : jump {zone_chain(z.name, hook)}'
            for z in zones_cfg
            for iface in zones[z.name]
        ]
        if entries:
            table.chain(hook).add(f"{side} vmap {{ {', '.join(entries)} }}")


__all__ = [
    "LEGACY_TABLES",
    "FirewallFacts",
    "compile_firewall",
    "zone_chain",
    "zone_interfaces",
]
