"""The WAN and access-point parts of `status`, from a config and the journal's facts."""

from __future__ import annotations

from oxwrtd.core import render_hostapd
from oxwrtd.core.state import Lease, Probe
from oxwrtd.core.status_view import access_points, wan_view
from schema import wire
from schema.config import Config
from schema.load import load_text

NOW = 1_800_000_000.0
TWO_WANS = """
hostname = "r1"
[[networks]]
name = "fiber"
type = "wan"
iface = "wan0"
mode = "dhcp"
[[networks]]
name = "backup"
type = "wan"
iface = "wan1"
mode = "static"
address = "198.51.100.2"
prefix = 30
gateway = "198.51.100.1"
priority = 200
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"
prefix = 24
[control]
listen = ["192.168.50.1:51820"]
"""
RADIOS = """
[[radios]]
phy = "phy0"
band = "2g"
channel = 6
[[radios]]
phy = "phy1"
band = "5g"
channel = 36
[[radios]]
phy = "phy2"
band = "5g"
channel = 149
disabled = true
[[wifi]]
radio = "phy1"
ssid = "home"
network = "lan"
security = "open"
[[wifi]]
radio = "phy0"
ssid = "home-2g"
network = "lan"
security = "open"
[[wifi]]
radio = "phy1"
ssid = "iot"
network = "lan"
security = "open"
[[wifi]]
radio = "phy2"
ssid = "off"
network = "lan"
security = "open"
"""


def config(extra: str = "") -> Config:
    loaded = load_text(TWO_WANS + extra)
    assert loaded.config is not None, [str(i) for i in loaded.issues]
    return loaded.config


def lease(expires: float = NOW + 3000) -> dict[str, Lease]:
    row = Lease(interface="wan0", address="203.0.113.7/24", at=NOW - 600, gateway="203.0.113.1",
                expires=expires)  # fmt: skip
    return {"wan0": row}


def test_the_leased_best_priority_wan_is_active_and_its_lease_is_the_summary():
    view = wan_view(config(), lease(), {}, NOW)
    assert view.active == "fiber"
    assert view.summary == wire.WanSummary(
        address="203.0.113.7", prefix=24, gateway="203.0.113.1", lease_seconds=3600
    )
    assert [(e.name, e.active, e.healthy, e.address, e.gateway) for e in view.entries] == [
        ("fiber", True, True, "203.0.113.7/24", "203.0.113.1"),
        ("backup", False, True, "198.51.100.2/30", "198.51.100.1"),
    ]


def test_without_a_lease_or_with_an_expired_one_the_static_wan_takes_over():
    for leases in ({}, lease(expires=NOW - 1)):
        view = wan_view(config(), leases, {}, NOW)
        assert view.active == "backup"
        assert view.summary == wire.WanSummary(
            address="198.51.100.2", prefix=30, gateway="198.51.100.1"
        )
        fiber = view.entries[0]
        assert (fiber.active, fiber.healthy, fiber.address) == (False, False, None)


def test_a_failing_gateway_probe_marks_only_the_active_wan_unhealthy():
    probes = {"wan-gateway": Probe(target="wan-gateway", ok=False, at=NOW, failures=3)}
    view = wan_view(config(), lease(), probes, NOW)
    assert [(e.name, e.healthy) for e in view.entries] == [("fiber", False), ("backup", True)]
    assert view.active == "fiber"  # failover is not built: the route stays where it is


def test_no_wan_at_all_is_no_summary():
    text = TWO_WANS[: TWO_WANS.index("[[networks]]")] + TWO_WANS[TWO_WANS.index('name = "lan"') :]
    lan_only = load_text(text.replace('name = "lan"', '[[networks]]\nname = "lan"', 1)).config
    assert lan_only is not None
    view = wan_view(lan_only, {}, {}, NOW)
    assert (view.summary, view.active, view.entries) == (None, None, [])


def test_access_points_are_the_interfaces_hostapd_is_given():
    cfg = config(RADIOS)
    aps = access_points(cfg, {"phy1-ap0": "up", "phy0-ap0": "down"})
    assert [(a.ssid, a.iface, a.radio_phy, a.band, a.channel, a.operstate) for a in aps] == [
        ("home-2g", "phy0-ap0", "phy0", "2g", 6, "down"),
        ("home", "phy1-ap0", "phy1", "5g", 36, "up"),
        ("iot", "phy1-ap1", "phy1", "5g", 36, "absent"),
    ]  # phy2 is disabled: no file, no interface
    # the same names the rendered hostapd files use
    texts = render_hostapd.files(render_hostapd.render(cfg))
    written = {line.split("=", 1)[1] for text in texts.values() for line in text.splitlines()
               if line.startswith(("interface=", "bss="))}  # fmt: skip
    assert written == {a.iface for a in aps}
