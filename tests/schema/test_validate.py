"""Every cross-field rule of schema.validate, each broken alone on an otherwise valid config.

FULL exercises every section with valid values (including the reference's undeclared-zone habit);
each case edits it so exactly one rule breaks and asserts the path and the message's key words.
"""

from __future__ import annotations

import copy
import ipaddress
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from schema import values
from schema.config import Config
from schema.errors import ConfigIssue
from schema.validate import check, validate

WG_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
CLIENT_KEY = "ab" * 32

FULL_TOML = f"""
hostname = "gw1"
timezone = "Europe/Berlin"

[[networks]]
name = "wan"
type = "wan"
iface = "eth1"
mode = "dhcp"
mac_address = "02:11:22:33:44:55"
probe_target = "1.1.1.1"

[[networks]]
name = "wan2"
type = "wan"
iface = "eth2"
mode = "static"
address = "203.0.113.2"
prefix = 24
gateway = "203.0.113.1"
dns = ["9.9.9.9", "2620:fe::fe"]
priority = 200

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
members = ["lan1", "lan2"]
address = "192.168.50.1"
prefix = 24
ipv6_address = "fdbe:cafe::1"
ipv6_prefix = 64
vlan_filtering = true
vlan_ports = [{{ iface = "lan1", pvid = 10 }}, {{ iface = "lan2", tagged = [10, 20] }}]
[networks.router_advertisements]
max_interval_s = 600
min_interval_s = 200

[[networks]]
name = "guest"
type = "simple"
iface = "br-guest"
address = "10.99.0.1"
prefix = 24

[[networks]]
name = "iot"
type = "simple"
iface = "lan3.20"
address = "10.20.0.1"
prefix = 24
vlan = 20
vlan_parent = "lan3"

[[firewall.zones]]
name = "lan"
networks = ["lan"]
default_input = "accept"

[[firewall.zones]]
name = "guest"
networks = ["guest"]
via_vpn = true

[[firewall.zones]]
name = "wan"
networks = ["wan", "wan2"]
masquerade = true
mtu_fix = true

[[firewall.rules]]
name = "lan-internet"
src = "lan"
dest = "wan"
action = "accept"

[[firewall.rules]]
name = "iot-dns"   # `iot` is a network without a zone: resolved by name, as the reference does
src = "iot"
proto = "both"
dest_port = 53
action = "accept"

[[firewall.rules]]
name = "web-dnat"
proto = "tcp"
dest_port = 80
action = "dnat"
dnat_target = "192.168.50.10:8080"

[[firewall.rules]]
name = "block-bad"
src = "wan"
action = "reject"
reject_with = "icmpx type admin-prohibited"
match_set = {{ name = "bad", direction = "src" }}
family = "ipv4"
log = "bad: "
limit = "10/second"
limit_burst = 20
counter = true
schedule = "weekdays 08:00-17:00"

[[firewall.rules]]
name = "sip"
enabled = false
src = "lan"
dest = "wan"
proto = "udp"
dest_port = "5060 - 5061"
helper = "sip"
set_dscp = "EF"
set_mark = 16
action = "accept"
src_ip = ["192.168.50.0/24", "fdbe:cafe::/64"]
src_mac = ["02:aa:bb:cc:dd:ee"]
ct_state = ["new"]

[[firewall.forwardings]]
src = "lan"
dest = "wan"

[[firewall.raw_nft]]
chain = "forward"
rule = "meta l4proto gre accept"

[[port_forwards]]
name = "ssh"
proto = "tcp"
external_port = 2222
internal = "192.168.50.10:22"

[[port_forwards]]
name = "web6"
proto = "tcp"
external_port = 443
internal = "[fdbe:cafe::10]:443"

[[routes]]
dest = "10.50.0.0"
prefix = 16
gateway = "192.168.50.254"
iface = "br-lan"

[[routes6]]
dest = "fd00:1::"
prefix = 48
iface = "br-lan"

[[ipsets]]
name = "bad"
family = "ipv4"
entries = ["198.51.100.7", "203.0.113.0/24"]
timeout = "1d"

[[blocklists]]
name = "spam"
url = "https://example.org/drop.txt"
zones = ["wan"]

[[wireguard]]
name = "wg0"
listen_port = 51821
[[wireguard.peers]]
name = "phone"
pubkey = "{WG_KEY}"
allowed_ips = "10.8.0.2/32, fd08::2/128"
endpoint = "vpn.example.org:51820"

[[vpn_client]]
name = "mullvad"
iface = "wg-mv"
address = "10.64.0.2/32"
probe_target = "10.64.0.1"
endpoint = "[2001:db8::1]:51820"
public_key = "{WG_KEY}"
dns = ["10.64.0.1"]
bypass_destinations = ["192.0.2.0/24"]

[[radios]]
phy = "phy0"
band = "2g"
channel = 6
country_code = "DE"

[[radios]]
phy = "phy1"
band = "5g"
channel = 36

[[wifi]]
radio = "phy1"
ssid = "home"
network = "lan"
security = "wpa2-wpa3"
passphrase = "correct horse battery"

[[wifi]]
radio = "phy0"
ssid = "guest"
network = "guest"
security = "open"

[dns]
listen_v4 = ["0.0.0.0"]
[[dns.upstreams]]
ip = "1.1.1.1"
protocol = "https"
server_name = "cloudflare-dns.com"
path = "/dns-query"
[[dns.upstreams]]
ip = "2620:fe::fe"
protocol = "udp"

[dhcp]
network = "lan"
lease_time = "1h30m"
pool_start = "192.168.50.100"
pool_end = "192.168.50.200"

[ntp]
listen = ["0.0.0.0:1123"]
[[ntp.sources]]
mode = "pool"
address = "pool.ntp.org"
count = 4

[upnp]
wan = "eth1"
lan = "br-lan"

[metrics]
listen = "192.168.50.1:9100"

[[ddns]]
provider = "duckdns"
name = "home"
domain = "myhome"
token = "t0ken"

[[ddns]]
provider = "cloudflare"
name = "cf"
zone_id = "z"
record_id = "r"
domain = "home.example.org"
api_token = "tok"

[backup_sftp]
host = "backup.example.org"
username = "router"
key_path = "/etc/oxwrt/backup.key"
remote_dir = "backups/gw1"

[[services]]
name = "dns"
rootfs = "/usr/lib/oxwrt/services/dns/rootfs"
entrypoint = ["/hickory-dns", "-c", "/etc/named.toml"]
veth = {{ host_ip = "10.53.0.1", peer_ip = "10.53.0.2" }}
cpu_max = "50000 100000"
env = {{ RUST_LOG = "info" }}
[[services.binds]]
source = "/etc/oxwrt/named.toml"
target = "/etc/named.toml"
[services.security]
caps = ["SETUID", "CAP_SETGID", "NET_BIND_SERVICE"]
seccomp_allow = ["ptrace"]

[[services]]
name = "ntp"
rootfs = "/usr/lib/oxwrt/services/ntp/rootfs"
entrypoint = ["/ntp-daemon"]
veth = {{ host_ip = "10.123.0.1", peer_ip = "10.123.0.2", prefix = 30 }}
depends_on = ["dns"]

[[services]]
name = "hostapd"
rootfs = "/usr/lib/oxwrt/services/hostapd/rootfs"
entrypoint = ["/sbin/hostapd", "/etc/hostapd.conf"]
net_mode = "host"
depends_on = ["dns"]

[control]
listen = ["[::1]:51820", "192.168.50.1:51820"]
[[control.clients]]
name = "laptop"
key = "{CLIENT_KEY}"
"""

