"""The compiled firewall proven with packets between network namespaces (lab tier, root)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from fw_fixtures import Lab, sh

from oxwrtd.core.firewall import FirewallFacts, compile_firewall, zone_interfaces
from oxwrtd.core.fw_blocklist import compile_blocklists
from oxwrtd.core.fw_script import Ruleset
from schema.config import Config

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

WAN_ADDR = "203.0.113.2"
FACTS = FirewallFacts(wan_addresses=(WAN_ADDR,))


def cookbook(lan_input: str = "accept", **top: Any) -> Config:
    """The cookbook's zones (lan/guest/wan, lan->wan and guest->wan forwarding) on the lab links."""
    firewall = top.pop("firewall", {})
    raw = {
        "hostname": "lab",
        "control": {"listen": ["[::1]:51820"]},
        "networks": [
            {
                "name": "wan",
                "type": "wan",
                "iface": "wan0",
                "mode": "static",
                "address": WAN_ADDR,
                "prefix": 24,
                "gateway": "203.0.113.1",
            },
            {
                "name": "lan",
                "type": "lan",
                "bridge": "br-lan",
                "address": "192.168.1.1",
                "prefix": 24,
                "ipv6_address": "fd00:1::1",
            },
            {
                "name": "guest",
                "type": "simple",
                "iface": "guest0",
                "address": "192.168.2.1",
                "prefix": 24,
            },
        ],
        "firewall": {
            "zones": [
                {"name": "lan", "networks": ["lan"], "default_input": lan_input},
                {"name": "guest", "networks": ["guest"]},
                {"name": "wan", "networks": ["wan"], "masquerade": True},
            ],
            "forwardings": [{"src": "lan", "dest": "wan"}, {"src": "guest", "dest": "wan"}],
            **firewall,
        },
        "port_forwards": [
            {"name": "web", "proto": "tcp", "external_port": 8080, "internal": "192.168.1.20:80"}
        ],
        **top,
    }
    return msgspec.convert(raw, Config)


def ruleset(config: Config, facts: FirewallFacts = FACTS) -> Ruleset:
    return compile_firewall(config, facts)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    lab = Lab()
    try:
        lab.serve("wan", "203.0.113.1", 7000)
        lab.serve("server", "192.168.1.20", 80)
        lab.serve("router", "0.0.0.0", 7001)
        yield lab
    finally:
        lab.close()


def test_lan_to_wan_works_and_wan_sees_the_router_address(lab: Lab) -> None:
    lab.apply(ruleset(cookbook()))
    assert lab.connect("lan", "203.0.113.1", 7000) == f"ok {WAN_ADDR}"


def test_wan_to_router_is_dropped_silently(lab: Lab) -> None:
    lab.apply(ruleset(cookbook()))
    assert lab.connect("wan", WAN_ADDR, 7001) == "timeout"  # a listening port: dropped
    assert lab.connect("wan", WAN_ADDR, 7999) == "timeout"  # a closed port: no RST, no unreachable


def test_guest_reaches_wan_but_not_lan(lab: Lab) -> None:
    lab.apply(ruleset(cookbook()))
    assert lab.connect("guest", "203.0.113.1", 7000) == f"ok {WAN_ADDR}"
    assert lab.connect("guest", "192.168.1.20", 80) == "timeout"
    assert lab.connect("guest", "192.168.2.1", 7001) == "timeout"  # guest default_input = drop


def test_port_forward_from_wan_and_hairpin_from_lan(lab: Lab) -> None:
    lab.apply(ruleset(cookbook()))
    # from outside the client address is kept (no masquerade towards the server)
    assert lab.connect("wan", WAN_ADDR, 8080) == "ok 203.0.113.1"
    # hairpin: the LAN client uses the public address and the server answers through the router
    assert lab.connect("lan", WAN_ADDR, 8080) == "ok 192.168.1.1"


def test_zone_default_input_accept_versus_drop(lab: Lab) -> None:
    lab.apply(ruleset(cookbook(lan_input="accept")))
    assert lab.connect("lan", "192.168.1.1", 7001) == "ok 192.168.1.10"
    lab.apply(ruleset(cookbook(lan_input="drop")))
    assert lab.connect("lan", "192.168.1.1", 7001) == "timeout"


def test_ipv6_neighbour_discovery_and_ping6_through_default_drop(lab: Lab) -> None:
    lab.apply(ruleset(cookbook(lan_input="drop")))
    lab.apply(ruleset(cookbook(lan_input="drop")))
    assert lab.ping6("lan", "fd00:1::1")
    assert lab.connect("lan", "192.168.1.1", 7001) == "timeout"  # the zone does drop the rest


def test_blocklist_drops_a_listed_source(lab: Lab) -> None:
    config = cookbook(blocklists=[{"name": "bad", "url": "http://unused.invalid/list"}])
    zones = zone_interfaces(config)
    lab.apply(ruleset(config), compile_blocklists(config, {"bad": ["198.51.100.0/24"]}, zones))
    assert lab.connect("wan", WAN_ADDR, 8080) == "ok 203.0.113.1"
    lab.apply(compile_blocklists(config, {"bad": ["203.0.113.0/28"]}, zones))
    assert lab.connect("wan", WAN_ADDR, 8080) == "timeout"
    lab.apply(compile_blocklists(cookbook(), {}, zones))  # no lists: the table goes away
    assert "oxwrt-blocklist" not in lab.nft_json()


def _window(now: dt.datetime, start_h: float, end_h: float) -> str:
    a, b = now + dt.timedelta(hours=start_h), now + dt.timedelta(hours=end_h)
    return f"{a:%H:%M}-{b:%H:%M}"


