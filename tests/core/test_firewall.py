"""The firewall compiler, pure tier: what each config feature renders to, in which chain."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from oxwrtd.core.firewall import LEGACY_TABLES, FirewallFacts, compile_firewall
from oxwrtd.core.fw_script import Ruleset
from schema.config import Config

NETWORKS: list[dict[str, Any]] = [
    {"name": "wan", "type": "wan", "iface": "wan0", "mode": "dhcp"},
    {
        "name": "lan",
        "type": "lan",
        "bridge": "br-lan",
        "address": "192.168.1.1",
        "prefix": 24,
        "ipv6_address": "fd00:1::1",
    },
    {"name": "guest", "type": "simple", "iface": "guest0", "address": "192.168.2.1", "prefix": 24},
]
ZONES: list[dict[str, Any]] = [
    {"name": "lan", "networks": ["lan"], "default_input": "accept"},
    {"name": "guest", "networks": ["guest"]},
    {"name": "wan", "networks": ["wan"], "masquerade": True},
]


def make(*, networks: list[dict[str, Any]] | None = None, **top: Any) -> Config:
    firewall = top.pop("firewall", {})
    firewall.setdefault("zones", ZONES)
    raw = {
        "hostname": "r",
        "control": {"listen": ["[::1]:51820"]},
        "networks": networks or NETWORKS,
        "firewall": firewall,
        **top,
    }
    return msgspec.convert(raw, Config)


def compile_(facts: FirewallFacts | None = None, **top: Any) -> Ruleset:
    return compile_firewall(make(**top), facts or FirewallFacts())


def chain(rs: Ruleset, name: str) -> list[str]:
    """The rule lines of one chain of `table inet oxwrt`."""
    m = re.search(rf"^  chain {name} \{{\n(.*?)^  \}}", rs.text, re.M | re.S)
    assert m, f"chain {name} missing"
    return [
        line.strip() for line in m.group(1).splitlines() if not line.strip().startswith("type ")
    ]


def rule(**fields: Any) -> dict[str, Any]:
    return {"name": "r", "action": "accept", **fields}


# ---------------------------------------------------------------- zones and baseline


def test_zone_default_policies_are_the_last_verdict_of_each_zone_chain() -> None:
    rs = compile_(
        firewall={
            "zones": [
                {"name": "lan", "networks": ["lan"], "default_input": "accept"},
                {
                    "name": "guest",
                    "networks": ["guest"],
                    "default_forward": "accept",
                    "default_output": "drop",
                },
            ]
        }
    )
    assert chain(rs, "zone_lan_input")[-1] == "accept"
    assert chain(rs, "zone_lan_forward")[-1] == "drop"
    assert chain(rs, "zone_guest_input")[-1] == "drop"
    assert chain(rs, "zone_guest_forward")[-1] == "accept"
    assert chain(rs, "zone_guest_output")[-1] == "drop"
    assert (
        'iifname vmap { "br-lan" : jump zone_lan_input, "guest0" : jump zone_guest_input }'
        in chain(rs, "input")
    )
    assert (
        'oifname vmap { "br-lan" : jump zone_lan_output, "guest0" : jump zone_guest_output }'
        in chain(rs, "output")
    )


def test_base_chains_drop_input_and_forward_from_interfaces_in_no_zone() -> None:
    rs = compile_()
    assert "type filter hook input priority filter; policy drop;" in rs.text
    assert "type filter hook forward priority filter; policy drop;" in rs.text
    assert "type filter hook output priority filter; policy accept;" in rs.text


def test_baseline_precedes_operator_rules_and_dispatch() -> None:
    rs = compile_(firewall={"rules": [rule(proto="tcp", dest_port=80, action="drop")]})
    inp = chain(rs, "input")
    for line in (
        'iifname "lo" accept',
        "ct state established,related accept",
        "ct state invalid drop",
        "icmpv6 type packet-too-big accept",
    ):
        assert inp.index(line) < inp.index("tcp dport 80 drop")
    assert "nd-neighbor-solicit" in inp[4] + inp[5]
    assert any(line.startswith("icmp type echo-request limit rate") for line in inp)
    assert inp[-1].startswith("iifname vmap")


def test_defaults_can_turn_off_invalid_drop_and_synflood() -> None:
    rs = compile_(firewall={"defaults": {"drop_invalid": False, "synflood_protect": False}})
    assert "ct state invalid drop" not in rs.text
    assert "limit rate over 25/second" not in rs.text


def test_every_dhcp_wan_accepts_dhcp_replies_not_only_the_primary() -> None:
    nets = [
        *NETWORKS,
        {"name": "lte", "type": "wan", "iface": "wwan0", "mode": "dhcp", "priority": 200},
    ]
    rs = compile_(networks=nets)
    inp = chain(rs, "input")
    assert 'iifname "wan0" udp sport 67 udp dport 68 accept' in inp
    assert 'iifname "wwan0" udp sport 67 udp dport 68 accept' in inp


def test_static_wan_gets_no_dhcp_accept() -> None:
    nets = [
        {
            "name": "wan",
            "type": "wan",
            "iface": "wan0",
            "mode": "static",
            "address": "203.0.113.2",
            "prefix": 24,
            "gateway": "203.0.113.1",
        },
        NETWORKS[1],
    ]
    assert "dport 68" not in compile_(networks=nets, firewall={"zones": ZONES[:1]}).text


def test_forwardings_follow_rules_in_the_src_zone_chain() -> None:
    rs = compile_(
        firewall={
            "forwardings": [
                {"src": "lan", "dest": "wan"},
                {"src": "guest", "dest": "wan", "family": "ipv4"},
            ],
            "rules": [rule(src="lan", dest="wan", proto="tcp", dest_port=25, action="drop")],
        }
    )
    assert chain(rs, "zone_lan_forward") == [
        'oifname "wan0" tcp dport 25 drop',
        'oifname "wan0" accept',
        "drop",
    ]
    assert chain(rs, "zone_guest_forward") == ['oifname "wan0" meta nfproto ipv4 accept', "drop"]


def test_mtu_fix_clamps_mss_on_the_zone_interfaces() -> None:
    zones = [*ZONES[:2], {**ZONES[2], "mtu_fix": True}]
    fwd = chain(compile_(firewall={"zones": zones}), "forward")
    assert 'iifname "wan0" tcp flags syn tcp option maxseg size set rt mtu' in fwd
    assert 'oifname "wan0" tcp flags syn tcp option maxseg size set rt mtu' in fwd


# ---------------------------------------------------------------- masquerade and port forwards


def test_masquerade_only_ipv4_out_of_masquerade_zone_interfaces() -> None:
    nat = chain(compile_(), "srcnat")
    assert nat == ['meta nfproto ipv4 oifname "wan0" masquerade']


def test_no_masquerade_zone_means_no_srcnat_chain() -> None:
    zones = [*ZONES[:2], {"name": "wan", "networks": ["wan"]}]
    assert "masquerade" not in compile_(firewall={"zones": zones}).text


def test_port_forward_dnat_forward_accept_and_hairpin_on_the_wan_address() -> None:
    rs = compile_(
        FirewallFacts(wan_addresses=("203.0.113.2", "2001:db8::2")),
        port_forwards=[
            {"name": "web", "proto": "tcp", "external_port": 8080, "internal": "192.168.1.20:80"}
        ],
    )
    dnat = chain(rs, "dstnat")
    assert dnat == [
        'iifname "wan0" meta nfproto ipv4 tcp dport 8080 dnat ip to 192.168.1.20:80',
        "ip daddr 203.0.113.2 tcp dport 8080 dnat ip to 192.168.1.20:80",
    ]
    assert chain(rs, "dstnat_output") == [
        "ip daddr 203.0.113.2 tcp dport 8080 dnat ip to 192.168.1.20:80"
    ]
    assert "meta nfproto ipv4 ip daddr 192.168.1.20 tcp dport 80 ct status dnat accept" in chain(
        rs, "forward"
    )
    assert (
        'iifname != "wan0" ip daddr 192.168.1.20 tcp dport 80 ct status dnat masquerade'
        in chain(rs, "srcnat")
    )
    assert "192.168.1.1 tcp dport 8080" not in rs.text  # reflection never keys on LAN addresses
    assert rs.origin_of(rs.text.splitlines().index("    " + dnat[0]) + 1) == "port_forwards[0]"


def test_reflection_waits_for_a_wan_address_and_can_be_disabled() -> None:
    pf = {"name": "web", "proto": "tcp", "external_port": 8080, "internal": "192.168.1.20:80"}
    assert "dstnat_output" not in compile_(port_forwards=[pf]).text
    off = compile_(
        FirewallFacts(wan_addresses=("203.0.113.2",)), port_forwards=[{**pf, "reflection": False}]
    )
    assert "203.0.113.2" not in off.text


def test_ipv6_port_forward_gets_its_forward_accept() -> None:
    rs = compile_(
        port_forwards=[
            {"name": "w6", "proto": "both", "external_port": 443, "internal": "[fd00:1::20]:8443"}
        ]
    )
    assert (
        'iifname "wan0" meta nfproto ipv6 meta l4proto { tcp, udp } th dport 443 '
        "dnat ip6 to [fd00:1::20]:8443" in chain(rs, "dstnat")
    )
    assert (
        "meta nfproto ipv6 ip6 daddr fd00:1::20 meta l4proto { tcp, udp } th dport 8443 "
        "ct status dnat accept" in chain(rs, "forward")
    )


def test_legacy_dnat_rule_targets_router_addresses_and_gets_a_forward_accept() -> None:
    rs = compile_(
        firewall={
            "rules": [
                rule(
                    src="guest",
                    proto="udp",
                    dest_port=53,
                    action="dnat",
                    dnat_target="10.53.0.2:15353",
                )
            ]
        }
    )
    assert (
        'iifname "guest0" ip daddr { 192.168.1.1, 192.168.2.1 } udp dport 53 '
        "dnat ip to 10.53.0.2:15353" in chain(rs, "dstnat")
    )
    assert (
        'iifname "guest0" meta nfproto ipv4 ip daddr 10.53.0.2 udp dport 15353 '
        "ct status dnat accept" in chain(rs, "forward")
    )


# ---------------------------------------------------------------- rule fields


@pytest.mark.parametrize(
    ("fields", "where", "expected"),
    [
        (
            {"src": "guest", "proto": "icmp"},
            "zone_guest_input",
            ["meta l4proto icmp accept", "meta l4proto ipv6-icmp accept"],
        ),
        (
            {"src": "guest", "proto": "icmp", "icmp_type": "echo-request", "family": "ipv4"},
            "zone_guest_input",
            ["icmp type echo-request accept"],
        ),
        (
            {"src": "guest", "icmp_type": "nd-neighbor-solicit"},
            "zone_guest_input",
            ["icmpv6 type nd-neighbor-solicit accept"],
        ),
        (
            {"src": "guest", "proto": "both", "dest_port": 53},
            "zone_guest_input",
            ["meta l4proto { tcp, udp } th dport 53 accept"],
        ),
        (
            {"src": "guest", "proto": "tcp", "dest_port": "6000-6010"},
            "zone_guest_input",
            ["tcp dport 6000-6010 accept"],
        ),
        (
            {"src": "guest", "proto": "udp", "dest_port": [53, 67], "src_port": 68},
            "zone_guest_input",
            ["udp dport { 53, 67 } udp sport 68 accept"],
        ),
        ({"src": "guest", "proto": "tcp"}, "zone_guest_input", ["meta l4proto tcp accept"]),
        ({"src": "guest", "family": "ipv6"}, "zone_guest_input", ["meta nfproto ipv6 accept"]),
        (
            {
                "src": "wan",
                "src_ip": ["198.51.100.0/24", "2001:db8::/32"],
                "proto": "tcp",
                "dest_port": 22,
            },
            "zone_wan_input",
            [
                "ip saddr 198.51.100.0/24 tcp dport 22 accept",
                "ip6 saddr 2001:db8::/32 tcp dport 22 accept",
            ],
        ),
        (
            {"src": "wan", "src_ip": ["198.51.100.0/24", "2001:db8::/32"], "family": "ipv6"},
            "zone_wan_input",
            ["ip6 saddr 2001:db8::/32 accept"],
        ),
        (
            {"src": "lan", "dest": "wan", "dest_ip": ["192.0.2.1", "192.0.2.9"]},
            "zone_lan_forward",
            ['oifname "wan0" ip daddr { 192.0.2.1, 192.0.2.9 } accept'],
        ),
        (
            {"src": "lan", "src_mac": ["AA:BB:CC:DD:EE:01"], "action": "drop"},
            "zone_lan_input",
            ["ether saddr aa:bb:cc:dd:ee:01 drop"],
        ),
        (
            {"src": "wan", "ct_state": ["new", "untracked"], "action": "drop"},
            "zone_wan_input",
            ["ct state { new, untracked } drop"],
        ),
        (
            {"src": "wan", "proto": "tcp", "dest_port": 23, "action": "reject"},
            "zone_wan_input",
            ["tcp dport 23 reject"],
        ),
        (
            {
                "src": "wan",
                "proto": "tcp",
                "dest_port": 23,
                "action": "reject",
                "reject_with": "tcp reset",
            },
            "zone_wan_input",
            ["tcp dport 23 reject with tcp reset"],
        ),
        (
            {
                "src": "wan",
                "proto": "tcp",
                "dest_port": 22,
                "limit": "3/minute",
                "limit_burst": 5,
                "log": 'ssh "x"',
                "counter": True,
            },
            "zone_wan_input",
            [
                "tcp dport 22 limit rate 3/minute burst 5 packets "
                "log prefix \"ssh 'x'\" counter accept"
            ],
        ),
        (
            {"src": "wan", "device": "wan0.7", "action": "drop"},
            "zone_wan_input",
            ['iifname "wan0.7" drop'],
        ),
        (
            {"dest": "wan", "device": "wan0.7", "action": "drop"},
            "zone_wan_output",
            ['oifname "wan0.7" drop'],
        ),
        (
            {"dest": "wan", "proto": "tcp", "dest_port": 25, "action": "drop"},
            "zone_wan_output",
            ["tcp dport 25 drop"],
        ),
    ],
)
def test_rule_fields_render_as_nft_matches(
    fields: dict[str, Any], where: str, expected: list[str]
) -> None:
    rs = compile_(firewall={"rules": [rule(**fields)]})
    assert chain(rs, where)[: len(expected)] == expected


def test_icmp_rule_matches_icmp_only() -> None:
    rs = compile_(firewall={"rules": [rule(src="guest", proto="icmp")]})
    for line in chain(rs, "zone_guest_input")[:-1]:
        assert "icmp" in line


def test_rule_without_zones_goes_to_input_and_forward_before_dispatch() -> None:
    rs = compile_(firewall={"rules": [rule(proto="tcp", dest_port=135, action="drop")]})
    for name in ("input", "forward"):
        lines = chain(rs, name)
        assert lines.index("tcp dport 135 drop") < len(lines) - 1
        assert lines[-1].startswith("iifname vmap")


def test_match_set_uses_the_named_set_with_its_family() -> None:
    rs = compile_(
        ipsets=[{"name": "bad6", "family": "ipv6", "entries": ["2001:db8::/32"]}],
        firewall={
            "rules": [
                rule(src="wan", match_set={"name": "bad6", "direction": "dst", "negate": True})
            ]
        },
    )
    assert chain(rs, "zone_wan_input")[0] == "ip6 daddr != @bad6 accept"
    assert (
        "set bad6 {\n    type ipv6_addr\n    flags interval\n    elements = { 2001:db8::/32 }"
        in rs.text
    )


def test_ipset_timeout_and_plain_entries() -> None:
    rs = compile_(
        ipsets=[{"name": "tmp", "family": "ipv4", "entries": ["192.0.2.1"], "timeout": "1h"}]
    )
    assert (
        "set tmp {\n    type ipv4_addr\n    flags timeout\n    timeout 1h\n"
        "    elements = { 192.0.2.1 }" in rs.text
    )


def test_disabled_rules_emit_nothing() -> None:
    rs = compile_(firewall={"rules": [rule(src="wan", proto="tcp", dest_port=22, enabled=False)]})
    assert "dport 22" not in rs.text


def test_helper_notrack_mark_and_dscp_companions() -> None:
    rs = compile_(
        firewall={
            "rules": [
                rule(
                    src="lan",
                    dest="wan",
                    proto="tcp",
                    dest_port=21,
                    helper="ftp",
                    set_mark=16,
                    set_dscp="AF41",
                ),
                rule(name="n", src="lan", proto="udp", dest_port=123, notrack=True),
            ]
        }
    )
    assert 'ct helper ftp {\n    type "ftp" protocol tcp\n    l3proto inet' in rs.text
    assert chain(rs, "helper_prerouting") == ['iifname "br-lan" tcp dport 21 ct helper set "ftp"']
    assert chain(rs, "mangle_forward") == [
        'iifname "br-lan" oifname "wan0" meta nfproto ipv4 tcp dport 21 '
        "meta mark set 0x10 ip dscp set 34",
        'iifname "br-lan" oifname "wan0" meta nfproto ipv6 tcp dport 21 '
        "meta mark set 0x10 ip6 dscp set 34",
    ]
    assert chain(rs, "notrack_prerouting") == ['iifname "br-lan" udp dport 123 notrack']
    assert 'oifname "wan0" tcp dport 21 accept' in chain(
        rs, "zone_lan_forward"
    )  # the verdict stays


def test_h323_helper_uses_the_kernel_name() -> None:
    rs = compile_(firewall={"rules": [rule(src="lan", proto="udp", dest_port=1720, helper="h323")]})
    assert 'type "H.323" protocol udp' in rs.text


# ---------------------------------------------------------------- raw_nft, stale tables, identity


def test_raw_nft_goes_inline_after_the_baseline_and_maps_to_its_path() -> None:
    rs = compile_(
        ipsets=[{"name": "bad", "family": "ipv4", "entries": ["192.0.2.0/24"]}],
        firewall={
            "raw_nft": [
                {"chain": "input", "rule": "ip saddr @bad counter drop"},
                {"chain": "zone_wan_input", "rule": "tcp dport 2222 accept"},
                {"table": "inet other", "chain": "c", "rule": "accept"},
            ]
        },
    )
    inp = chain(rs, "input")
    assert inp.index("ip saddr @bad counter drop") > inp.index(
        "ct state established,related accept"
    )
    assert chain(rs, "zone_wan_input") == ["tcp dport 2222 accept", "drop"]
    lines = rs.text.splitlines()
    assert lines[-1] == "add rule inet other c accept"
    assert rs.origin_of(len(lines)) == "firewall.raw_nft[2]"
    assert rs.origin_of(lines.index("    ip saddr @bad counter drop") + 1) == "firewall.raw_nft[0]"


def test_the_rule_count_is_every_rule_line_of_every_chain_and_every_add_rule() -> None:
    raw = [
        {"chain": "input", "rule": "tcp dport 9 drop"},
        {"table": "inet other", "chain": "c", "rule": "accept"},
    ]
    rs = compile_(firewall={"raw_nft": raw})
    in_chain, counted = False, 0
    for line in rs.text.splitlines():  # read back from the script, not from the compiler
        text = line.strip()
        if text.startswith("chain ") and text.endswith("{"):
            in_chain = True
        elif text == "}":
            in_chain = False
        elif in_chain and not text.startswith("type "):
            counted += 1
        counted += text.startswith("add rule ")
    assert rs.rules == counted > 20


def test_script_replaces_our_table_and_deletes_legacy_tables_atomically() -> None:
    lines = compile_().text.splitlines()
    for spec in LEGACY_TABLES:
        assert lines.index(f"table {spec} {{}}") + 1 == lines.index(f"delete table {spec}")
    start = lines.index("table inet oxwrt {}")
    assert lines[start + 1 : start + 3] == ["delete table inet oxwrt", "table inet oxwrt {"]


def test_compile_is_deterministic_and_the_digest_tracks_content() -> None:
    a, b = compile_(), compile_()
    assert a.text == b.text
    assert a.digest == b.digest
    assert f"  chain revision_{a.digest} {{}}" in a.text
    c = compile_(firewall={"rules": [rule(src="wan", proto="tcp", dest_port=22)]})
    assert c.digest != a.digest


def test_service_veths_get_automatic_forwards() -> None:
    services = [
        {
            "name": "dns",
            "rootfs": "/",
            "entrypoint": ["/d"],
            "veth": {"host_ip": "10.53.0.1", "peer_ip": "10.53.0.2"},
        },
        {"name": "ntp", "rootfs": "/", "entrypoint": ["/n"], "depends_on": ["dns"]},
    ]
    rs = compile_(
        FirewallFacts(service_veths={"dns": "veth-dns", "ntp": "veth-ntp"}), services=services
    )
    fwd = chain(rs, "forward")
    assert 'iifname "br-lan" oifname "veth-dns" accept' in fwd
    assert 'iifname "veth-dns" oifname "wan0" accept' in fwd
    assert 'iifname "veth-ntp" oifname "veth-dns" accept' in fwd


def test_via_vpn_zone_has_a_kill_switch_ahead_of_its_rules_and_vpn_dns() -> None:
    vpn = {
        "name": "mullvad",
        "iface": "wg-out",
        "address": "10.64.0.2/32",
        "probe_target": "10.64.0.1",
        "endpoint": "198.51.100.7:51820",
        "public_key": "k" * 43 + "=",
        "dns": ["10.64.0.1"],
    }
    zones = [ZONES[0], {**ZONES[1], "via_vpn": True}, ZONES[2]]
    rs = compile_(
        vpn_client=[vpn],
        firewall={
            "zones": zones,
            "forwardings": [{"src": "guest", "dest": "wan"}],
            "rules": [rule(src="guest", dest="wan", proto="tcp", dest_port=443)],
        },
    )
    assert chain(rs, "zone_guest_forward")[:2] == ['oifname "wg-out" accept', 'oifname "wan0" drop']
    assert (
        'iifname "guest0" meta nfproto ipv4 meta l4proto { tcp, udp } th dport 53 '
        "dnat ip to 10.64.0.1" in chain(rs, "dstnat")
    )
    assert 'oifname "wg-out" tcp flags syn tcp option maxseg size set rt mtu' in chain(
        rs, "forward"
    )
    assert chain(rs, "zone_lan_forward") == ["drop"]


def test_zone_names_become_safe_chain_names() -> None:
    zones = [{"name": "iot-2", "networks": ["guest"]}]
    rs = compile_(firewall={"zones": zones})
    assert "chain zone_iot_x2d_2_input {" in rs.text


def test_a_dangling_zone_reference_is_an_error_naming_the_rule() -> None:
    with pytest.raises(ValueError, match=r"firewall.rules\[0\].src: zone 'dmz' is not declared"):
        compile_(firewall={"rules": [rule(src="dmz")]})


def test_last_compile_reuses_the_ruleset_only_for_identical_inputs() -> None:
    from oxwrtd.core.fw_script import LastCompile

    last = LastCompile()
    config = make()
    first = last(compile_firewall, config, FirewallFacts())
    assert last(compile_firewall, make(), FirewallFacts()) is first
    moved = last(compile_firewall, config, FirewallFacts(wan_addresses=("203.0.113.9",)))
    assert moved is not first
    assert (
        moved.text == compile_firewall(config, FirewallFacts(wan_addresses=("203.0.113.9",))).text
    )