FULL: dict[str, Any] = tomllib.loads(FULL_TOML)
DELETE = object()


def edited(*changes: tuple[tuple[str | int, ...], Any]) -> dict[str, Any]:
    """FULL with each (path, value) applied; DELETE removes the key; index == len appends."""
    raw = copy.deepcopy(FULL)
    for path, value in changes:
        node: Any = raw
        for seg in path[:-1]:
            node = node[seg]
        last = path[-1]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return raw


def issues_of(raw: dict[str, Any]) -> list[ConfigIssue]:
    config, issues = check(raw)
    assert (config is None) == bool(issues)
    return issues


def test_full_config_is_valid() -> None:
    config, issues = check(FULL)
    assert issues == []
    assert isinstance(config, Config)
    assert validate(config) == []


def test_undeclared_zone_resolves_to_network_of_same_name() -> None:
    """The reference example writes rules for an `iot` zone that is only a network."""
    assert not any(z["name"] == "iot" for z in FULL["firewall"]["zones"])
    assert FULL["firewall"]["rules"][1]["src"] == "iot"
    assert issues_of(FULL) == []


S = "services"
R = ("firewall", "rules")
Z = ("firewall", "zones")
NET = "networks"

# (id, changes, expected path, words the message must contain)
CASES: list[
    tuple[str, list[tuple[tuple[str | int, ...], Any]], tuple[str | int, ...], list[str]]
] = [
    # top level
    ("hostname-empty", [(("hostname",), "")], ("hostname",), ["must not be empty"]),
    ("hostname-invalid", [(("hostname",), "my_router!")], ("hostname",), ["not a valid hostname"]),
    ("hostname-too-long", [(("hostname",), "a" * 65)], ("hostname",), ["not a valid hostname"]),
    ("timezone", [(("timezone",), "Europe Berlin")], ("timezone",), ["IANA"]),
    # networks
    (
        "network-duplicate",
        [
            (
                (NET, 5),
                {
                    "name": "guest",
                    "type": "simple",
                    "iface": "br-g2",
                    "address": "10.98.0.1",
                    "prefix": 24,
                },
            )
        ],
        (NET, 5, "name"),
        ["duplicate name", '"guest"', "networks[3]"],
    ),
    ("prefix-33", [((NET, 2, "prefix"), 33)], (NET, 2, "prefix"), ["33", "out of range", "0..32"]),
    ("ipv6-prefix-129", [((NET, 2, "ipv6_prefix"), 129)], (NET, 2, "ipv6_prefix"), ["0..128"]),
    (
        "ipv6-prefix-alone",
        [((NET, 3, "ipv6_prefix"), 64)],
        (NET, 3, "ipv6_prefix"),
        ["ipv6_address"],
    ),
    (
        "lan-address",
        [((NET, 2, "address"), "192.168.50.300")],
        (NET, 2, "address"),
        ["not an IPv4 address"],
    ),
    (
        "lan-ipv6-address",
        [((NET, 2, "ipv6_address"), "fdbe::cafe::1")],
        (NET, 2, "ipv6_address"),
        ["not an IPv6"],
    ),
    (
        "iface-name-too-long",
        [((NET, 3, "iface"), "br-guest-0123456789")],
        (NET, 3, "iface"),
        ["longer than 15"],
    ),
    (
        "member-name-slash",
        [((NET, 2, "members", 1), "lan/2")],
        (NET, 2, "members", 1),
        ["character"],
    ),
    (
        "wan-static-key-on-dhcp",
        [((NET, 0, "gateway"), "192.0.2.1")],
        (NET, 0, "gateway"),
        ['only for mode "static"', 'mode "dhcp"'],
    ),
    (
        "wan-pppoe-key-on-static",
        [((NET, 1, "username"), "bob")],
        (NET, 1, "username"),
        ['only for mode "pppoe"', 'mode "static"'],
    ),
    (
        "wan-static-missing-gateway",
        [((NET, 1, "gateway"), DELETE)],
        (NET, 1, "gateway"),
        ['mode "static" requires `gateway`'],
    ),
    (
        "wan-static-bad-gateway",
        [((NET, 1, "gateway"), "203.0.113.999")],
        (NET, 1, "gateway"),
        ["not an IPv4"],
    ),
    ("wan-static-prefix-33", [((NET, 1, "prefix"), 33)], (NET, 1, "prefix"), ["out of range"]),
    (
        "wan-static-dns",
        [((NET, 1, "dns", 1), "dns.example")],
        (NET, 1, "dns", 1),
        ["not an IP address"],
    ),
    (
        "wan-pppoe-missing-password",
        [
            (
                (NET, 1),
                {"name": "wan2", "type": "wan", "iface": "eth2", "mode": "pppoe", "username": "u"},
            )
        ],
        (NET, 1, "password"),
        ['mode "pppoe" requires `password`'],
    ),
    (
        "wan-probe-target",
        [((NET, 0, "probe_target"), "one.one")],
        (NET, 0, "probe_target"),
        ["not an IP"],
    ),
    (
        "mac-malformed",
        [((NET, 0, "mac_address"), "02:11:22:33:44")],
        (NET, 0, "mac_address"),
        ["six hex octets"],
    ),
    (
        "mac-multicast",
        [((NET, 0, "mac_address"), "01:00:5e:00:00:01")],
        (NET, 0, "mac_address"),
        ["multicast"],
    ),
    (
        "mac-zero",
        [((NET, 0, "mac_address"), "00-00-00-00-00-00")],
        (NET, 0, "mac_address"),
        ["all-zero"],
    ),
    (
        "sqm-zero",
        [((NET, 0, "sqm"), {"bandwidth_up_kbps": 0})],
        (NET, 0, "sqm", "bandwidth_up_kbps"),
        ["bandwidth 0"],
    ),
    ("vlan-4095", [((NET, 4, "vlan"), 4095)], (NET, 4, "vlan"), ["4095", "1..4094"]),
    ("vlan-0", [((NET, 4, "vlan"), 0)], (NET, 4, "vlan"), ["1..4094"]),
    ("vlan-without-parent", [((NET, 4, "vlan_parent"), DELETE)], (NET, 4, "vlan"), ["vlan_parent"]),
    (
        "parent-without-vlan",
        [((NET, 4, "vlan"), DELETE)],
        (NET, 4, "vlan_parent"),
        ["needs `vlan`"],
    ),
    (
        "vlan-port-pvid",
        [((NET, 2, "vlan_ports", 0, "pvid"), 4095)],
        (NET, 2, "vlan_ports", 0, "pvid"),
        ["1..4094"],
    ),
    (
        "vlan-port-tagged",
        [((NET, 2, "vlan_ports", 1, "tagged", 1), 0)],
        (NET, 2, "vlan_ports", 1, "tagged", 1),
        ["1..4094"],
    ),
    (
        "vlan-ports-need-filtering",
        [((NET, 2, "vlan_filtering"), False)],
        (NET, 2, "vlan_ports"),
        ["vlan_filtering"],
    ),
    (
        "ra-min-interval",
        [((NET, 2, "router_advertisements", "min_interval_s"), 500)],
        (NET, 2, "router_advertisements", "min_interval_s"),
        ["3..450"],
    ),
    (
        "ra-max-interval",
        [
            ((NET, 2, "router_advertisements", "max_interval_s"), 2000),
            ((NET, 2, "router_advertisements", "min_interval_s"), DELETE),
        ],
        (NET, 2, "router_advertisements", "max_interval_s"),
        ["4..1800"],
    ),
    # zones
    ("zone-duplicate", [((*Z, 3), {"name": "lan"})], (*Z, 3, "name"), ["duplicate name", '"lan"']),
    (
        "zone-network-dangling",
        [((*Z, 0, "networks", 1), "lann")],
        (*Z, 0, "networks", 1),
        ['"lann"', "does not exist", "did you mean `lan`"],
    ),
    ("zone-wan-not-wan", [((*Z, 0, "wan"), "lan")], (*Z, 0, "wan"), ["not a WAN network"]),
    (
        "zone-wan-unknown",
        [((*Z, 0, "wan"), "wan3")],
        (*Z, 0, "wan"),
        ["not a WAN network", "did you mean"],
    ),
    ("via-vpn-without-client", [(("vpn_client",), DELETE)], (*Z, 1, "via_vpn"), ["[[vpn_client]]"]),
    ("via-vpn-and-wan", [((*Z, 1, "wan"), "wan2")], (*Z, 1, "wan"), ["either `wan` or `via_vpn`"]),
    # rules
    (
        "rule-duplicate",
        [((*R, 1, "name"), "lan-internet")],
        (*R, 1, "name"),
        ["duplicate name", "firewall.rules[0]"],
    ),
    ("rule-name-blank", [((*R, 0, "name"), " ")], (*R, 0, "name"), ["must not be empty"]),
    (
        "rule-src-dangling",
        [((*R, 0, "src"), "lam")],
        (*R, 0, "src"),
        ['"lam"', "neither a zone nor a network", "did you mean `lan`"],
    ),
    (
        "rule-dest-dangling",
        [((*R, 0, "dest"), "internet")],
        (*R, 0, "dest"),
        ["neither a zone nor a network"],
    ),
    (
        "dnat-without-target",
        [((*R, 2, "dnat_target"), DELETE)],
        (*R, 2, "action"),
        ["requires dnat_target"],
    ),
    (
        "dnat-target-on-accept",
        [((*R, 0, "dnat_target"), "10.0.0.1:80")],
        (*R, 0, "dnat_target"),
        ['only valid with action "dnat"'],
    ),
    (
        "dnat-target-ip",
        [((*R, 2, "dnat_target"), "server:8080")],
        (*R, 2, "dnat_target"),
        ["not an IPv4"],
    ),
    (
        "dnat-target-port",
        [((*R, 2, "dnat_target"), "10.0.0.1:99999")],
        (*R, 2, "dnat_target"),
        ["port", "1..65535"],
    ),
    (
        "dnat-target-no-port",
        [((*R, 2, "dnat_target"), "10.0.0.1")],
        (*R, 2, "dnat_target"),
        ["ipv4:port"],
    ),
    ("icmp-with-port", [((*R, 1, "proto"), "icmp")], (*R, 1, "dest_port"), ["icmp", "no ports"]),
    (
        "port-range-reversed",
        [((*R, 4, "dest_port"), "5061-5060")],
        (*R, 4, "dest_port"),
        ["greater than"],
    ),
    (
        "port-range-70000",
        [((*R, 4, "dest_port"), "5060-70000")],
        (*R, 4, "dest_port"),
        ["70000", "out of range"],
    ),
    ("port-range-garbage", [((*R, 4, "dest_port"), "sip")], (*R, 4, "dest_port"), ["not a number"]),
    ("port-list-empty", [((*R, 1, "dest_port"), [])], (*R, 1, "dest_port"), ["empty"]),
    ("src-port-zero", [((*R, 1, "src_port"), 0)], (*R, 1, "src_port"), ["port 0"]),
    (
        "schedule",
        [((*R, 3, "schedule"), "someday 08:00-17:00")],
        (*R, 3, "schedule"),
        ["schedule:"],
    ),
    (
        "reject-with-on-accept",
        [((*R, 0, "reject_with"), "tcp reset")],
        (*R, 0, "reject_with"),
        ['only valid with action "reject"'],
    ),
    (
        "reject-with-injection",
        [((*R, 3, "reject_with"), "tcp reset; flush ruleset")],
        (*R, 3, "reject_with"),
        ["tcp reset"],
    ),
    (
        "limit-burst-without-limit",
        [((*R, 3, "limit"), DELETE)],
        (*R, 3, "limit_burst"),
        ["needs `limit`"],
    ),
    ("limit-unit", [((*R, 3, "limit"), "10/fortnight")], (*R, 3, "limit"), ["fortnight"]),
    ("log-too-long", [((*R, 3, "log"), "x" * 129)], (*R, 3, "log"), ["longer than 128"]),
    ("log-quote", [((*R, 3, "log"), 'a" accept')], (*R, 3, "log"), ["quotes"]),
    ("device-blank", [((*R, 0, "device"), "  ")], (*R, 0, "device"), ["blank"]),
    (
        "set-mark-with-drop",
        [((*R, 4, "set_dscp"), DELETE), ((*R, 4, "action"), "drop")],
        (*R, 4, "set_mark"),
        ['action "drop"'],
    ),
    (
        "set-dscp-with-drop",
        [((*R, 4, "set_mark"), DELETE), ((*R, 4, "action"), "drop")],
        (*R, 4, "set_dscp"),
        ['action "drop"'],
    ),
    (
        "set-dscp-name",
        [((*R, 4, "set_dscp"), "af44")],
        (*R, 4, "set_dscp"),
        ["af44", "class name", "0..63"],
    ),
    ("set-dscp-64", [((*R, 4, "set_dscp"), "64")], (*R, 4, "set_dscp"), ["0..63"]),
    ("notrack-with-helper", [((*R, 4, "notrack"), True)], (*R, 4, "helper"), ["notrack"]),
    (
        "helper-unknown",
        [((*R, 4, "helper"), "sipp")],
        (*R, 4, "helper"),
        ['unknown helper "sipp"', "did you mean `sip`"],
    ),
    (
        "helper-needs-port",
        [((*R, 4, "dest_port"), DELETE)],
        (*R, 4, "helper"),
        ["needs dest_port", "UDP"],
    ),
    ("helper-proto", [((*R, 4, "proto"), "tcp")], (*R, 4, "proto"), ["tracks udp"]),
    (
        "match-set-dangling",
        [((*R, 3, "match_set", "name"), "badd")],
        (*R, 3, "match_set", "name"),
        ['"badd"', "does not exist", "did you mean `bad`"],
    ),
    ("match-set-family", [((*R, 3, "family"), "ipv6")], (*R, 3, "family"), ["conflicts", '"bad"']),
    (
        "src-ip-prefix",
        [((*R, 4, "src_ip", 0), "192.168.50.0/33")],
        (*R, 4, "src_ip", 0),
        ["prefix", "0..32"],
    ),
    (
        "src-ip-garbage",
        [((*R, 4, "src_ip", 0), "lan")],
        (*R, 4, "src_ip", 0),
        ["not an IP address or CIDR"],
    ),
    (
        "dest-ip-family",
        [((*R, 3, "dest_ip"), ["fd00::/8"])],
        (*R, 3, "dest_ip", 0),
        ['family "ipv4"'],
    ),
    (
        "src-mac",
        [((*R, 4, "src_mac", 0), "02:aa:bb:cc:dd")],
        (*R, 4, "src_mac", 0),
        ["six hex octets"],
    ),
    (
        "ct-state",
        [((*R, 4, "ct_state", 0), "establised")],
        (*R, 4, "ct_state", 0),
        ["conntrack state"],
    ),
    ("icmp-type", [((*R, 3, "icmp_type"), "echo request")], (*R, 3, "icmp_type"), ["ICMP type"]),
    # forwardings and raw_nft
    (
        "forwarding-dangling",
        [(("firewall", "forwardings", 0, "dest"), "wann")],
        ("firewall", "forwardings", 0, "dest"),
        ["neither a zone nor a network"],
    ),
    (
        "forwarding-self",
        [(("firewall", "forwardings", 0, "dest"), "lan")],
        ("firewall", "forwardings", 0, "dest"),
        ['both "lan"'],
    ),
    (
        "raw-nft-multiline",
        [(("firewall", "raw_nft", 0, "rule"), "accept\nflush ruleset")],
        ("firewall", "raw_nft", 0, "rule"),
        ["one line"],
    ),
    (
        "raw-nft-table",
        [(("firewall", "raw_nft", 0, "table"), "oxwrt")],
        ("firewall", "raw_nft", 0, "table"),
        ["FAMILY NAME"],
    ),
    # port forwards
    (
        "pf-duplicate",
        [(("port_forwards", 1, "name"), "ssh")],
        ("port_forwards", 1, "name"),
        ["duplicate name"],
    ),
    (
        "pf-src-dangling",
        [(("port_forwards", 0, "src"), "wam")],
        ("port_forwards", 0, "src"),
        ["neither a zone nor a network"],
    ),
    (
        "pf-dest-dangling",
        [(("port_forwards", 0, "dest"), "dmz")],
        ("port_forwards", 0, "dest"),
        ["neither a zone nor a network"],
    ),
    (
        "pf-internal-no-port",
        [(("port_forwards", 0, "internal"), "192.168.50.10")],
        ("port_forwards", 0, "internal"),
        ["ip:port"],
    ),
    (
        "pf-internal-bad-ip",
        [(("port_forwards", 0, "internal"), "192.168.50.300:22")],
        ("port_forwards", 0, "internal"),
        ["not an IPv4 address"],
    ),
    (
        "pf-internal-outside",
        [(("port_forwards", 0, "internal"), "172.16.0.5:22")],
        ("port_forwards", 0, "internal"),
        ["not inside any LAN", "`dest`"],
    ),
    (
        "pf-internal-v6-outside",
        [(("port_forwards", 1, "internal"), "[2001:db8::1]:443")],
        ("port_forwards", 1, "internal"),
        ["not inside any LAN"],
    ),
    ("pf-icmp", [(("port_forwards", 0, "proto"), "icmp")], ("port_forwards", 0, "proto"), ["icmp"]),
    (
        "pf-port-zero",
        [(("port_forwards", 0, "external_port"), 0)],
        ("port_forwards", 0, "external_port"),
        ["port 0"],
    ),
    # routes
    (
        "route-host-bits",
        [(("routes", 0, "dest"), "10.50.1.0")],
        ("routes", 0, "dest"),
        ["host bits", "10.50.0.0/16"],
    ),
    ("route-prefix-33", [(("routes", 0, "prefix"), 33)], ("routes", 0, "prefix"), ["0..32"]),
    (
        "route-gateway",
        [(("routes", 0, "gateway"), "fe80::1")],
        ("routes", 0, "gateway"),
        ["not an IPv4"],
    ),
    (
        "route6-dest-v4",
        [(("routes6", 0, "dest"), "10.0.0.0")],
        ("routes6", 0, "dest"),
        ["not an IPv6"],
    ),
    ("route-iface", [(("routes", 0, "iface"), "")], ("routes", 0, "iface"), ["empty"]),
    # ipsets and blocklists
    (
        "ipset-duplicate",
        [(("ipsets", 1), {"name": "bad", "family": "ipv6"})],
        ("ipsets", 1, "name"),
        ["duplicate name"],
    ),
    (
        "ipset-name",
        [(("ipsets", 1), {"name": "bad-v6", "family": "ipv6"})],
        ("ipsets", 1, "name"),
        ["letters, digits"],
    ),
    (
        "ipset-entry-family",
        [(("ipsets", 0, "entries", 0), "fd00::1")],
        ("ipsets", 0, "entries", 0),
        ["IPv6 address where IPv4"],
    ),
    (
        "ipset-entry-prefix",
        [(("ipsets", 0, "entries", 1), "203.0.113.0/33")],
        ("ipsets", 0, "entries", 1),
        ["0..32"],
    ),
    (
        "ipset-timeout",
        [(("ipsets", 0, "timeout"), "1 day")],
        ("ipsets", 0, "timeout"),
        ["duration"],
    ),
    (
        "blocklist-url",
        [(("blocklists", 0, "url"), "ftp://example.org/x")],
        ("blocklists", 0, "url"),
        ["http"],
    ),
    (
        "blocklist-refresh",
        [(("blocklists", 0, "refresh_seconds"), 30)],
        ("blocklists", 0, "refresh_seconds"),
        ["minimum of 60"],
    ),
    (
        "blocklist-zone",
        [(("blocklists", 0, "zones", 0), "wna")],
        ("blocklists", 0, "zones", 0),
        ["neither a zone"],
    ),
    # WireGuard and VPN client
    (
        "wg-port-zero",
        [(("wireguard", 0, "listen_port"), 0)],
        ("wireguard", 0, "listen_port"),
        ["port 0"],
    ),
    (
        "wg-shared-key-path",
        [(("wireguard", 1), {"name": "wg1", "listen_port": 51822})],
        ("wireguard", 1, "key_path"),
        ["duplicate key_path", "/etc/oxwrt/wg0.key"],
    ),
    (
        "wg-peer-duplicate",
        [
            (
                ("wireguard", 0, "peers", 1),
                {"name": "phone", "pubkey": "B" * 43 + "=", "allowed_ips": "10.8.0.3/32"},
            )
        ],
        ("wireguard", 0, "peers", 1, "name"),
        ["duplicate name", "also wireguard[0].peers[0]"],
    ),
    (
        "wg-peer-pubkey",
        [(("wireguard", 0, "peers", 0, "pubkey"), "abc=")],
        ("wireguard", 0, "peers", 0, "pubkey"),
        ["44 characters"],
    ),
    (
        "wg-peer-psk",
        [(("wireguard", 0, "peers", 0, "preshared_key"), "x")],
        ("wireguard", 0, "peers", 0, "preshared_key"),
        ["44 characters"],
    ),
    (
        "wg-allowed-ips",
        [(("wireguard", 0, "peers", 0, "allowed_ips"), "10.8.0.2, fd08::2/128")],
        ("wireguard", 0, "peers", 0, "allowed_ips"),
        ["needs a prefix"],
    ),
    (
        "wg-endpoint",
        [(("wireguard", 0, "peers", 0, "endpoint"), "vpn.example.org")],
        ("wireguard", 0, "peers", 0, "endpoint"),
        ["host:port"],
    ),
    (
        "vpn-address",
        [(("vpn_client", 0, "address"), "10.64.0.2")],
        ("vpn_client", 0, "address"),
        ["prefix"],
    ),
    (
        "vpn-probe",
        [(("vpn_client", 0, "probe_target"), "fd00::1")],
        ("vpn_client", 0, "probe_target"),
        ["not an IPv4"],
    ),
    (
        "vpn-endpoint",
        [(("vpn_client", 0, "endpoint"), "[2001:db8::1]")],
        ("vpn_client", 0, "endpoint"),
        ["host:port"],
    ),
    (
        "vpn-public-key",
        [(("vpn_client", 0, "public_key"), "nope")],
        ("vpn_client", 0, "public_key"),
        ["WireGuard key"],
    ),
    (
        "vpn-bypass",
        [(("vpn_client", 0, "bypass_destinations", 0), "2001:db8::/32")],
        ("vpn_client", 0, "bypass_destinations", 0),
        ["IPv4 is required"],
    ),
    (
        "vpn-duplicate",
        [(("vpn_client", 1), {**FULL["vpn_client"][0], "iface": "wg-mv2"})],
        ("vpn_client", 1, "name"),
        ["duplicate name"],
    ),
    # Wi-Fi
    (
        "radio-duplicate",
        [(("radios", 2), {"phy": "phy0", "channel": 1, "band": "2g"})],
        ("radios", 2, "phy"),
        ["duplicate phy"],
    ),
    ("radio-band", [(("radios", 1, "band"), "6g")], ("radios", 1, "band"), ['"2g" or "5g"']),
    ("radio-channel", [(("radios", 0, "channel"), 36)], ("radios", 0, "channel"), ["2.4 GHz"]),
    (
        "radio-country",
        [(("radios", 0, "country_code"), "de")],
        ("radios", 0, "country_code"),
        ["ISO 3166"],
    ),
    (
        "wifi-duplicate",
        [(("wifi", 2), {**FULL["wifi"][1]})],
        ("wifi", 2, "ssid"),
        ["duplicate ssid"],
    ),
    (
        "wifi-radio-dangling",
        [(("wifi", 0, "radio"), "phy2")],
        ("wifi", 0, "radio"),
        ['"phy2"', "[[radios]]"],
    ),
    (
        "wifi-network-dangling",
        [(("wifi", 0, "network"), "lan2")],
        ("wifi", 0, "network"),
        ['"lan2"', "does not exist"],
    ),
    ("ssid-too-long", [(("wifi", 0, "ssid"), "x" * 33)], ("wifi", 0, "ssid"), ["1..32 bytes"]),
    ("ssid-empty", [(("wifi", 0, "ssid"), "")], ("wifi", 0, "ssid"), ["1..32 bytes"]),
    (
        "passphrase-short",
        [(("wifi", 0, "passphrase"), "short")],
        ("wifi", 0, "passphrase"),
        ["8..63"],
    ),
    (
        "passphrase-missing",
        [(("wifi", 0, "passphrase"), DELETE)],
        ("wifi", 0, "passphrase"),
        ["needs a passphrase", "secrets"],
    ),
    (
        "passphrase-on-open",
        [(("wifi", 1, "passphrase"), "whatever123")],
        ("wifi", 1, "passphrase"),
        ['"open"'],
    ),
    (
        "rotate-on-open",
        [(("wifi", 1, "rotate_hours"), 24)],
        ("wifi", 1, "rotate_hours"),
        ['"open"'],
    ),
    # DNS, DHCP, NTP, UPnP, metrics
    (
        "dns-protocol",
        [(("dns", "upstreams", 1, "protocol"), "doh")],
        ("dns", "upstreams", 1, "protocol"),
        ["https, quic, tls, udp, tcp"],
    ),
    (
        "dns-server-name",
        [(("dns", "upstreams", 0, "server_name"), DELETE)],
        ("dns", "upstreams", 0, "server_name"),
        ["needs server_name"],
    ),
    (
        "dns-path-on-udp",
        [(("dns", "upstreams", 1, "path"), "/dns-query")],
        ("dns", "upstreams", 1, "path"),
        ['only used with protocol "https"'],
    ),
    (
        "dns-upstream-ip",
        [(("dns", "upstreams", 0, "ip"), "one.one.one.one")],
        ("dns", "upstreams", 0, "ip"),
        ["not an IP"],
    ),
    ("dns-listen", [(("dns", "listen_v4", 0), "::")], ("dns", "listen_v4", 0), ["not an IPv4"]),
    (
        "dhcp-network-dangling",
        [(("dhcp", "network"), "lna")],
        ("dhcp", "network"),
        ["does not exist", "did you mean `lan`"],
    ),
    (
        "dhcp-on-wan",
        [
            (("dhcp", "network"), "wan"),
            (("dhcp", "pool_start"), DELETE),
            (("dhcp", "pool_end"), DELETE),
        ],
        ("dhcp", "network"),
        ["is a WAN"],
    ),
    ("dhcp-pool-half", [(("dhcp", "pool_end"), DELETE)], ("dhcp", "pool_end"), ["together"]),
    (
        "dhcp-pool-order",
        [(("dhcp", "pool_end"), "192.168.50.50")],
        ("dhcp", "pool_end"),
        ["before pool_start"],
    ),
    (
        "dhcp-pool-outside",
        [(("dhcp", "pool_end"), "192.168.51.200")],
        ("dhcp", "pool_end"),
        ["outside", "192.168.50.0/24"],
    ),
    (
        "dhcp-pool-bad-ip",
        [(("dhcp", "pool_start"), "192.168.50")],
        ("dhcp", "pool_start"),
        ["not an IPv4"],
    ),
    (
        "dhcp-lease-time",
        [(("dhcp", "lease_time"), "12 hours")],
        ("dhcp", "lease_time"),
        ["duration"],
    ),
    ("dhcp-lease-days", [(("dhcp", "lease_time"), "1d")], ("dhcp", "lease_time"), ["'d'", "24h"]),
    (
        "dhcp-lease-zero",
        [(("dhcp", "lease_time"), "0s")],
        ("dhcp", "lease_time"),
        ["longer than zero"],
    ),
    (
        "dhcp-auto-pool-small",
        [
            (("dhcp", "network"), "guest"),
            (("dhcp", "pool_start"), DELETE),
            (("dhcp", "pool_end"), DELETE),
            ((NET, 3, "prefix"), 31),
        ],
        ("dhcp", "network"),
        ["/30 or larger", "guest is /31"],
    ),
    (
        "dhcp-dns-server",
        [(("dhcp", "dns_servers"), ["fd00::1"])],
        ("dhcp", "dns_servers", 0),
        ["not an IPv4"],
    ),
    ("ntp-poll", [(("ntp", "poll_min"), 11)], ("ntp", "poll_min"), ["greater than poll_max"]),
    ("ntp-listen", [(("ntp", "listen", 0), "0.0.0.0")], ("ntp", "listen", 0), ["ip:port"]),
    (
        "ntp-mode",
        [(("ntp", "sources", 0, "mode"), "peer")],
        ("ntp", "sources", 0, "mode"),
        ["pool, server"],
    ),
    (
        "ntp-count-on-server",
        [(("ntp", "sources", 0, "mode"), "server")],
        ("ntp", "sources", 0, "count"),
        ['only used with mode "pool"'],
    ),
    ("upnp-wan", [(("upnp", "wan"), "eth9")], ("upnp", "wan"), ["not a WAN network"]),
    (
        "upnp-lan",
        [(("upnp", "lan"), "br-lna")],
        ("upnp", "lan"),
        ["not a LAN/simple", "did you mean `br-lan`"],
    ),
    (
        "upnp-ports",
        [(("upnp", "min_port"), 5000), (("upnp", "max_port"), 4000)],
        ("upnp", "min_port"),
        ["> max_port"],
    ),
    (
        "metrics-listen",
        [(("metrics", "listen"), "localhost:9100")],
        ("metrics", "listen"),
        ["not an IPv4"],
    ),
    # DDNS and backup
    ("ddns-duplicate", [(("ddns", 1, "name"), "home")], ("ddns", 1, "name"), ["duplicate name"]),
    ("ddns-empty-token", [(("ddns", 0, "token"), "")], ("ddns", 0, "token"), ["must not be empty"]),
    (
        "backup-quote",
        [(("backup_sftp", "remote_dir"), "it's")],
        ("backup_sftp", "remote_dir"),
        ["single quote"],
    ),
    (
        "backup-interval",
        [(("backup_sftp", "interval_hours"), 0)],
        ("backup_sftp", "interval_hours"),
        ["at least 1"],
    ),
    (
        "backup-key-path",
        [(("backup_sftp", "key_path"), "backup.key")],
        ("backup_sftp", "key_path"),
        ["absolute"],
    ),
    # services
    (
        "service-duplicate",
        [((S, 3), {**FULL[S][2]})],
        (S, 3, "name"),
        ["duplicate name", '"hostapd"'],
    ),
    (
        "isolated-without-veth",
        [((S, 1, "veth"), DELETE)],
        (S, 1, "net_mode"),
        ['"isolated"', "veth"],
    ),
    (
        "host-with-veth",
        [((S, 2, "veth"), {"host_ip": "10.9.0.1", "peer_ip": "10.9.0.2"})],
        (S, 2, "veth"),
        ['"host"'],
    ),
    (
        "depends-on-unknown",
        [((S, 1, "depends_on", 0), "dsn")],
        (S, 1, "depends_on", 0),
        ['"dsn"', "does not exist", "did you mean `dns`"],
    ),
    ("depends-on-self", [((S, 1, "depends_on", 0), "ntp")], (S, 1, "depends_on", 0), ["itself"]),
    (
        "depends-on-cycle",
        [((S, 0, "depends_on"), ["ntp"])],
        (S, 0, "depends_on"),
        ["cycle", "dns -> ntp -> dns"],
    ),
    (
        "isolated-depends-on-host",
        [((S, 1, "depends_on", 0), "hostapd")],
        (S, 1, "depends_on", 0),
        ["no veth", '"ntp"'],
    ),
    ("rootfs-relative", [((S, 0, "rootfs"), "rootfs/dns")], (S, 0, "rootfs"), ["absolute"]),
    (
        "bind-target-relative",
        [((S, 0, "binds", 0, "target"), "etc/named.toml")],
        (S, 0, "binds", 0, "target"),
        ["absolute"],
    ),
    (
        "bind-source-relative",
        [((S, 0, "binds", 0, "source"), "named.toml")],
        (S, 0, "binds", 0, "source"),
        ["absolute"],
    ),
    ("entrypoint-empty", [((S, 0, "entrypoint"), [])], (S, 0, "entrypoint"), ["program"]),
    (
        "env-name",
        [((S, 0, "env"), {"RUST-LOG": "info"})],
        (S, 0, "env", "RUST-LOG"),
        ["environment variable"],
    ),
    (
        "veth-peer-outside",
        [((S, 1, "veth", "peer_ip"), "10.124.0.2")],
        (S, 1, "veth", "peer_ip"),
        ["same /30"],
    ),
    (
        "veth-same-ip",
        [((S, 1, "veth", "peer_ip"), "10.123.0.1")],
        (S, 1, "veth", "peer_ip"),
        ["differ"],
    ),
    ("memory-zero", [((S, 0, "memory_max"), 0)], (S, 0, "memory_max"), ["memory_max = 0"]),
    ("cpu-max-percent", [((S, 0, "cpu_max"), "50%")], (S, 0, "cpu_max"), ["cpu_max", "quota"]),
    ("cpu-max-period", [((S, 0, "cpu_max"), "max 10")], (S, 0, "cpu_max"), ["period"]),
    (
        "cap-unknown",
        [((S, 0, "security", "caps", 0), "NET_ADMINN")],
        (S, 0, "security", "caps", 0),
        ["unknown capability", "did you mean `NET_ADMIN`"],
    ),
    (
        "cap-lowercase",
        [((S, 0, "security", "caps", 0), "net_admin")],
        (S, 0, "security", "caps", 0),
        ["capitals"],
    ),
    (
        "seccomp-unknown",
        [((S, 0, "security", "seccomp_allow", 0), "ptrac")],
        (S, 0, "security", "seccomp_allow", 0),
        ["not a Linux syscall", "did you mean `ptrace`"],
    ),
    (
        "seccomp-not-denied",
        [((S, 0, "security", "seccomp_allow", 0), "read")],
        (S, 0, "security", "seccomp_allow", 0),
        ["not denied by default"],
    ),
    (
        "seccomp-disabled",
        [((S, 0, "security", "seccomp"), False)],
        (S, 0, "security", "seccomp_allow"),
        ["seccomp = false"],
    ),
    # control plane
    (
        "control-listen-empty",
        [(("control", "listen"), [])],
        ("control", "listen"),
        ["at least one"],
    ),
    (
        "control-listen-bad",
        [(("control", "listen", 1), "localhost:51820")],
        ("control", "listen", 1),
        ["not an IPv4"],
    ),
    (
        "control-listen-v6-unbracketed",
        [(("control", "listen", 0), "::1:51820")],
        ("control", "listen", 0),
        ["[addr]:port"],
    ),
    (
        "control-authorized-keys",
        [(("control", "authorized_keys"), "authorized_keys")],
        ("control", "authorized_keys"),
        ["absolute"],
    ),
    (
        "control-client-dup-name",
        [(("control", "clients", 1), {"name": "laptop", "key": "cd" * 32})],
        ("control", "clients", 1, "name"),
        ["duplicate name"],
    ),
    (
        "control-client-dup-key",
        [(("control", "clients", 1), {"name": "phone", "key": CLIENT_KEY.upper()})],
        ("control", "clients", 1, "key"),
        ["duplicate key"],
    ),
    (
        "control-client-key",
        [(("control", "clients", 0, "key"), "ab" * 31)],
        ("control", "clients", 0, "key"),
        ["64 hex"],
    ),
    (
        "control-max-connections",
        [(("control", "max_connections"), 0)],
        ("control", "max_connections"),
        ["at least 1"],
    ),
]


