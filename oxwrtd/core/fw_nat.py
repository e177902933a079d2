"""Firewall NAT: masquerade, port forwards (DNAT, forward accept, hairpin), legacy DNAT rules.

Invariants:
- masquerade applies to IPv4 leaving through interfaces of zones with `masquerade = true` only;
  IPv6 is routed, never NAT66-ed;
- every DNAT has its forward accept (`ct status dnat` + the exact target), for v4 and v6 alike;
- reflection (hairpin) matches the router's WAN address as the shell last saw it, never its LAN
  addresses, and masquerades only the reflected flows (source outside the forward's src zone).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from oxwrtd.core.fw_rules import plain_set, port_set, quoted_set
from oxwrtd.core.fw_script import Table
from schema.config import Config, Lan, PortForward, Rule, Simple
from schema.errors import format_path
from schema.values import parse_socket_addr

DSTNAT = "dstnat"
DSTNAT_OUTPUT = "dstnat_output"
SRCNAT = "srcnat"
HOOKS = {
    DSTNAT: "type nat hook prerouting priority dstnat; policy accept;",
    DSTNAT_OUTPUT: "type nat hook output priority -100; policy accept;",
    SRCNAT: "type nat hook postrouting priority srcnat; policy accept;",
}


def _proto(proto: str, port: str) -> str | None:
    if proto in ("tcp", "udp"):
        return f"{proto} dport {port}"
    if proto == "both":
        return f"meta l4proto {{ tcp, udp }} th dport {port}"
    return None  # ICMP has no ports: nothing to forward


def _target(addr: IPv4Address | IPv6Address, port: int) -> tuple[str, str, str]:
    """(nfproto match, address keyword, `dnat ... to` text) for a target."""
    if addr.version == 6:
        return "meta nfproto ipv6", "ip6", f"dnat ip6 to [{addr}]:{port}"
    return "meta nfproto ipv4", "ip", f"dnat ip to {addr}:{port}"


def masquerade(table: Table, config: Config, zone_ifaces: dict[str, list[str]]) -> None:
    ifaces = sorted({i for z in config.firewall.zones if z.masquerade for i in zone_ifaces[z.name]})
    if ifaces:
        table.chain(SRCNAT, HOOKS[SRCNAT]).add(
            f"meta nfproto ipv4 oifname {quoted_set(ifaces)} masquerade"
        )


def port_forward(
    table: Table,
    index: int,
    pf: PortForward,
    zone_ifaces: dict[str, list[str]],
    wan_addresses: tuple[str, ...],
) -> None:
    origin = format_path(("port_forwards", index))
    addr, port = parse_socket_addr(pf.internal)
    outside = _proto(pf.proto, str(pf.external_port))
    inside = _proto(pf.proto, str(port))
    if outside is None or inside is None:
        return
    nfproto, ip, dnat = _target(addr, port)
    src_ifaces = zone_ifaces.get(pf.src, [])
    if src_ifaces:
        table.chain(DSTNAT, HOOKS[DSTNAT]).add(
            f"iifname {quoted_set(src_ifaces)} {nfproto} {outside} {dnat}", origin
        )
    table.chain("forward").add(
        f"{nfproto} {ip} daddr {addr} {inside} ct status dnat accept", origin
    )
    if not pf.reflection:
        return
    own = sorted(a for a in wan_addresses if ip_address(a).version == addr.version)
    if not own:
        return  # no WAN address known yet: the shell recompiles when one appears
    match = f"{ip} daddr {plain_set(own)} {outside} {dnat}"
    table.chain(DSTNAT, HOOKS[DSTNAT]).add(match, origin)
    table.chain(DSTNAT_OUTPUT, HOOKS[DSTNAT_OUTPUT]).add(match, origin)
    not_outside = f"iifname != {quoted_set(src_ifaces)} " if src_ifaces else ""
    table.chain(SRCNAT, HOOKS[SRCNAT]).add(
        f"{not_outside}{ip} daddr {addr} {inside} ct status dnat masquerade", origin
    )


def router_addresses(config: Config) -> list[str]:
    """IPv4 addresses the router answers on inside: LAN/Simple addresses and service veth hosts."""
    out = [n.address for n in config.networks if isinstance(n, Lan | Simple)]
    out += [s.veth.host_ip for s in config.services if s.veth is not None]
    return sorted(set(out), key=ip_address)


def legacy_dnat(
    table: Table, index: int, rule: Rule, zone_ifaces: dict[str, list[str]], config: Config
) -> None:
    """`action = "dnat"`: traffic to the router's own inside addresses is sent to `dnat_target`."""
    if rule.dnat_target is None or rule.dest_port is None or rule.proto is None:
        return  # validation requires a target; without proto/port there is nothing to match
    origin = format_path(("firewall", "rules", index))
    addr, port = parse_socket_addr(rule.dnat_target)
    outside = _proto(rule.proto, port_set(rule.dest_port))
    inside = _proto(rule.proto, str(port))
    own = router_addresses(config)
    if outside is None or inside is None or not own or addr.version != 4:
        return
    nfproto, ip, dnat = _target(addr, port)
    src = zone_ifaces.get(rule.src, []) if rule.src else []
    iif = f"iifname {quoted_set(src)} " if src else ""
    match = f"{ip} daddr {plain_set(own)} {outside} {dnat}"
    table.chain(DSTNAT, HOOKS[DSTNAT]).add(iif + match, origin)
    table.chain(DSTNAT_OUTPUT, HOOKS[DSTNAT_OUTPUT]).add(match, origin)
    table.chain("forward").add(
        f"{iif}{nfproto} {ip} daddr {addr} {inside} ct status dnat accept", origin
    )


__all__ = ["legacy_dnat", "masquerade", "port_forward", "router_addresses"]
