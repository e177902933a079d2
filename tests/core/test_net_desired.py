"""desired(config, facts): what a config asks of the kernel (pure tier)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from oxwrtd.core.net import (
    IP_FORWARD,
    IPV6_FORWARDING,
    Addr,
    Lease,
    NetConfigError,
    NetFacts,
    PortVlan,
    Route,
    desired,
)
from schema.config import Config

# The cookbook's network half (rootfs-overlay/etc/oxwrt/oxwrt.toml), plus a VLAN network and routes.
COOKBOOK_NETWORKS: dict[str, Any] = {
    "hostname": "homelab-gw",
    "control": {"listen": ["[::1]:51820"]},
    "networks": [
        {"type": "wan", "name": "wan", "iface": "wan0", "mode": "dhcp"},
        {
            "type": "lan",
            "name": "lan",
            "bridge": "br-lan",
            "members": ["lan0"],
            "address": "192.168.50.1",
            "prefix": 24,
            "ipv6_address": "fd7a:5c3e:9b21::1",
            "ipv6_prefix": 64,
            "ipv6_subnet_id": 1,
        },
        {
            "type": "simple",
            "name": "guest",
            "iface": "guest0",
            "address": "10.99.0.1",
            "prefix": 24,
        },
        {
            "type": "simple",
            "name": "roadwarrior",
            "iface": "wg0",
            "address": "10.8.0.1",
            "prefix": 24,
        },
    ],
    "routes": [{"dest": "10.20.0.0", "prefix": 16, "iface": "br-lan", "gateway": "192.168.50.2"}],
    "routes6": [{"dest": "fd99::", "prefix": 48, "iface": "br-lan"}],
}
PRESENT = frozenset({"wan0", "lan0", "guest0"})
WAN_LEASE = Lease("203.0.113.150", 24, "203.0.113.1")


def make_config(edit: Any = None, base: dict[str, Any] | None = None) -> Config:
    raw = copy.deepcopy(base or COOKBOOK_NETWORKS)
    if edit is not None:
        edit(raw)
    return msgspec.convert(raw, Config)


def facts(**kw: Any) -> NetFacts:
    kw.setdefault("present_links", PRESENT)
    kw.setdefault("leases", {"wan": WAN_LEASE})
    return NetFacts(**kw)


def test_cookbook_links_addresses_routes_sysctls() -> None:
    state = desired(make_config(), facts())
    assert state.hostname == "homelab-gw"
    assert state.links["br-lan"].kind == "bridge" and state.links["br-lan"].created
    assert state.links["lan0"].master == "br-lan" and state.links["lan0"].kind == "device"
    assert state.links["wan0"].master is None and not state.links["wan0"].created
    assert state.links["lo"].up
    assert state.addrs == {
        Addr("br-lan", "192.168.50.1/24"),
        Addr("br-lan", "fd7a:5c3e:9b21::1/64"),
        Addr("guest0", "10.99.0.1/24"),
        Addr("wan0", "203.0.113.150/24"),
    }
    assert set(state.routes.values()) == {
        Route(dest="0.0.0.0/0", link="wan0", gateway="203.0.113.1"),
        Route(dest="10.20.0.0/16", link="br-lan", gateway="192.168.50.2", metric=1024),
        Route(dest="fd99::/48", link="br-lan", metric=1024),
    }
    assert state.sysctls == {
        IP_FORWARD: "1",
        IPV6_FORWARDING: "1",
        "net/ipv6/conf/wan0/accept_ra": "2",
    }
    assert state.origin(("addr", Addr("guest0", "10.99.0.1/24"))) == (
        'networks[2] (name "guest").address'
    )
    assert state.origin(("route", (4, 254, "10.20.0.0/16", 1024))) == "routes[0]"


def test_simple_network_without_vlan_gets_its_address_once_its_iface_exists() -> None:
    # the reference assigns no IPv4 address here (§5 item 3)
    without = desired(make_config(), facts())
    assert "wg0" not in without.links
    assert not any(a.link == "wg0" for a in without.addrs)
    with_wg = desired(make_config(), facts(present_links=PRESENT | {"wg0"}))
    assert Addr("wg0", "10.8.0.1/24") in with_wg.addrs
    assert with_wg.links["wg0"].kind == "device"


def test_vlan_network_is_a_created_vlan_link_on_its_parent() -> None:
    def add_iot(raw: dict[str, Any]) -> None:
        raw["networks"].append(
            {
                "type": "simple",
                "name": "iot",
                "iface": "iot0",
                "address": "192.168.30.1",
                "prefix": 24,
                "vlan": 30,
                "vlan_parent": "lan0",
            }
        )

    state = desired(make_config(add_iot), facts())
    iot = state.links["iot0"]
    assert (iot.kind, iot.vlan_parent, iot.vlan_id, iot.created) == ("vlan", "lan0", 30, True)
    assert Addr("iot0", "192.168.30.1/24") in state.addrs
    assert state.origin(("link", "iot0")) == 'networks[4] (name "iot").vlan'


def test_no_lease_no_wan_address_and_no_default_route() -> None:
    state = desired(make_config(), facts(leases={}))
    assert not any(a.link == "wan0" for a in state.addrs)
    assert not any(r.dest == "0.0.0.0/0" for r in state.routes.values())


def test_static_wan_address_and_default_route_come_from_the_config() -> None:
    def static(raw: dict[str, Any]) -> None:
        raw["networks"][0] = {
            "type": "wan",
            "name": "wan",
            "iface": "wan0",
            "mode": "static",
            "address": "203.0.113.10",
            "prefix": 29,
            "gateway": "203.0.113.9",
        }

    state = desired(make_config(static), facts(leases={}))
    assert Addr("wan0", "203.0.113.10/29") in state.addrs
    default = state.routes[(4, 254, "0.0.0.0/0", 0)]
    assert (default.gateway, default.link) == ("203.0.113.9", "wan0")
    assert state.origin(("route", default.key)) == 'networks[0] (name "wan").gateway'


def test_default_route_follows_the_active_wan_then_priority() -> None:
    def two_wans(raw: dict[str, Any]) -> None:
        raw["networks"].append(
            {"type": "wan", "name": "lte", "iface": "wwan0", "mode": "dhcp", "priority": 50}
        )

    leases = {"wan": WAN_LEASE, "lte": Lease("198.51.100.7", 24, "198.51.100.1")}
    by_priority = desired(make_config(two_wans), facts(leases=leases))
    assert by_priority.routes[(4, 254, "0.0.0.0/0", 0)].link == "wwan0"
    failed_over = desired(make_config(two_wans), facts(leases=leases, active_wan="wan"))
    assert failed_over.routes[(4, 254, "0.0.0.0/0", 0)].link == "wan0"


def test_delegated_prefix_gives_each_subnet_id_a_slash_64() -> None:
    state = desired(make_config(), facts(delegated_prefix="2001:db8:aa00::/56"))
    assert Addr("br-lan", "2001:db8:aa00:1::1/64") in state.addrs


def test_vlan_filtering_ports_get_pvid_and_tagged_vlans() -> None:
    def vlans(raw: dict[str, Any]) -> None:
        lan = raw["networks"][1]
        lan["vlan_filtering"] = True
        lan["vlan_ports"] = [{"iface": "lan0", "pvid": 10, "tagged": [30, 40]}]

    state = desired(make_config(vlans), facts())
    assert state.links["br-lan"].vlan_filtering
    assert state.links["lan0"].port_vlans == (
        PortVlan(10, pvid=True, untagged=True),
        PortVlan(30),
        PortVlan(40),
    )


def test_mac_override_is_normalised_and_bad_macs_name_their_path() -> None:
    def mac(value: str) -> Any:
        def edit(raw: dict[str, Any]) -> None:
            raw["networks"][0]["mac_address"] = value

        return edit

    assert desired(make_config(mac("02-AA-bb-CC-dd-EE")), facts()).links["wan0"].mac == (
        "02:aa:bb:cc:dd:ee"
    )
    with pytest.raises(NetConfigError, match=r'networks\[0\] \(name "wan"\)\.mac_address: .*MAC'):
        desired(make_config(mac("02:aa:bb")), facts())
    with pytest.raises(NetConfigError, match="multicast"):
        desired(make_config(mac("01:00:5e:00:00:01")), facts())


def test_ipv6_route_metric_zero_is_asked_as_the_kernels_1024() -> None:
    def metric0(raw: dict[str, Any]) -> None:
        raw["routes6"][0]["metric"] = 0

    state = desired(make_config(metric0), facts())
    assert (6, 254, "fd99::/48", 1024) in state.routes