@pytest.mark.parametrize(
    ("changes", "path", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(
    changes: list[tuple[tuple[str | int, ...], Any]], path: tuple[str | int, ...], words: list[str]
) -> None:
    issues = issues_of(edited(*changes))
    assert [i.path for i in issues] == [path], [str(i) for i in issues]
    for word in words:
        assert word in issues[0].message, (word, issues[0].message)


def test_disabled_rule_is_still_checked() -> None:
    assert FULL["firewall"]["rules"][4]["enabled"] is False
    issues = issues_of(edited(((*R, 4, "helper"), "nope")))
    assert [i.path for i in issues] == [(*R, 4, "helper")]


def test_host_service_may_depend_on_a_host_service() -> None:
    """For a host-network service depends_on is ordering only; the dependency needs no veth."""
    extra = {"name": "corerad", "rootfs": "/r", "entrypoint": ["/corerad"], "net_mode": "host"}
    assert issues_of(edited(((S, 3), extra), ((S, 2, "depends_on"), ["corerad"]))) == []


def test_port_forward_with_explicit_dest_may_target_any_address() -> None:
    raw = edited(
        (("port_forwards", 0, "internal"), "172.16.0.5:22"), (("port_forwards", 0, "dest"), "lan")
    )
    assert issues_of(raw) == []


def test_raw_psk_of_64_hex_digits_is_accepted() -> None:
    assert issues_of(edited((("wifi", 0, "passphrase"), "0f" * 32))) == []


def test_ipset_with_family_any_is_reported_on_the_set_and_on_the_rule() -> None:
    issues = issues_of(edited((("ipsets", 0, "family"), "any")))
    assert sorted(i.path for i in issues) == sorted(
        [("ipsets", 0, "family"), (*R, 3, "match_set", "name")]
    )


def test_independent_errors_are_all_reported() -> None:
    raw = edited(
        ((NET, 2, "prefix"), 33),
        ((NET, 4, "vlan"), 4095),
        ((*R, 0, "src"), "nowhere"),
        (("wifi", 0, "radio"), "phy9"),
        ((S, 1, "depends_on", 0), "dsn"),
        (("control", "clients", 0, "key"), "nothex"),
        (("dhcp", "lease_time"), "soon"),
    )
    paths = {i.path for i in issues_of(raw)}
    assert paths == {
        (NET, 2, "prefix"),
        (NET, 4, "vlan"),
        (*R, 0, "src"),
        ("wifi", 0, "radio"),
        (S, 1, "depends_on", 0),
        ("control", "clients", 0, "key"),
        ("dhcp", "lease_time"),
    }


def test_check_renders_paths_with_entry_identity() -> None:
    (issue,) = issues_of(edited(((*R, 1, "src"), "nowhere")))
    assert issue.where == 'firewall.rules[1] (name "iot-dns").src'
    assert str(issue).startswith('firewall.rules[1] (name "iot-dns").src: src "nowhere"')


def test_check_stops_at_decode_errors_without_validating() -> None:
    raw = edited(((NET, 2, "prefix"), "24"), ((*R, 0, "src"), "nowhere"))
    config, issues = check(raw)
    assert config is None
    assert [i.path for i in issues] == [(NET, 2, "prefix")]


def test_minimal_config_is_valid() -> None:
    raw = {
        "hostname": "r",
        "networks": [
            {
                "name": "lan",
                "type": "lan",
                "bridge": "br-lan",
                "address": "192.168.1.1",
                "prefix": 24,
            }
        ],
        "control": {"listen": ["[::1]:51820"]},
    }
    assert issues_of(raw) == []


def host_services(deps: dict[str, list[str]]) -> dict[str, Any]:
    services = [
        {"name": n, "rootfs": "/r", "entrypoint": ["/x"], "net_mode": "host", "depends_on": d}
        for n, d in deps.items()
    ]
    return edited(((S,), services))


def test_three_service_cycle_is_reported_once_with_its_members() -> None:
    issues = issues_of(host_services({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}))
    assert [(i.path, i.message) for i in issues] == [
        ((S, 0, "depends_on"), "dependency cycle: a -> b -> c -> a")
    ]


def test_diamond_dependencies_are_not_a_cycle() -> None:
    assert issues_of(host_services({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []})) == []


# ---------------------------------------- value parsers shared with the compilers


@pytest.mark.parametrize(
    ("spec", "ranges"),
    [
        (22, [(22, 22)]),
        ([80, 443], [(80, 80), (443, 443)]),
        ("6000-6010", [(6000, 6010)]),
        (" 6000 - 6010 ", [(6000, 6010)]),
        ("53", [(53, 53)]),
        ("65535-65535", [(65535, 65535)]),
    ],
)
def test_parse_ports(spec: int | list[int] | str, ranges: list[tuple[int, int]]) -> None:
    assert values.parse_ports(spec) == ranges


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (values.parse_dscp, "AF41", 34),
        (values.parse_dscp, "ef", 46),
        (values.parse_dscp, "cs6", 48),
        (values.parse_dscp, "63", 63),
        (values.parse_duration, "12h", 43200),
        (values.parse_duration, "90m", 5400),
        (values.parse_duration, "1h30m", 5400),
        (values.parse_duration, "1.5h", 5400),
        (values.parse_duration, "45s", 45),
        (values.parse_limit, "10/second", (10, "second")),
        (values.parse_limit, "3 / day", (3, "day")),
        (values.parse_mac, "02-AA-bb-CC-dd-EE", "02:aa:bb:cc:dd:ee"),
        (values.parse_cpu_max, "max 100000", (None, 100000)),
        (values.parse_cpu_max, "50000 100000", (50000, 100000)),
        (values.parse_cpu_max, "20000", (20000, 100000)),
        (values.parse_capability, "CAP_NET_ADMIN", "NET_ADMIN"),
        (values.parse_socket_addr, "192.0.2.1:53", (ipaddress.IPv4Address("192.0.2.1"), 53)),
        (
            values.parse_socket_addr,
            "[2001:db8::1]:853",
            (ipaddress.IPv6Address("2001:db8::1"), 853),
        ),
    ],
)
def test_value_parsers(parse: Callable[[str], object], text: str, expected: object) -> None:
    assert parse(text) == expected


