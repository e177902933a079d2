"""dnsmasq.conf rendering (pure tier): the cookbook's golden text, then one behaviour per test.
The lab tier (tests/lab/test_dhcp.py) runs the same text under a real dnsmasq with real clients."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxwrtd.core.render_dnsmasq import DnsmasqOptions, Rendered, dnsmasq_argv, render
from schema.config import Config
from schema.load import load_text
from tests.conftest import COOKBOOK_DIR

COOKBOOK_GOLDEN = """\
# dnsmasq.conf rendered by oxwrtd from oxwrt.toml ([dns], [dhcp], [[networks]]).
# Do not edit: every reload rewrites it.
bind-dynamic
except-interface=wan0
pid-file

# DNS: a caching forwarder for the LAN.
port=53
no-resolv
domain-needed
bogus-priv
server=9.9.9.9#53
server=1.1.1.1#53

# DHCP: [dhcp].network with its own settings, every other LAN/simple network with
# the automatic pool .100-.250 and the router as gateway and DNS.
dhcp-leasefile=/var/lib/misc/dnsmasq.leases
dhcp-authoritative
dhcp-lease-max=1000
# roadwarrior: wg0 is a WireGuard tunnel (no broadcast, no DHCP).
# lan (br-lan) = [dhcp].network
dhcp-range=set:lan,192.168.50.100,192.168.50.250,255.255.255.0,43200
dhcp-option=tag:lan,option:router,192.168.50.1
dhcp-option=tag:lan,option:dns-server,192.168.50.1
# guest (guest0)
dhcp-range=set:guest,10.99.0.100,10.99.0.250,255.255.255.0,43200
dhcp-option=tag:guest,option:router,10.99.0.1
dhcp-option=tag:guest,option:dns-server,10.99.0.1

# Listen only on the router's own LAN/simple addresses.
listen-address=192.168.50.1
listen-address=10.99.0.1
"""


def _cookbook() -> Config:
    return load_text(
        (COOKBOOK_DIR / "oxwrt.toml").read_text(),
        (COOKBOOK_DIR / "oxwrt.secrets.toml.example").read_text(),
    ).raise_for_issues()


def test_cookbook_golden() -> None:
    rendered = render(_cookbook())
    assert rendered.text == COOKBOOK_GOLDEN
    assert rendered.warnings == ()
    assert [(p.network, p.start, p.end, p.primary) for p in rendered.pools] == [
        ("lan", "192.168.50.100", "192.168.50.250", True),
        ("guest", "10.99.0.100", "10.99.0.250", False),
    ]
    assert render(_cookbook()).text == rendered.text  # same config, same bytes


def test_argv_is_the_cookbook_service_entrypoint() -> None:
    service = next(s for s in _cookbook().services if s.name == "dnsmasq")
    assert dnsmasq_argv("/run/dnsmasq/dnsmasq.conf") == service.entrypoint


def test_options_set_state_paths_and_user() -> None:
    opts = DnsmasqOptions(lease_file="/tmp/l", pid_file="/tmp/p", user="root")
    lines = render(_cookbook(), opts).text.splitlines()
    assert "dhcp-leasefile=/tmp/l" in lines
    assert "pid-file=/tmp/p" in lines
    assert "user=root" in lines
    assert "pid-file" not in lines


BASE = """
hostname = "gw"
[control]
listen = ["[::1]:51820"]
[[networks]]
name = "wan"
type = "wan"
iface = "wan0"
mode = "static"
address = "203.0.113.10"
prefix = 29
gateway = "203.0.113.9"
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.1.1"
prefix = 24
[[networks]]
name = "iot"
type = "simple"
iface = "eth2"
address = "10.30.0.1"
prefix = 24
"""


def _render(extra: str, options: DnsmasqOptions | None = None) -> Rendered:
    loaded = load_text(BASE + extra)
    return render(loaded.raise_for_issues(), options)


def _lines(rendered: Rendered, prefix: str) -> list[str]:
    return [line for line in rendered.text.splitlines() if line.startswith(prefix)]


def _warnings(rendered: Rendered) -> list[tuple[tuple[str | int, ...], str]]:
    return [(w.path, w.message) for w in rendered.warnings]


DNS = """
[dns]
listen_port = 53
listen_v4 = ["192.168.1.1", "10.30.0.1"]
"""


# ---------------------------------------------------------------- DNS


def test_encrypted_upstreams_are_left_out_with_a_warning_never_sent_in_clear() -> None:
    rendered = _render(
        DNS
        + """