def test_scheduled_rule_is_in_force_only_inside_its_window(lab: Lab) -> None:
    # the operator's clock runs 2 h ahead of UTC: the window is written in that local time
    offset = 120
    local_now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=offset)
    facts = FirewallFacts(wan_addresses=(WAN_ADDR,), utc_offset_minutes=offset)

    def open_port(window: str) -> Config:
        return cookbook(
            firewall={
                "rules": [
                    {
                        "name": "ssh-hours",
                        "src": "wan",
                        "proto": "tcp",
                        "dest_port": 7001,
                        "schedule": window,
                        "action": "accept",
                    }
                ]
            }
        )

    lab.apply(ruleset(open_port(_window(local_now, -1, 1)), facts))
    assert lab.connect("wan", WAN_ADDR, 7001) == "ok 203.0.113.1"
    lab.apply(ruleset(open_port(_window(local_now, 2, 3)), facts))
    assert lab.connect("wan", WAN_ADDR, 7001) == "timeout"
    lab.apply(ruleset(open_port(_window(local_now, -3, -2)), facts))
    assert lab.connect("wan", WAN_ADDR, 7001) == "timeout"


def test_reapply_is_a_noop_and_the_kernel_listing_is_byte_identical(lab: Lab) -> None:
    rs = ruleset(cookbook())
    lab.apply(rs)
    before = lab.nft_json()
    assert lab.apply(rs) == ["unchanged"]
    assert lab.nft_json() == before


def test_bad_raw_nft_line_fails_and_the_previous_ruleset_keeps_working(lab: Lab) -> None:
    lab.apply(ruleset(cookbook()))
    before = lab.nft_json()
    bad = cookbook(firewall={"raw_nft": [{"chain": "input", "rule": "tcp dport 7001 frobnicate"}]})
    out = lab.apply(ruleset(bad))
    assert out[0].startswith("error firewall.raw_nft[0]")
    assert "line" in out[0]
    assert lab.nft_json() == before
    assert lab.connect("lan", "203.0.113.1", 7000) == f"ok {WAN_ADDR}"
    assert lab.connect("wan", WAN_ADDR, 7001) == "timeout"


def test_stale_legacy_tables_are_removed_with_the_apply(lab: Lab) -> None:
    sh("nft", "add table ip oxwrt-nat", ns=lab.ns["router"])
    lab.apply(
        ruleset(cookbook(firewall={"rules": [{"name": "x", "src": "wan", "action": "drop"}]}))
    )
    assert "oxwrt-nat" not in lab.nft_json()


def test_every_rule_field_is_accepted_by_the_kernel(lab: Lab) -> None:
    rules: list[dict[str, Any]] = [
        {
            "name": "both",
            "src": "guest",
            "proto": "both",
            "dest_port": [53, 67],
            "action": "accept",
        },
        {
            "name": "ping",
            "src": "guest",
            "proto": "icmp",
            "icmp_type": "echo-request",
            "action": "accept",
        },
        {"name": "nd", "src": "lan", "icmp_type": "nd-neighbor-solicit", "action": "accept"},
        {
            "name": "ssh",
            "src": "wan",
            "proto": "tcp",
            "dest_port": "2200-2299",
            "src_port": 1024,
            "src_ip": ["198.51.100.0/24", "2001:db8::/32"],
            "dest_ip": ["203.0.113.2", "2001:db8:1::2"],
            "ct_state": ["new"],
            "limit": "5/minute",
            "limit_burst": 10,
            "log": "ssh: ",
            "counter": True,
            "action": "reject",
            "reject_with": "tcp reset",
        },
        {
            "name": "admins",
            "src": "wan",
            "match_set": {"name": "admins", "negate": True},
            "action": "drop",
        },
        {
            "name": "mac",
            "src": "lan",
            "src_mac": ["aa:bb:cc:dd:ee:ff"],
            "device": "br-lan",
            "action": "drop",
        },
        {
            "name": "kids",
            "src": "lan",
            "dest": "wan",
            "schedule": "from 2026-01-01 until 2027-12-31 fri-tue 21:30-06:15",
            "action": "reject",
        },
        {
            "name": "ftp",
            "src": "lan",
            "dest": "wan",
            "proto": "tcp",
            "dest_port": 21,
            "helper": "ftp",
            "action": "accept",
        },
        {
            "name": "sip",
            "src": "lan",
            "dest": "wan",
            "proto": "udp",
            "dest_port": 5060,
            "helper": "sip",
            "action": "accept",
        },
        {
            "name": "ntp",
            "src": "lan",
            "proto": "udp",
            "dest_port": 123,
            "notrack": True,
            "action": "accept",
        },
        {
            "name": "voip",
            "src": "lan",
            "dest": "wan",
            "proto": "udp",
            "dest_port": 5004,
            "set_mark": 7,
            "set_dscp": "ef",
            "action": "accept",
        },
        {
            "name": "out",
            "dest": "wan",
            "family": "ipv6",
            "proto": "tcp",
            "dest_port": 25,
            "action": "drop",
        },
        {
            "name": "dns",
            "src": "lan",
            "proto": "udp",
            "dest_port": 53,
            "action": "dnat",
            "dnat_target": "192.168.1.20:5353",
        },
    ]
    config = cookbook(
        ipsets=[
            {"name": "admins", "family": "ipv4", "entries": ["192.168.1.0/28"], "timeout": "1h"}
        ],
        firewall={"rules": rules},
    )
    assert lab.apply(ruleset(config)) == ["changed"]