def test_duration_in_days_only_where_allowed() -> None:
    assert values.parse_duration("1d2h", days=True) == 93600
    with pytest.raises(ValueError, match="'d'"):
        values.parse_duration("1d")


def test_helpers_table_matches_the_kernel_names() -> None:
    assert values.HELPERS["h323"] == ("H.323", "udp")
    assert {name for name, (_, l4) in values.HELPERS.items() if l4 == "tcp"} == {
        "ftp",
        "pptp",
        "irc",
        "rtsp",
    }


def test_every_default_denied_syscall_is_a_known_syscall() -> None:
    assert set(values.SYSCALLS_DENIED_BY_DEFAULT) <= values.SYSCALL_NAMES
    assert values.is_syscall("openat") and not values.is_syscall("open_at")
    assert len(values.CAPABILITIES) == 41  # CAP_CHOWN (0) .. CAP_CHECKPOINT_RESTORE (40)


DNAT_RULE = {
    "name": "dns-redirect",
    "action": "dnat",
    "proto": "udp",
    "dest_port": 53,
    "dnat_target": "10.53.0.2:15353",
}


def _dnat_issues(**extra: Any) -> list[str]:
    rules = [*FULL["firewall"]["rules"], {**DNAT_RULE, **extra}]
    return [str(i) for i in issues_of(edited((("firewall", "rules"), rules)))]


def test_plain_dnat_rule_is_valid() -> None:
    assert _dnat_issues() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("schedule", "daily 09:00-17:00"), ("src_ip", ["192.0.2.1"]), ("log", "x"), ("dest", "lan")],
)
def test_dnat_refuses_fields_it_would_ignore(key: str, value: Any) -> None:
    (issue,) = _dnat_issues(**{key: value})
    assert f'(name "dns-redirect").{key}' in issue and "would be ignored" in issue


def test_dnat_needs_a_port_and_a_transport_protocol() -> None:
    issues = _dnat_issues(proto="icmp", dest_port=None)
    assert any(".proto" in i and "tcp" in i for i in issues)


def test_blocklist_url_may_be_a_local_file_but_not_ftp() -> None:
    ok = [{"name": "local", "url": "file:///etc/oxwrt/blocked.txt"}]
    assert issues_of(edited((("blocklists",), ok))) == []
    bad = [{"name": "ftp", "url": "ftp://example.net/list"}]
    (issue,) = issues_of(edited((("blocklists",), bad)))
    assert "file:///" in str(issue)