[[dns.upstreams]]
ip = "9.9.9.9"
protocol = "https"
server_name = "dns.quad9.net"
[[dns.upstreams]]
ip = "1.1.1.1"
protocol = "tls"
server_name = "cloudflare-dns.com"
[[dns.upstreams]]
ip = "192.0.2.53"
protocol = "udp"
"""
    )
    assert _lines(rendered, "server=") == ["server=192.0.2.53#53"]
    assert rendered.upstreams == ("192.0.2.53#53",)
    assert "9.9.9.9" not in "\n".join(_lines(rendered, "server"))
    assert any("9.9.9.9 (https) left out" in line for line in rendered.text.splitlines())
    paths = [path for path, _ in _warnings(rendered)]
    assert paths == [("dns", "upstreams", 0, "protocol"), ("dns", "upstreams", 1, "protocol")]
    assert 'cannot forward over "https"' in _warnings(rendered)[0][1]


def test_only_encrypted_upstreams_warns_that_nothing_is_forwarded() -> None:
    rendered = _render(
        DNS
        + """
[[dns.upstreams]]
ip = "9.9.9.9"
protocol = "quic"
server_name = "dns.quad9.net"
"""
    )
    assert _lines(rendered, "server=") == []
    assert (("dns", "upstreams"), "no upstream dnsmasq can use: only local names resolve") in (
        _warnings(rendered)
    )


def test_udp_tcp_ports_and_ipv6_upstreams() -> None:
    rendered = _render(
        DNS
        + """
[[dns.upstreams]]
ip = "10.53.0.2"
protocol = "udp"
port = 5353
[[dns.upstreams]]
ip = "2620:fe::fe"
protocol = "tcp"
"""
    )
    assert _lines(rendered, "server=") == ["server=10.53.0.2#5353", "server=2620:fe::fe#53"]
    assert rendered.warnings == ()


def test_lease_dns_is_used_only_when_no_upstream_is_configured() -> None:
    opts = DnsmasqOptions(lease_dns=("203.0.113.53", "203.0.113.54"))
    rendered = _render(DNS, opts)
    assert _lines(rendered, "server=") == ["server=203.0.113.53#53", "server=203.0.113.54#53"]
    with_upstream = _render(DNS + '[[dns.upstreams]]\nip = "192.0.2.53"\nprotocol = "udp"\n', opts)
    assert _lines(with_upstream, "server=") == ["server=192.0.2.53#53"]
    assert _lines(_render(DNS), "server=") == []


def test_listen_only_on_lan_and_simple_addresses_never_the_wan() -> None:
    rendered = _render(
        """
[dns]
listen_port = 53
listen_v4 = ["203.0.113.10", "192.168.1.1", "192.0.2.99"]
"""
    )
    assert _lines(rendered, "listen-address=") == ["listen-address=192.168.1.1"]
    assert "except-interface=wan0" in rendered.text.splitlines()
    assert [path for path, _ in _warnings(rendered)] == [
        ("dns", "listen_v4", 0),
        ("dns", "listen_v4", 2),
    ]
    assert "never listens on a WAN" in _warnings(rendered)[0][1]


def test_wildcard_listen_means_every_lan_and_simple_address() -> None:
    rendered = _render('[dns]\nlisten_port = 53\nlisten_v4 = ["0.0.0.0"]\n')
    assert rendered.listen == ("192.168.1.1", "10.30.0.1")
    assert "listen-address=0.0.0.0" not in rendered.text


def test_no_dns_section_serves_dhcp_only() -> None:
    rendered = _render('[dhcp]\nnetwork = "lan"\n')
    assert "port=0" in rendered.text.splitlines()
    assert _lines(rendered, "dhcp-option=tag:lan,option:dns-server") == [
        "dhcp-option=tag:lan,option:dns-server"  # empty: no option 6 rather than a dead server
    ]
    assert rendered.listen == ("192.168.1.1", "10.30.0.1")  # DHCP needs the sockets
    off = "gets no DNS server by DHCP: the router's DNS is off (no [dns])"
    assert _warnings(rendered) == [
        (("dhcp", "dns_servers"), f"lan {off}"),
        (("dns",), f"iot {off}"),
    ]


def test_no_dhcp_section_serves_no_addresses() -> None:
    rendered = _render(DNS)
    assert _lines(rendered, "dhcp-") == []
    assert rendered.pools == ()


# ---------------------------------------------------------------- DHCP


def test_primary_takes_its_settings_and_every_other_network_gets_the_auto_pool() -> None:
    rendered = _render(
        DNS
        + """
