"""The one validator every entry point runs (boot, push, set, CRUD, reload): cross-field rules.

Owns every rule the reference applies in any layer (CRUD, dry-run, live reload, `set`, and the
render-time checks it only logs) plus the fixes this project promises. Invariants:
- pure: a Config in, every issue out; it never stops at the first problem and never raises;
- each issue names the path of the offending key, using the indices of the raw arrays;
- disabled rules are checked like enabled ones (a rule enabled later must already be valid).
Name resolution: a rule, forwarding or port forward may name a declared zone OR a network of the
same name. The reference resolves an undeclared zone that way at runtime and its own example
config relies on it (an `iot` zone that is only a network), so both are accepted here; a name that
is neither is a dangling reference.
Service dependencies: the reference requires every `depends_on` target to have a veth because it
installs a veth-to-veth forward accept. That forward only exists between two isolated services, so
here the rule applies to isolated dependents only; for a host-network service `depends_on` is
start ordering alone and the dependency may run in any mode.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from schema import values
from schema.config import (
    HEALTH_PROBE_KINDS,
    HEALTH_PROBE_PREFIXES,
    WAN_MODE_KEYS,
    WAN_MODE_REQUIRED,
    Config,
    IpSet,
    Lan,
    Network,
    RouterAdvertisements,
    Rule,
    Service,
    Simple,
    Veth,
    Wan,
)
from schema.decode import decode_config, did_you_mean
from schema.errors import ConfigIssue, Path, format_path, render

IPv4Net = ipaddress.IPv4Network
IPv6Net = ipaddress.IPv6Network

IFNAMSIZ: Final = 15  # kernel interface names: 15 bytes plus NUL (linux/if.h)
HOST_NAME_MAX: Final = 64  # sethostname(2) limit (linux/utsname.h __NEW_UTS_LEN)
VLAN_MIN, VLAN_MAX = 1, 4094  # 0 and 4095 are reserved by 802.1Q
SSID_MAX_BYTES: Final = 32  # IEEE 802.11 SSID element
PSK_MIN, PSK_MAX = 8, 63  # WPA passphrase length; 64 hex digits is a raw PSK
LOG_PREFIX_MAX: Final = 128  # nft log prefix limit (NF_LOG_PREFIXLEN)
BLOCKLIST_REFRESH_MIN_S: Final = 60  # the reference silently raises lower values to 60
WG_KEY_LEN: Final = 44  # base64 of a 32-byte Curve25519 key
CONTROL_KEY_HEX: Final = 64  # ed25519 public key, hex
DNS_PROTOCOLS: Final = ("https", "quic", "tls", "udp", "tcp")
DNS_TLS_PROTOCOLS: Final = frozenset({"https", "quic", "tls"})
NTP_SOURCE_MODES: Final = ("pool", "server", "nts")
CT_STATES: Final = ("new", "established", "related", "invalid", "untracked")
RADIO_BANDS: Final = ("2g", "5g")
NFT_TABLE_FAMILIES: Final = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
HEALTH_WINDOW_MAX_S: Final = 24 * 3600  # like the confirm window: a gate must not last days
DNS_NAME_MAX: Final = 253  # RFC 1035 section 2.3.4, written as text without the final dot

_HOSTNAME_LABEL_RE: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_TIMEZONE_RE: Final = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$")
_NFT_IDENT_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WG_KEY_RE: Final = re.compile(r"^[A-Za-z0-9+/]{43}=$")
_HEX64_RE: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_REJECT_WITH_RE: Final = re.compile(r"^(tcp reset|(icmp|icmpv6|icmpx) type [a-z0-9-]+)$")
_ICMP_TYPE_RE: Final = re.compile(r"^[a-z0-9-]+$")
_COUNTRY_RE: Final = re.compile(r"^[A-Z]{2}$")
_HOST_PORT_RE: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):(\d{1,5})$")


def check(raw: Mapping[str, Any]) -> tuple[Config | None, list[ConfigIssue]]:
    """Decode, then validate when decoding succeeded; issues rendered with entry identities."""
    config, issues = decode_config(raw)
    if config is not None:
        issues = validate(config)
        if issues:
            config = None
    return config, [render(issue, raw) for issue in issues]


def validate(config: Config) -> list[ConfigIssue]:
    """Every cross-field problem in `config`; empty when the config can be applied."""
    return _Validator(config).run()


# ---------------------------------------------------------------- small parsers


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _ip(text: str) -> values.IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ifname_problem(name: str) -> str | None:
    if not name.strip():
        return "interface name is empty"
    if len(name.encode()) > IFNAMSIZ:
        return f'interface name "{name}" is longer than {IFNAMSIZ} characters'
    if name in (".", "..") or any(c in name for c in "/: \t\n") or not name.isprintable():
        return f'interface name "{name}" contains a character Linux does not allow (/ : or space)'
    return None


def _cidr_problem(text: str, family: str = "any", *, require_prefix: bool = False) -> str | None:
    """`addr` or `addr/prefix` of the family (ipv4, ipv6 or any); None when valid."""
    addr_text, slash, prefix_text = text.partition("/")
    addr = _ip(addr_text)
    if addr is None:
        kind = {"ipv4": "IPv4", "ipv6": "IPv6"}.get(family, "IP")
        return f'"{text}" is not an {kind} address or CIDR'
    if family == "ipv4" and addr.version != 4:
        return f'"{text}" is an IPv6 address where IPv4 is required'
    if family == "ipv6" and addr.version != 6:
        return f'"{text}" is an IPv4 address where IPv6 is required'
    if not slash:
        return f'"{text}" needs a prefix length (addr/prefix)' if require_prefix else None
    limit = 32 if addr.version == 4 else 128
    if not prefix_text.isdigit() or int(prefix_text) > limit:
        return f'"{text}": prefix "{prefix_text}" must be 0..{limit}'
    return None


def _subnet(address: str, prefix: int) -> IPv4Net | IPv6Net | None:
    try:
        return ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    except ValueError:
        return None


def _host_port_problem(text: str) -> str | None:
    """`host:port` where host is a name, an IPv4 address or a bracketed IPv6 address."""
    m = _HOST_PORT_RE.match(text)
    if not m:
        return f'"{text}" must be host:port (IPv6 as [addr]:port)'
    host, port = m.group(1), int(m.group(2))
    if host.startswith("[") and _ip(host[1:-1]) is None:
        return f'"{text}": {host} is not an IPv6 address'
    if not 1 <= port <= values.PORT_MAX:
        return f'"{text}": port {port} must be 1..{values.PORT_MAX}'
    return None


def _find_cycle(graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One dependency cycle as [a, b, ..., a], or None. Iterative DFS with colours."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            deps = [d for d in graph.get(node, ()) if d in graph and d != node]
            if i < len(deps):
                stack.append((node, i + 1))
                nxt = deps[i]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


# ---------------------------------------------------------------- the validator


# Rule fields a legacy `action = "dnat"` rule does not honour (oxwrtd/core/fw_nat.legacy_dnat).
DNAT_IGNORED_FIELDS: Final = (
    "dest", "family", "src_port", "src_ip", "dest_ip", "src_mac", "icmp_type", "ct_state",
    "limit", "limit_burst", "log", "counter", "reject_with", "device", "schedule", "match_set",
    "set_mark", "set_dscp", "helper", "notrack",
)  # fmt: skip


class _Validator:
    def __init__(self, config: Config) -> None:
        self.c = config
        self.issues: list[ConfigIssue] = []
        self.network_names = {n.name for n in config.networks}
        self.zone_names = {z.name for z in config.firewall.zones}
        self.ipsets: dict[str, IpSet] = {}
        for ipset in config.ipsets:  # the first of duplicates counts; the rest are reported
            self.ipsets.setdefault(ipset.name, ipset)

    def err(self, path: Path, message: str) -> None:
        self.issues.append(ConfigIssue(path=path, message=message))

    def run(self) -> list[ConfigIssue]:
        self.top()
        self.networks()
        self.zones()
        self.rules()
        self.forwardings()
        self.raw_nft()
        self.port_forwards()
        self.routes()
        self.ipset_defs()
        self.blocklists()
        self.wireguard()
        self.vpn_clients()
        self.radios()
        self.wifi()
        self.dns()
        self.dhcp()
        self.ntp()
        self.upnp()
        self.metrics()
        self.ddns()
        self.backup()
        self.services()
        self.control()
        self.health()
        return self.issues

    # ------------------------------------------------------------ shared checks

    def unique(
        self,
        entries: Sequence[Any],
        base: Path,
        key: str,
        get: Callable[[Any], str] | None = None,
        label: str | None = None,
    ) -> None:
        """Report every entry whose identity repeats an earlier one."""
        first: dict[str, int] = {}
        for i, entry in enumerate(entries):
            value = get(entry) if get else getattr(entry, key)
            if value in first:
                where = format_path((*base, first[value]))
                self.err((*base, i, key), f'duplicate {label or key} "{value}" (also {where})')
            else:
                first[value] = i

    def non_empty(self, path: Path, value: str, what: str) -> bool:
        if not value.strip():
            self.err(path, f"{what} must not be empty")
            return False
        return True

    def ifname(self, path: Path, name: str) -> None:
        problem = _ifname_problem(name)
        if problem:
            self.err(path, problem)

    def ipv4(self, path: Path, text: str) -> ipaddress.IPv4Address | None:
        addr = _ipv4(text)
        if addr is None:
            self.err(path, f'"{text}" is not an IPv4 address')
        return addr

    def ipv6(self, path: Path, text: str) -> ipaddress.IPv6Address | None:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            self.err(path, f'"{text}" is not an IPv6 address')
            return None

    def ip(self, path: Path, text: str) -> values.IPAddress | None:
        addr = _ip(text)
        if addr is None:
            self.err(path, f'"{text}" is not an IP address')
        return addr

    def cidr(
        self, path: Path, text: str, family: str = "any", *, require_prefix: bool = False
    ) -> None:
        problem = _cidr_problem(text, family, require_prefix=require_prefix)
        if problem:
            self.err(path, problem)

    def prefix(self, path: Path, prefix: int, version: int) -> bool:
        limit = 32 if version == 4 else 128
        if prefix > limit:
            self.err(path, f"prefix {prefix} is out of range for IPv{version} (0..{limit})")
            return False
        return True

    def absolute(self, path: Path, value: str, what: str) -> None:
        if not value.startswith("/"):
            self.err(path, f'{what} "{value}" must be an absolute path')

    def resolves(self, name: str) -> bool:
        return name in self.zone_names or name in self.network_names

    def zone_ref(self, path: Path, name: str, what: str) -> None:
        if not self.resolves(name):
            known = sorted(self.zone_names | self.network_names)
            hint = _suggest(name, known)
            self.err(path, f'{what} "{name}" is neither a zone nor a network{hint}')

    def network_ref(self, path: Path, name: str, what: str = "network") -> Network | None:
        net = self.c.network(name)
        if net is None:
            hint = _suggest(name, sorted(self.network_names))
            self.err(path, f'{what} "{name}" does not exist in [[networks]]{hint}')
        return net

    def port(self, path: Path, port: int) -> None:
        if port == 0:
            self.err(path, "port 0 cannot be used (1..65535)")

    # ------------------------------------------------------------ top level

    def top(self) -> None:
        name = self.c.hostname
        if not name:
            self.err(("hostname",), "hostname must not be empty")
        elif len(name) > HOST_NAME_MAX or not all(
            _HOSTNAME_LABEL_RE.match(label) for label in name.split(".")
        ):
            self.err(
                ("hostname",),
                f'"{name}" is not a valid hostname (letters, digits and inner hyphens, '
                f"dot-separated labels of 1..63, at most {HOST_NAME_MAX} characters)",
            )
        tz = self.c.timezone
        if tz is not None and (not _TIMEZONE_RE.match(tz) or ".." in tz):
            self.err(("timezone",), f'"{tz}" is not an IANA time zone name (e.g. Europe/Berlin)')

    # ------------------------------------------------------------ networks

    def networks(self) -> None:
        base: Path = ("networks",)
        self.unique(self.c.networks, base, "name")
        for i, net in enumerate(self.c.networks):
            p: Path = (*base, i)
            self.non_empty((*p, "name"), net.name, "network name")
            if isinstance(net, Wan):
                self.wan(p, net)
            elif isinstance(net, Lan):
                self.ifname((*p, "bridge"), net.bridge)
                for j, member in enumerate(net.members):
                    self.ifname((*p, "members", j), member)
                self.lan_like(p, net)
                self.vlan_ports(p, net)
            else:
                self.ifname((*p, "iface"), net.iface)
                self.lan_like(p, net)
                self.vlan(p, net)

    def wan(self, p: Path, wan: Wan) -> None:
        self.ifname((*p, "iface"), wan.iface)
        defaults = Wan(name="", iface="", mode=wan.mode)
        for mode, keys in WAN_MODE_KEYS.items():
            if mode == wan.mode:
                continue
            for key in sorted(keys):
                if getattr(wan, key) != getattr(defaults, key):
                    self.err(
                        (*p, key),
                        f'`{key}` is only for mode "{mode}"; this WAN has mode "{wan.mode}"',
                    )
        for key in WAN_MODE_REQUIRED[wan.mode]:
            if getattr(wan, key) is None:
                self.err((*p, key), f'mode "{wan.mode}" requires `{key}`')
        if wan.mode == "static":
            if wan.address is not None:
                self.ipv4((*p, "address"), wan.address)
            if wan.prefix is not None:
                self.prefix((*p, "prefix"), wan.prefix, 4)
            if wan.gateway is not None:
                self.ipv4((*p, "gateway"), wan.gateway)
            for j, server in enumerate(wan.dns):
                self.ip((*p, "dns", j), server)
        if wan.mode == "pppoe":
            if wan.username is not None:
                self.non_empty((*p, "username"), wan.username, "PPPoE username")
            if wan.password is not None:
                self.non_empty((*p, "password"), wan.password, "PPPoE password")
        if wan.probe_target is not None:
            self.ip((*p, "probe_target"), wan.probe_target)
        if wan.mac_address is not None:
            self.mac((*p, "mac_address"), wan.mac_address, own=True)
        if wan.sqm is not None:
            for key in ("bandwidth_up_kbps", "bandwidth_down_kbps"):
                if getattr(wan.sqm, key) == 0:
                    self.err((*p, "sqm", key), "bandwidth 0 would stop all traffic; omit the key")

    def mac(self, path: Path, text: str, *, own: bool) -> None:
        try:
            mac = values.parse_mac(text)
        except ValueError as exc:
            self.err(path, str(exc))
            return
        if own and values.mac_is_multicast(mac):
            self.err(path, f'"{text}" is a multicast MAC address; an interface needs a unicast one')
        elif own and mac == "00:00:00:00:00:00":
            self.err(path, "the all-zero MAC address cannot be assigned to an interface")

    def lan_like(self, p: Path, net: Lan | Simple) -> None:
        self.ipv4((*p, "address"), net.address)
        self.prefix((*p, "prefix"), net.prefix, 4)
        if net.ipv6_address is not None:
            self.ipv6((*p, "ipv6_address"), net.ipv6_address)
        if net.ipv6_prefix is not None:
            self.prefix((*p, "ipv6_prefix"), net.ipv6_prefix, 6)
            if net.ipv6_address is None:
                self.err((*p, "ipv6_prefix"), "ipv6_prefix needs ipv6_address")
        ra = net.router_advertisements
        if ra is not None:
            self.router_advertisements((*p, "router_advertisements"), ra)

    def router_advertisements(self, p: Path, ra: RouterAdvertisements) -> None:
        # RFC 4861 §6.2.1 limits, which corerad enforces when it loads the file
        max_s = ra.max_interval_s if ra.max_interval_s is not None else 180
        if ra.max_interval_s is not None and not 4 <= max_s <= 1800:
            self.err((*p, "max_interval_s"), f"{max_s} is out of range (4..1800 seconds)")
        if ra.min_interval_s is not None and not 3 <= ra.min_interval_s <= 0.75 * max_s:
            self.err(
                (*p, "min_interval_s"),
                f"{ra.min_interval_s} must be 3..{int(0.75 * max_s)} (3/4 of max_interval_s)",
            )
        lifetime = ra.default_lifetime_s
        if lifetime is not None and lifetime != 0 and not max_s <= lifetime <= 9000:
            self.err(
                (*p, "default_lifetime_s"),
                f"{lifetime} must be 0 or {max_s}..9000 seconds (at least max_interval_s)",
            )

    def vlan(self, p: Path, net: Simple) -> None:
        if net.vlan is not None and not VLAN_MIN <= net.vlan <= VLAN_MAX:
            self.err((*p, "vlan"), f"VLAN id {net.vlan} is out of range ({VLAN_MIN}..{VLAN_MAX})")
        if net.vlan is not None and net.vlan_parent is None:
            self.err((*p, "vlan"), "`vlan` needs `vlan_parent` (the interface carrying the tag)")
        if net.vlan_parent is not None:
            if net.vlan is None:
                self.err((*p, "vlan_parent"), "`vlan_parent` needs `vlan` (the VLAN id)")
            self.ifname((*p, "vlan_parent"), net.vlan_parent)

    def vlan_ports(self, p: Path, lan: Lan) -> None:
        if lan.vlan_ports and not lan.vlan_filtering:
            self.err((*p, "vlan_ports"), "vlan_ports needs vlan_filtering = true")
        for j, port in enumerate(lan.vlan_ports):
            pp: Path = (*p, "vlan_ports", j)
            self.ifname((*pp, "iface"), port.iface)
            if port.pvid is not None and not VLAN_MIN <= port.pvid <= VLAN_MAX:
                self.err((*pp, "pvid"), f"VLAN id {port.pvid} is out of range (1..4094)")
            for k, vid in enumerate(port.tagged):
                if not VLAN_MIN <= vid <= VLAN_MAX:
                    self.err((*pp, "tagged", k), f"VLAN id {vid} is out of range (1..4094)")

    # ------------------------------------------------------------ firewall

    def zones(self) -> None:
        base: Path = ("firewall", "zones")
        zones = self.c.firewall.zones
        self.unique(zones, base, "name")
        wans = {n.name: n for n in self.c.networks if isinstance(n, Wan)}
        for i, zone in enumerate(zones):
            p: Path = (*base, i)
            self.non_empty((*p, "name"), zone.name, "zone name")
            for j, net in enumerate(zone.networks):
                self.network_ref((*p, "networks", j), net)
            if zone.wan is not None and zone.wan not in wans:
                hint = _suggest(zone.wan, sorted(wans))
                self.err((*p, "wan"), f'"{zone.wan}" is not a WAN network{hint}')
            if zone.via_vpn and not self.c.vpn_client:
                self.err(
                    (*p, "via_vpn"),
                    "via_vpn needs at least one [[vpn_client]]; without one the zone has no route",
                )
            if zone.via_vpn and zone.wan is not None:
                self.err((*p, "wan"), "set either `wan` or `via_vpn`, not both")

    def rules(self) -> None:
        base: Path = ("firewall", "rules")
        self.unique(self.c.firewall.rules, base, "name")
        for i, rule in enumerate(self.c.firewall.rules):
            self.rule((*base, i), rule)

    def rule(self, p: Path, rule: Rule) -> None:
        self.non_empty((*p, "name"), rule.name, "rule name")
        if rule.src is not None:
            self.zone_ref((*p, "src"), rule.src, "src")
        if rule.dest is not None:
            self.zone_ref((*p, "dest"), rule.dest, "dest")
        if rule.action == "dnat":
            if rule.dnat_target is None:
                self.err((*p, "action"), 'action "dnat" requires dnat_target ("ipv4:port")')
            else:
                self.dnat_target((*p, "dnat_target"), rule.dnat_target)
            self.dnat_fields(p, rule)
        elif rule.dnat_target is not None:
            self.err(
                (*p, "dnat_target"),
                f'dnat_target is only valid with action "dnat" (action is "{rule.action}")',
            )
        if rule.proto == "icmp":
            for key in ("dest_port", "src_port"):
                if getattr(rule, key) is not None:
                    self.err((*p, key), "proto icmp has no ports; remove the port or the proto")
        for key in ("dest_port", "src_port"):
            spec = getattr(rule, key)
            if spec is not None:
                try:
                    values.parse_ports(spec)
                except ValueError as exc:
                    self.err((*p, key), str(exc))
        if rule.schedule is not None:
            self.schedule((*p, "schedule"), rule.schedule)
        if rule.reject_with is not None:
            if rule.action != "reject":
                self.err(
                    (*p, "reject_with"),
                    f'reject_with is only valid with action "reject" (action is "{rule.action}")',
                )
            elif not _REJECT_WITH_RE.match(rule.reject_with):
                self.err(
                    (*p, "reject_with"),
                    f'"{rule.reject_with}" must be "tcp reset" or "icmp|icmpv6|icmpx type NAME"',
                )
        if rule.limit is not None:
            try:
                values.parse_limit(rule.limit)
            except ValueError as exc:
                self.err((*p, "limit"), str(exc))
        if rule.limit_burst is not None and rule.limit is None:
            self.err((*p, "limit_burst"), "limit_burst needs `limit`")
        if rule.log is not None:
            if len(rule.log) > LOG_PREFIX_MAX:
                self.err((*p, "log"), f"log prefix is longer than {LOG_PREFIX_MAX} characters")
            if '"' in rule.log or not rule.log.isprintable():
                self.err((*p, "log"), "log prefix must not contain quotes or control characters")
        if rule.device is not None:
            if not rule.device.strip():
                self.err((*p, "device"), "device must not be blank")
            else:
                self.ifname((*p, "device"), rule.device)
        for key in ("set_mark", "set_dscp"):
            if getattr(rule, key) is not None and rule.action == "drop":
                self.err((*p, key), f'{key} does nothing with action "drop" (packet is dropped)')
        if rule.set_dscp is not None:
            try:
                values.parse_dscp(rule.set_dscp)
            except ValueError as exc:
                self.err((*p, "set_dscp"), str(exc))
        self.helper(p, rule)
        self.match_set(p, rule)
        for key in ("src_ip", "dest_ip"):
            for j, text in enumerate(getattr(rule, key)):
                self.rule_address((*p, key, j), text, rule.family)
        for j, mac in enumerate(rule.src_mac):
            self.mac((*p, "src_mac", j), mac, own=False)
        for j, state in enumerate(rule.ct_state):
            if state not in CT_STATES:
                choices = ", ".join(CT_STATES)
                self.err((*p, "ct_state", j), f'"{state}" is not a conntrack state ({choices})')
        if rule.icmp_type is not None and not _ICMP_TYPE_RE.match(rule.icmp_type):
            self.err((*p, "icmp_type"), f'"{rule.icmp_type}" is not an ICMP type name')

    def dnat_fields(self, p: Path, rule: Rule) -> None:
        """A legacy dnat rule matches the router's own inside addresses by proto and dest_port,
        optionally from `src`; any other match would be silently ignored, so it is refused."""
        if rule.proto not in ("tcp", "udp", "both"):
            self.err((*p, "proto"), 'action "dnat" needs proto "tcp", "udp" or "both"')
        if rule.dest_port is None:
            self.err((*p, "dest_port"), 'action "dnat" needs dest_port (the port to redirect)')
        defaults = Rule(name=rule.name, action="dnat")
        for key in DNAT_IGNORED_FIELDS:
            if getattr(rule, key) != getattr(defaults, key):
                self.err(
                    (*p, key),
                    f'{key} cannot be combined with action "dnat" (it would be ignored); use a '
                    "[[port_forwards]] entry or a separate rule",
                )

    def dnat_target(self, path: Path, target: str) -> None:
        host, sep, port = target.rpartition(":")
        if not sep:
            self.err(path, f'"{target}" is not ipv4:port')
        elif _ipv4(host) is None:
            self.err(path, f'"{target}": "{host}" is not an IPv4 address')
        elif not port.isdigit() or not 1 <= int(port) <= values.PORT_MAX:
            self.err(path, f'"{target}": port "{port}" must be 1..65535')

    def schedule(self, path: Path, text: str) -> None:
        from schema.schedule import ScheduleError, parse_schedule

        try:
            parse_schedule(text)
        except ScheduleError as exc:
            self.err(path, f"schedule: {exc}")

    def helper(self, p: Path, rule: Rule) -> None:
        if rule.helper is None:
            return
        if rule.notrack:
            self.err((*p, "helper"), "helper cannot work with notrack = true (no conntrack entry)")
        known = values.HELPERS.get(rule.helper)
        if known is None:
            choices = ", ".join(values.HELPERS)
            hint = _suggest(rule.helper, list(values.HELPERS))
            self.err((*p, "helper"), f'unknown helper "{rule.helper}" ({choices}){hint}')
            return
        l4 = known[1]
        if rule.dest_port is None:
            self.err(
                (*p, "helper"),
                f'helper "{rule.helper}" needs dest_port (the {l4.upper()} port it watches)',
            )
        if rule.proto in ("tcp", "udp", "icmp") and rule.proto != l4:
            self.err((*p, "proto"), f'helper "{rule.helper}" tracks {l4}, not {rule.proto}')

    def match_set(self, p: Path, rule: Rule) -> None:
        ms = rule.match_set
        if ms is None:
            return
        path: Path = (*p, "match_set", "name")
        ipset = self.ipsets.get(ms.name)
        if ipset is None:
            hint = _suggest(ms.name, sorted(self.ipsets))
            self.err(path, f'ipset "{ms.name}" does not exist in [[ipsets]]{hint}')
        elif ipset.family == "any":
            self.err(path, f'ipset "{ms.name}" has family "any"; it must be ipv4 or ipv6')
        elif rule.family not in ("any", ipset.family):
            self.err(
                (*p, "family"),
                f'family "{rule.family}" conflicts with ipset "{ms.name}" ({ipset.family})',
            )

    def rule_address(self, path: Path, text: str, family: str) -> None:
        problem = _cidr_problem(text)
        if problem:
            self.err(path, problem)
            return
        version = ipaddress.ip_address(text.partition("/")[0]).version
        if family not in ("any", f"ipv{version}"):
            self.err(path, f'"{text}" is IPv{version} but the rule has family "{family}"')

    def forwardings(self) -> None:
        base: Path = ("firewall", "forwardings")
        for i, fwd in enumerate(self.c.firewall.forwardings):
            self.zone_ref((*base, i, "src"), fwd.src, "src")
            self.zone_ref((*base, i, "dest"), fwd.dest, "dest")
            if fwd.src == fwd.dest:
                self.err((*base, i, "dest"), f'src and dest are both "{fwd.src}"')

    def raw_nft(self) -> None:
        base: Path = ("firewall", "raw_nft")
        for i, raw in enumerate(self.c.firewall.raw_nft):
            p: Path = (*base, i)
            family, _, name = raw.table.partition(" ")
            if family not in NFT_TABLE_FAMILIES or not _NFT_IDENT_RE.match(name):
                self.err(
                    (*p, "table"),
                    f'"{raw.table}" must be "FAMILY NAME" with FAMILY one of '
                    f"{', '.join(NFT_TABLE_FAMILIES)}",
                )
            if not _NFT_IDENT_RE.match(raw.chain):
                self.err((*p, "chain"), f'"{raw.chain}" is not an nft chain name')
            if self.non_empty((*p, "rule"), raw.rule, "rule") and "\n" in raw.rule:
                self.err((*p, "rule"), "rule must be one line (one entry per rule)")

    def port_forwards(self) -> None:
        base: Path = ("port_forwards",)
        self.unique(self.c.port_forwards, base, "name")
        for i, pf in enumerate(self.c.port_forwards):
            p: Path = (*base, i)
            self.non_empty((*p, "name"), pf.name, "port forward name")
            if pf.proto == "icmp":
                self.err((*p, "proto"), 'proto "icmp" cannot be port-forwarded (tcp, udp or both)')
            self.port((*p, "external_port"), pf.external_port)
            self.zone_ref((*p, "src"), pf.src, "src")
            if pf.dest is not None:
                self.zone_ref((*p, "dest"), pf.dest, "dest")
            try:
                addr, port = values.parse_socket_addr(pf.internal)
            except ValueError as exc:
                self.err((*p, "internal"), str(exc))
                continue
            self.port((*p, "internal"), port)
            if pf.dest is None and not self.in_local_subnet(addr):
                self.err(
                    (*p, "internal"),
                    f"{addr} is not inside any LAN/simple network; set `dest` to its zone",
                )

    def in_local_subnet(self, addr: values.IPAddress) -> bool:
        for net in self.c.networks:
            if isinstance(net, Wan):
                continue
            if addr.version == 4:
                subnet = _subnet(net.address, net.prefix)
            elif net.ipv6_address is not None:
                ipv6_prefix = 64 if net.ipv6_prefix is None else net.ipv6_prefix
                subnet = _subnet(net.ipv6_address, ipv6_prefix)
            else:
                continue
            # an unparseable network is reported on its own; do not add a second error here
            if subnet is None or addr in subnet:
                return True
        return False

    def routes(self) -> None:
        for key, version in (("routes", 4), ("routes6", 6)):
            for i, route in enumerate(getattr(self.c, key)):
                p: Path = (key, i)
                family = f"ipv{version}"
                dest_ok = _cidr_problem(route.dest, family) is None and "/" not in route.dest
                if not dest_ok:
                    self.err((*p, "dest"), f'"{route.dest}" is not an IPv{version} address')
                prefix_ok = self.prefix((*p, "prefix"), route.prefix, version)
                if dest_ok and prefix_ok:
                    try:
                        ipaddress.ip_network(f"{route.dest}/{route.prefix}")
                    except ValueError:
                        self.err(
                            (*p, "dest"),
                            f"{route.dest}/{route.prefix} has host bits set; the network is "
                            f"{_subnet(route.dest, route.prefix)}",
                        )
                if route.gateway is not None and (
                    _cidr_problem(route.gateway, family) or "/" in route.gateway
                ):
                    self.err((*p, "gateway"), f'"{route.gateway}" is not an IPv{version} address')
                self.ifname((*p, "iface"), route.iface)

    def ipset_defs(self) -> None:
        base: Path = ("ipsets",)
        self.unique(self.c.ipsets, base, "name")
        for i, ipset in enumerate(self.c.ipsets):
            p: Path = (*base, i)
            if self.non_empty((*p, "name"), ipset.name, "ipset name") and not _NFT_IDENT_RE.match(
                ipset.name
            ):
                self.err((*p, "name"), f'"{ipset.name}" must be letters, digits and _ (nft set)')
            if ipset.family == "any":
                self.err((*p, "family"), 'an ipset holds one family: "ipv4" or "ipv6", not "any"')
            else:
                for j, entry in enumerate(ipset.entries):
                    self.cidr((*p, "entries", j), entry, ipset.family)
            if ipset.timeout is not None:
                self.duration((*p, "timeout"), ipset.timeout, days=True)

    def duration(self, path: Path, text: str, *, days: bool = False) -> None:
        try:
            seconds = values.parse_duration(text, days=days)
        except ValueError as exc:
            self.err(path, str(exc))
            return
        if seconds == 0:
            self.err(path, f'duration "{text}" must be longer than zero')

    def blocklists(self) -> None:
        base: Path = ("blocklists",)
        self.unique(self.c.blocklists, base, "name")
        for i, bl in enumerate(self.c.blocklists):
            p: Path = (*base, i)
            self.non_empty((*p, "name"), bl.name, "blocklist name")
            if not bl.url.startswith(("http://", "https://", "file:///")):
                self.err(
                    (*p, "url"),
                    f'"{bl.url}" must be an http://, https:// or file:/// (absolute path) URL',
                )
            if bl.refresh_seconds < BLOCKLIST_REFRESH_MIN_S:
                self.err(
                    (*p, "refresh_seconds"),
                    f"{bl.refresh_seconds} is below the minimum of {BLOCKLIST_REFRESH_MIN_S}",
                )
            for j, zone in enumerate(bl.zones):
                self.zone_ref((*p, "zones", j), zone, "zone")

    # ------------------------------------------------------------ VPN

    def wg_key(self, path: Path, key: str, what: str) -> None:
        if not _WG_KEY_RE.match(key):
            self.err(
                path, f"{what} must be a base64 WireGuard key ({WG_KEY_LEN} characters, ending =)"
            )

    def wireguard(self) -> None:
        base: Path = ("wireguard",)
        self.unique(self.c.wireguard, base, "name")
        self.unique(self.c.wireguard, base, "listen_port", lambda w: str(w.listen_port))
        self.unique(self.c.wireguard, base, "key_path")
        for i, wg in enumerate(self.c.wireguard):
            p: Path = (*base, i)
            self.non_empty((*p, "name"), wg.name, "WireGuard name")
            self.port((*p, "listen_port"), wg.listen_port)
            self.ifname((*p, "iface") if wg.iface is not None else (*p, "name"), wg.device)
            self.absolute((*p, "key_path"), wg.key_path, "key_path")
            self.unique(wg.peers, (*p, "peers"), "name")
            self.unique(wg.peers, (*p, "peers"), "pubkey", label="public key")
            for j, peer in enumerate(wg.peers):
                pp: Path = (*p, "peers", j)
                self.non_empty((*pp, "name"), peer.name, "peer name")
                self.wg_key((*pp, "pubkey"), peer.pubkey, "pubkey")
                if peer.preshared_key is not None:
                    self.wg_key((*pp, "preshared_key"), peer.preshared_key, "preshared_key")
                items = [s.strip() for s in peer.allowed_ips.split(",")]
                if not any(items):
                    self.err((*pp, "allowed_ips"), "allowed_ips must list at least one CIDR")
                for item in items:
                    problem = _cidr_problem(item, require_prefix=True)
                    if problem:
                        self.err((*pp, "allowed_ips"), problem)
                if peer.endpoint is not None:
                    problem = _host_port_problem(peer.endpoint)
                    if problem:
                        self.err((*pp, "endpoint"), problem)

    def vpn_clients(self) -> None:
        base: Path = ("vpn_client",)
        self.unique(self.c.vpn_client, base, "name")
        self.unique(self.c.vpn_client, base, "iface")
        for i, vpn in enumerate(self.c.vpn_client):
            p: Path = (*base, i)
            self.non_empty((*p, "name"), vpn.name, "VPN profile name")
            self.ifname((*p, "iface"), vpn.iface)
            self.cidr((*p, "address"), vpn.address, "ipv4", require_prefix=True)
            if vpn.address_v6 is not None:
                self.cidr((*p, "address_v6"), vpn.address_v6, "ipv6", require_prefix=True)
            self.ipv4((*p, "probe_target"), vpn.probe_target)
            problem = _host_port_problem(vpn.endpoint)
            if problem:
                self.err((*p, "endpoint"), problem)
            self.wg_key((*p, "public_key"), vpn.public_key, "public_key")
            self.absolute((*p, "key_path"), vpn.key_path, "key_path")
            if vpn.preshared_key_path is not None:
                self.absolute((*p, "preshared_key_path"), vpn.preshared_key_path, "path")
            for j, server in enumerate(vpn.dns):
                self.ipv4((*p, "dns", j), server)
            if not 576 <= vpn.mtu <= 65535:
                self.err((*p, "mtu"), f"MTU {vpn.mtu} is out of range (576..65535)")
            for j, dest in enumerate(vpn.bypass_destinations):
                self.cidr((*p, "bypass_destinations", j), dest, "ipv4")
            for j, dest in enumerate(vpn.bypass_destinations_v6):
                self.cidr((*p, "bypass_destinations_v6", j), dest, "ipv6")

    # ------------------------------------------------------------ Wi-Fi

    def radios(self) -> None:
        base: Path = ("radios",)
        self.unique(self.c.radios, base, "phy")
        for i, radio in enumerate(self.c.radios):
            p: Path = (*base, i)
            self.non_empty((*p, "phy"), radio.phy, "phy")
            if radio.band and radio.band not in RADIO_BANDS:
                self.err((*p, "band"), f'band "{radio.band}" must be "2g" or "5g"')
            # channel 0 asks hostapd for automatic channel selection
            if radio.band == "2g" and not 0 <= radio.channel <= 14:
                self.err((*p, "channel"), f"channel {radio.channel} is not a 2.4 GHz channel")
            elif radio.band != "2g" and radio.channel != 0 and not 32 <= radio.channel <= 177:
                self.err((*p, "channel"), f"channel {radio.channel} is not a 5 GHz channel")
            if radio.country_code is not None and not _COUNTRY_RE.match(radio.country_code):
                self.err(
                    (*p, "country_code"),
                    f'"{radio.country_code}" must be a two-letter ISO 3166 code in capitals',
                )

    def wifi(self) -> None:
        base: Path = ("wifi",)
        self.unique(self.c.wifi, base, "ssid")
        phys = {r.phy for r in self.c.radios}
        for i, wifi in enumerate(self.c.wifi):
            p: Path = (*base, i)
            if wifi.radio not in phys:
                hint = _suggest(wifi.radio, sorted(phys))
                self.err((*p, "radio"), f'radio "{wifi.radio}" does not exist in [[radios]]{hint}')
            self.network_ref((*p, "network"), wifi.network)
            size = len(wifi.ssid.encode())
            if not 1 <= size <= SSID_MAX_BYTES:
                self.err((*p, "ssid"), f"ssid must be 1..{SSID_MAX_BYTES} bytes (is {size})")
            self.passphrase(p, wifi.security, wifi.passphrase, wifi.rotate_hours)
            if wifi.bridge is not None:
                self.ifname((*p, "bridge"), wifi.bridge)

    def passphrase(self, p: Path, security: str, phrase: str, rotate_hours: int | None) -> None:
        if security == "open":
            if phrase:
                self.err((*p, "passphrase"), 'a passphrase does nothing with security "open"')
            if rotate_hours is not None:
                self.err((*p, "rotate_hours"), 'rotate_hours does nothing with security "open"')
            return
        if rotate_hours == 0:
            self.err((*p, "rotate_hours"), "rotate_hours must be at least 1")
        if not phrase:
            self.err(
                (*p, "passphrase"),
                f'security "{security}" needs a passphrase (keep it in oxwrt.secrets.toml)',
            )
        elif not (PSK_MIN <= len(phrase) <= PSK_MAX or _HEX64_RE.match(phrase)):
            self.err(
                (*p, "passphrase"),
                f"passphrase must be {PSK_MIN}..{PSK_MAX} characters or 64 hex digits "
                f"(is {len(phrase)})",
            )
        elif not phrase.isascii() or not phrase.isprintable():
            self.err((*p, "passphrase"), "passphrase must be printable ASCII")

    # ------------------------------------------------------------ LAN services

    def dns(self) -> None:
        dns = self.c.dns
        if dns is None:
            return
        for j, addr in enumerate(dns.listen_v4):
            self.ipv4(("dns", "listen_v4", j), addr)
        self.port(("dns", "listen_port"), dns.listen_port)
        for i, up in enumerate(dns.upstreams):
            p: Path = ("dns", "upstreams", i)
            self.ip((*p, "ip"), up.ip)
            if up.protocol not in DNS_PROTOCOLS:
                hint = _suggest(up.protocol, list(DNS_PROTOCOLS))
                choices = ", ".join(DNS_PROTOCOLS)
                self.err(
                    (*p, "protocol"), f'protocol "{up.protocol}" must be one of {choices}{hint}'
                )
            elif up.protocol in DNS_TLS_PROTOCOLS and not (up.server_name or "").strip():
                self.err(
                    (*p, "server_name"),
                    f'protocol "{up.protocol}" needs server_name (the name on its certificate)',
                )
            if up.path is not None and up.protocol != "https":
                self.err((*p, "path"), f'path is only used with protocol "https" ({up.protocol})')
            if up.port is not None:
                self.port((*p, "port"), up.port)

    def dhcp(self) -> None:
        dhcp = self.c.dhcp
        if dhcp is None:
            return
        net = self.network_ref(("dhcp", "network"), dhcp.network)
        self.duration(("dhcp", "lease_time"), dhcp.lease_time)
        for j, server in enumerate(dhcp.dns_servers):
            self.ipv4(("dhcp", "dns_servers", j), server)
        if dhcp.gateway is not None:
            self.ipv4(("dhcp", "gateway"), dhcp.gateway)
        start = self.ipv4(("dhcp", "pool_start"), dhcp.pool_start) if dhcp.pool_start else None
        end = self.ipv4(("dhcp", "pool_end"), dhcp.pool_end) if dhcp.pool_end else None
        if (dhcp.pool_start is None) != (dhcp.pool_end is None):
            missing = "pool_end" if dhcp.pool_end is None else "pool_start"
            self.err(("dhcp", missing), "set pool_start and pool_end together, or neither")
        if start is not None and end is not None and start > end:
            self.err(("dhcp", "pool_end"), f"pool_end {end} is before pool_start {start}")
        if net is None:
            return
        if isinstance(net, Wan):
            self.err(
                ("dhcp", "network"), f'"{net.name}" is a WAN; DHCP serves a LAN or simple network'
            )
            return
        subnet = _subnet(net.address, net.prefix)
        if subnet is None:
            return  # the network's own address error is reported there
        for key, addr in (("pool_start", start), ("pool_end", end)):
            if addr is not None and addr not in subnet:
                self.err(("dhcp", key), f"{addr} is outside {net.name}'s subnet {subnet}")
        if dhcp.pool_start is None and net.prefix > 30:
            self.err(
                ("dhcp", "network"),
                f"the automatic pool needs a /30 or larger subnet ({net.name} is /{net.prefix})",
            )

    def ntp(self) -> None:
        ntp = self.c.ntp
        if ntp is None:
            return
        for i, src in enumerate(ntp.sources):
            p: Path = ("ntp", "sources", i)
            if src.mode not in NTP_SOURCE_MODES:
                choices = ", ".join(NTP_SOURCE_MODES)
                self.err((*p, "mode"), f'mode "{src.mode}" must be one of {choices}')
            self.non_empty((*p, "address"), src.address, "address")
            if src.count is not None and src.mode in NTP_SOURCE_MODES and src.mode != "pool":
                self.err((*p, "count"), f'count is only used with mode "pool" ({src.mode})')
        for j, listen in enumerate(ntp.listen):
            self.socket_addr(("ntp", "listen", j), listen)
        if ntp.poll_min > ntp.poll_max:
            self.err(
                ("ntp", "poll_min"),
                f"poll_min {ntp.poll_min} is greater than poll_max {ntp.poll_max}",
            )

    def socket_addr(self, path: Path, text: str) -> None:
        try:
            _, port = values.parse_socket_addr(text)
        except ValueError as exc:
            self.err(path, str(exc))
            return
        self.port(path, port)

    def upnp(self) -> None:
        upnp = self.c.upnp
        if upnp is None:
            return
        wan_names: set[str] = set()
        lan_names: set[str] = set()
        pppoe = False
        for net in self.c.networks:
            names = wan_names if isinstance(net, Wan) else lan_names
            names.update((net.name, net.device))
            pppoe = pppoe or (isinstance(net, Wan) and net.mode == "pppoe")
        # a PPPoE WAN's traffic leaves through the ppp device, which no network names
        if upnp.wan not in wan_names and not (pppoe and upnp.wan.startswith("ppp")):
            hint = _suggest(upnp.wan, sorted(wan_names))
            self.err(("upnp", "wan"), f'"{upnp.wan}" is not a WAN network or its interface{hint}')
        if upnp.lan not in lan_names:
            hint = _suggest(upnp.lan, sorted(lan_names))
            self.err(
                ("upnp", "lan"),
                f'"{upnp.lan}" is not a LAN/simple network or its interface{hint}',
            )
        self.port(("upnp", "min_port"), upnp.min_port)
        if upnp.min_port > upnp.max_port:
            self.err(("upnp", "min_port"), f"min_port {upnp.min_port} > max_port {upnp.max_port}")

    def metrics(self) -> None:
        if self.c.metrics is not None:
            self.socket_addr(("metrics", "listen"), self.c.metrics.listen)

    def ddns(self) -> None:
        base: Path = ("ddns",)
        self.unique(self.c.ddns, base, "name")
        for i, entry in enumerate(self.c.ddns):
            for field in entry.__struct_fields__:
                value = getattr(entry, field)
                if isinstance(value, str):
                    self.non_empty((*base, i, field), value, field)

    def backup(self) -> None:
        b = self.c.backup_sftp
        if b is None:
            return
        p: Path = ("backup_sftp",)
        for key in ("host", "username", "remote_dir"):
            value = getattr(b, key)
            if self.non_empty((*p, key), value, key) and "'" in value:
                self.err((*p, key), f"{key} must not contain a single quote")
        self.absolute((*p, "key_path"), b.key_path, "key_path")
        self.port((*p, "port"), b.port)
        if b.interval_hours < 1:
            self.err((*p, "interval_hours"), "interval_hours must be at least 1")

    # ------------------------------------------------------------ services

    def services(self) -> None:
        base: Path = ("services",)
        services = self.c.services
        self.unique(services, base, "name")
        by_name = {s.name: s for s in services}
        for i, svc in enumerate(services):
            self.service((*base, i), svc, by_name)
        cycle = _find_cycle({s.name: s.depends_on for s in services})
        if cycle:
            index = next(i for i, s in enumerate(services) if s.name == cycle[0])
            self.err(
                (*base, index, "depends_on"),
                "dependency cycle: " + " -> ".join(cycle),
            )

    def service(self, p: Path, svc: Service, by_name: Mapping[str, Service]) -> None:
        self.non_empty((*p, "name"), svc.name, "service name")
        self.absolute((*p, "rootfs"), svc.rootfs, "rootfs")
        if not svc.entrypoint or not svc.entrypoint[0]:
            self.err((*p, "entrypoint"), "entrypoint must name the program to run")
        for key in svc.env:
            if not _ENV_NAME_RE.match(key):
                self.err((*p, "env", key), f'"{key}" is not a valid environment variable name')
        if svc.net_mode == "isolated" and svc.veth is None:
            self.err(
                (*p, "net_mode"),
                'net_mode "isolated" needs a [services.veth] (host_ip, peer_ip), '
                "otherwise the service has no network",
            )
        if svc.net_mode == "host" and svc.veth is not None:
            self.err((*p, "veth"), 'veth is unused with net_mode "host"; remove it or isolate')
        if svc.veth is not None:
            self.veth((*p, "veth"), svc.veth)
        for key in ("memory_max", "pids_max"):
            if getattr(svc, key) == 0:
                self.err((*p, key), f"{key} = 0 would stop the service from running")
        if svc.cpu_max is not None:
            try:
                values.parse_cpu_max(svc.cpu_max)
            except ValueError as exc:
                self.err((*p, "cpu_max"), str(exc))
        for j, bind in enumerate(svc.binds):
            self.absolute((*p, "binds", j, "source"), bind.source, "bind source")
            self.absolute((*p, "binds", j, "target"), bind.target, "bind target")
        for j, dep in enumerate(svc.depends_on):
            dp: Path = (*p, "depends_on", j)
            peer = by_name.get(dep)
            if dep == svc.name:
                self.err(dp, "a service cannot depend on itself")
            elif peer is None:
                hint = _suggest(dep, sorted(by_name))
                self.err(dp, f'service "{dep}" does not exist in [[services]]{hint}')
            elif svc.veth is not None and peer.veth is None:
                self.err(
                    dp,
                    f'"{dep}" has no veth, so isolated "{svc.name}" cannot reach it; '
                    f"isolate {dep} too",
                )
        self.security((*p, "security"), svc)

    def veth(self, p: Path, veth: Veth) -> None:
        host = self.ipv4((*p, "host_ip"), veth.host_ip)
        peer = self.ipv4((*p, "peer_ip"), veth.peer_ip)
        if not self.prefix((*p, "prefix"), veth.prefix, 4) or host is None or peer is None:
            return
        if host == peer:
            self.err((*p, "peer_ip"), "peer_ip must differ from host_ip")
        elif peer not in ipaddress.ip_network(f"{host}/{veth.prefix}", strict=False):
            self.err((*p, "peer_ip"), f"{peer} is not in the same /{veth.prefix} as {host}")

    def security(self, p: Path, svc: Service) -> None:
        sec = svc.security
        for j, cap in enumerate(sec.caps):
            try:
                values.parse_capability(cap)
            except ValueError as exc:
                hint = _suggest(cap.upper().removeprefix("CAP_"), list(values.CAPABILITIES))
                self.err((*p, "caps", j), f"{exc}{hint}")
        if sec.seccomp_allow and not sec.seccomp:
            self.err((*p, "seccomp_allow"), "seccomp_allow does nothing with seccomp = false")
        for j, name in enumerate(sec.seccomp_allow):
            if not values.is_syscall(name):
                hint = _suggest(name, sorted(values.SYSCALL_NAMES))
                self.err((*p, "seccomp_allow", j), f'"{name}" is not a Linux syscall{hint}')
            elif name not in values.SYSCALLS_DENIED_BY_DEFAULT:
                self.err(
                    (*p, "seccomp_allow", j),
                    f'"{name}" is not denied by default, so allowing it changes nothing '
                    f"(denied: {', '.join(values.SYSCALLS_DENIED_BY_DEFAULT)})",
                )

    # ------------------------------------------------------------ control plane

    def control(self) -> None:
        ctl = self.c.control
        p: Path = ("control",)
        if not ctl.listen:
            self.err((*p, "listen"), "listen must name at least one address (e.g. [::1]:51820)")
        for j, addr in enumerate(ctl.listen):
            self.socket_addr((*p, "listen", j), addr)
        self.absolute((*p, "authorized_keys"), ctl.authorized_keys, "authorized_keys")
        self.unique(ctl.clients, (*p, "clients"), "name")
        self.unique(ctl.clients, (*p, "clients"), "key", lambda c: c.key.lower())
        for j, client in enumerate(ctl.clients):
            self.non_empty((*p, "clients", j, "name"), client.name, "client name")
            if not _HEX64_RE.match(client.key):
                self.err(
                    (*p, "clients", j, "key"),
                    f"key must be {CONTROL_KEY_HEX} hex characters (an ed25519 public key)",
                )
        for key in ("max_connections", "max_rpcs_per_sec"):
            if getattr(ctl, key) < 1:
                self.err((*p, key), f"{key} must be at least 1")

    # ------------------------------------------------------------ health gate and drift

    def health(self) -> None:
        h = self.c.health
        p: Path = ("health",)
        seen: dict[str, int] = {}
        for j, probe in enumerate(h.probes):
            if probe in seen:
                self.err(
                    (*p, "probes", j),
                    f'duplicate probe "{probe}" (also health.probes[{seen[probe]}])',
                )
                continue
            seen[probe] = j
            self.probe((*p, "probes", j), probe)
        if h.interval_s < 1:
            self.err((*p, "interval_s"), "interval_s must be at least 1 (seconds between rounds)")
        if h.window_s > HEALTH_WINDOW_MAX_S:
            self.err(
                (*p, "window_s"),
                f"window_s {h.window_s} is more than {HEALTH_WINDOW_MAX_S} (a day)",
            )
        if h.failures_to_revert < 1:
            self.err((*p, "failures_to_revert"), "failures_to_revert must be at least 1")
        elif h.probes and h.interval_s >= 1 and h.failures_to_revert * h.interval_s > h.window_s:
            self.err(
                (*p, "window_s"),
                f"window_s {h.window_s} is shorter than failures_to_revert x interval_s "
                f"({h.failures_to_revert} x {h.interval_s} s): a failing probe could never revert",
            )
        if h.monitor_s and not h.probes:
            self.err(
                (*p, "monitor_s"), "monitor_s is set but health.probes is empty: nothing to run"
            )

    def probe(self, path: Path, probe: str) -> None:
        kind, colon, arg = probe.partition(":")
        if not colon:
            if probe not in HEALTH_PROBE_KINDS:
                choices = ", ".join([*HEALTH_PROBE_KINDS, "dns:NAME", "ping:ADDR"])
                hint = _suggest(probe, HEALTH_PROBE_KINDS)
                self.err(path, f'unknown probe "{probe}": use one of {choices}{hint}')
            elif probe == "wan-gateway" and not any(isinstance(n, Wan) for n in self.c.networks):
                self.err(path, '"wan-gateway" needs a WAN in [[networks]]')
            elif probe == "services" and not self.c.services:
                self.err(path, '"services" checks nothing: there are no [[services]]')
            return
        if f"{kind}:" not in HEALTH_PROBE_PREFIXES:
            hint = _suggest(f"{kind}:", HEALTH_PROBE_PREFIXES)
            self.err(
                path, f'unknown probe "{probe}": a target is given as dns:NAME or ping:ADDR{hint}'
            )
        elif kind == "ping":
            if _ip(arg) is None:
                self.err(path, f'"{probe}": "{arg}" is not an IP address (ping:ADDR takes one)')
        elif not _dns_name(arg):
            self.err(path, f'"{probe}": "{arg}" is not a DNS name (dot-separated labels)')
        elif self.c.dns is None:
            self.err(
                path, f'"{probe}" resolves through the router\'s own resolver: add a [dns] section'
            )


def _suggest(word: str, candidates: Iterable[str]) -> str:
    return did_you_mean(word, list(candidates))


def _dns_name(text: str) -> bool:
    name = text.removesuffix(".")
    return 0 < len(name) <= DNS_NAME_MAX and all(
        _HOSTNAME_LABEL_RE.match(label) for label in name.split(".")
    )


__all__ = ["check", "validate"]