[dhcp]
network = "lan"
lease_time = "1h30m"
pool_start = "192.168.1.20"
pool_end = "192.168.1.60"
gateway = "192.168.1.254"
dns_servers = ["192.168.1.2", "192.168.1.3"]
"""
    )
    assert _lines(rendered, "dhcp-range=") == [
        "dhcp-range=set:lan,192.168.1.20,192.168.1.60,255.255.255.0,5400",
        "dhcp-range=set:iot,10.30.0.100,10.30.0.250,255.255.255.0,5400",
    ]
    assert _lines(rendered, "dhcp-option=") == [
        "dhcp-option=tag:lan,option:router,192.168.1.254",
        "dhcp-option=tag:lan,option:dns-server,192.168.1.2,192.168.1.3",
        "dhcp-option=tag:iot,option:router,10.30.0.1",
        "dhcp-option=tag:iot,option:dns-server,10.30.0.1",
    ]
    assert rendered.warnings == ()


def test_a_network_dns_does_not_answer_on_gets_no_dns_option() -> None:
    rendered = _render(
        '[dns]\nlisten_port = 53\nlisten_v4 = ["192.168.1.1"]\n[dhcp]\nnetwork = "lan"\n'
    )
    assert "dhcp-option=tag:iot,option:dns-server" in rendered.text.splitlines()
    assert _warnings(rendered) == [
        (
            ("dns", "listen_v4"),
            "iot gets no DNS server by DHCP: the router's DNS does not answer on 10.30.0.1",
        )
    ]
    # DHCP on iot still needs dnsmasq's socket there; the file says DNS answers there too.
    note = "# 10.30.0.1: for DHCP; dnsmasq then answers DNS here too\n"
    assert f"{note}listen-address=10.30.0.1\n" in rendered.text


def test_dns_on_another_port_than_53_is_flagged_for_dhcp_clients() -> None:
    rendered = _render('[dns]\nlisten_v4 = ["192.168.1.1", "10.30.0.1"]\n[dhcp]\nnetwork = "lan"\n')
    assert "port=15353" in rendered.text.splitlines()  # the reference's default port
    assert [path for path, _ in _warnings(rendered)] == [("dns", "listen_port")] * 2


def test_short_lease_time_warns() -> None:
    rendered = _render(DNS + '[dhcp]\nnetwork = "lan"\nlease_time = "60s"\n')
    assert ("dhcp", "lease_time") in [path for path, _ in _warnings(rendered)]
    assert _lines(rendered, "dhcp-range=set:lan")[0].endswith(",60")


def test_explicit_pool_holding_the_router_address_warns() -> None:
    pool = '[dhcp]\nnetwork = "lan"\npool_start = "192.168.1.1"\npool_end = "192.168.1.9"\n'
    rendered = _render(DNS + pool)
    assert [path for path, _ in _warnings(rendered)] == [("dhcp", "pool_start")]


def test_wireguard_and_vpn_client_links_get_no_dhcp() -> None:
    extra = """
[[networks]]
name = "vpn"
type = "simple"
iface = "wg0"
address = "10.8.0.1"
prefix = 24
[[networks]]
name = "out"
type = "simple"
iface = "wgc0"
address = "10.64.0.1"
prefix = 24
[[wireguard]]
name = "wg0"
listen_port = 51821
[[vpn_client]]
name = "provider"
iface = "wgc0"
address = "10.64.0.2/32"
probe_target = "10.64.0.1"
endpoint = "198.51.100.7:51820"
public_key = "dnBuLXByb3ZpZGVyLXB1YmxpYy1rZXktZ29lcy1pbiE="
[dhcp]
network = "lan"
"""
    rendered = _render(DNS + extra)
    assert [p.network for p in rendered.pools] == ["lan", "iot"]
    assert "# vpn: wg0 is a WireGuard tunnel (no broadcast, no DHCP)." in rendered.text
    assert "# out: wgc0 is a WireGuard tunnel (no broadcast, no DHCP)." in rendered.text


@pytest.mark.parametrize(
    ("address", "prefix", "pool"),
    [
        ("10.1.0.1", 16, ("10.1.0.100", "10.1.0.250")),
        ("10.1.0.200", 24, ("10.1.0.100", "10.1.0.199")),  # router inside: the larger side
        ("10.1.0.120", 24, ("10.1.0.121", "10.1.0.250")),
        ("10.1.0.1", 25, ("10.1.0.100", "10.1.0.126")),  # clamped below the broadcast
        ("10.1.0.1", 28, ("10.1.0.2", "10.1.0.14")),  # no room above .100: hosts after router
        ("10.1.0.14", 28, ("10.1.0.1", "10.1.0.13")),
        ("10.1.0.1", 30, ("10.1.0.2", "10.1.0.2")),
    ],
)
def test_auto_pool_shapes(address: str, prefix: int, pool: tuple[str, str]) -> None:
    extra = f'[[networks]]\nname = "x"\ntype = "simple"\niface = "x0"\naddress = "{address}"\n'
    rendered = _render(DNS + extra + f'prefix = {prefix}\n[dhcp]\nnetwork = "lan"\n')
    served = {p.network: (p.start, p.end) for p in rendered.pools}
    assert served["x"] == pool


def test_subnets_too_small_for_a_pool_are_skipped_with_a_warning() -> None:
    extra = '[[networks]]\nname = "p2p"\ntype = "simple"\niface = "x0"\naddress = "10.1.0.1"\n'
    rendered = _render(DNS + extra + 'prefix = 31\n[dhcp]\nnetwork = "lan"\n')
    assert [p.network for p in rendered.pools] == ["lan", "iot"]
    assert "# p2p: /31 is too small for a DHCP pool." in rendered.text
    assert ("networks", 3) in [path for path, _ in _warnings(rendered)]


def test_tags_are_bare_words_and_unique() -> None:
    extra = """
[[networks]]
name = "guest wifi"
type = "simple"
iface = "g0"
address = "10.50.0.1"
prefix = 24
[[networks]]
name = "iot-3"
type = "simple"
iface = "g1"
address = "10.51.0.1"
prefix = 24
[dhcp]
network = "lan"
"""
    rendered = _render('[dns]\nlisten_port = 53\nlisten_v4 = ["0.0.0.0"]\n' + extra)
    assert [p.tag for p in rendered.pools] == ["lan", "iot", "net3", "iot-3"]


def test_lease_max_covers_large_pools() -> None:
    extra = '[dhcp]\nnetwork = "lan"\npool_start = "10.0.0.10"\npool_end = "10.0.19.255"\n'
    big = BASE.replace('address = "192.168.1.1"\nprefix = 24', 'address = "10.0.0.1"\nprefix = 16')
    rendered = render(
        load_text(big + DNS.replace("192.168.1.1", "10.0.0.1") + extra).raise_for_issues()
    )
    assert "dhcp-lease-max=5261" in rendered.text.splitlines()  # 5,110 (lan) + 151 (iot)


@settings(max_examples=150, deadline=None)
@given(prefix=st.integers(min_value=8, max_value=30), offset=st.integers(min_value=1))
def test_auto_pool_stays_in_usable_hosts_and_clear_of_the_router(prefix: int, offset: int) -> None:
    subnet = ipaddress.IPv4Network(f"10.0.0.0/{prefix}")
    router = subnet.network_address + 1 + offset % (subnet.num_addresses - 2)
    extra = f'[[networks]]\nname = "x"\ntype = "simple"\niface = "x0"\naddress = "{router}"\n'
    rendered = _render(DNS + extra + f'prefix = {prefix}\n[dhcp]\nnetwork = "lan"\n')
    pool = next(p for p in rendered.pools if p.network == "x")
    start, end = ipaddress.IPv4Address(pool.start), ipaddress.IPv4Address(pool.end)
    assert subnet.network_address < start <= end < subnet.broadcast_address
    assert not start <= router <= end
    assert pool.netmask == str(subnet.netmask)
    assert str(router) in rendered.listen
    assert "203.0.113.10" not in rendered.listen  # the WAN's address, never
