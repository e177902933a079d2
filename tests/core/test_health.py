"""The [health] section (validation with paths) and core/health.py: which probes run against a
config, when a round is due, and when a round asks for a revert. Manual clock throughout."""

from __future__ import annotations

import pytest

from oxwrtd.core.health import ProbeSpec, Watch, report, resolver, specs, watch
from oxwrtd.core.state import Lease
from schema.config import Config, Health
from schema.events import HealthProbed
from schema.load import load_text

BASE = """
hostname = "r1"
[[networks]]
name = "wan"
type = "wan"
iface = "wan0"
mode = "dhcp"
[[networks]]
name = "wan2"
type = "wan"
iface = "wan1"
mode = "static"
address = "203.0.113.2"
prefix = 24
gateway = "203.0.113.1"
priority = 200
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"
prefix = 24
[control]
listen = ["192.168.50.1:51820"]
[dns]
listen_port = 5353
"""


def load(health: str = "", base: str = BASE) -> Config:
    loaded = load_text(base + ("\n[health]\n" + health if health else ""))
    assert loaded.ok, [str(i) for i in loaded.issues]
    assert loaded.config is not None
    return loaded.config


def issues(health: str, base: str = BASE) -> list[str]:
    return [str(i) for i in load_text(base + "\n[health]\n" + health).issues]


# ---------------------------------------------------------------- the [health] section


def test_no_health_section_means_no_probes_and_no_drift_checks() -> None:
    config = load()
    assert config.health == Health() and config.health.probes == []
    assert config.health.drift_check_s == 0
    assert watch(config.health, 2, "reload", 1, 100.0) is None


def test_every_probe_kind_validates() -> None:
    config = load(
        'probes = ["kernel", "control", "wan-gateway", "dns:example.com", "ping:198.51.100.80",'
        ' "ping:2001:db8::1"]\n'
    )
    assert len(config.health.probes) == 6


@pytest.mark.parametrize(
    ("health", "path", "words"),
    [
        ('probes = ["kernal"]', "health.probes[0]", ['unknown probe "kernal"', "kernel"]),
        ('probes = ["pong:1.2.3.4"]', "health.probes[0]", ["dns:NAME or ping:ADDR"]),
        ('probes = ["ping:example.com"]', "health.probes[0]", ["not an IP address"]),
        ('probes = ["dns:bad..name"]', "health.probes[0]", ["not a DNS name"]),
        ('probes = ["dns:-x.com"]', "health.probes[0]", ["not a DNS name"]),
        ('probes = ["services"]', "health.probes[0]", ["no [[services]]"]),
        ('probes = ["kernel", "kernel"]', "health.probes[1]", ['duplicate probe "kernel"']),
        ('probes = ["kernel"]\ninterval_s = 0', "health.interval_s", ["at least 1"]),
        ('probes = ["kernel"]\nfailures_to_revert = 0', "health.failures_to_revert", ["least 1"]),
        ("window_s = 90000", "health.window_s", ["more than 86400"]),
        (
            'probes = ["kernel"]\nwindow_s = 25\ninterval_s = 10\nfailures_to_revert = 3',
            "health.window_s",
            ["3 x 10 s", "never revert"],
        ),
        ("monitor_s = 60", "health.monitor_s", ["probes is empty"]),
        ("probe = []", "health.probe", ["probe"]),
        ("interval_s = -1", "health.interval_s", []),
    ],
)
def test_bad_health_entries_name_the_key(health: str, path: str, words: list[str]) -> None:
    found = issues(health)
    assert len(found) == 1, found
    assert path in found[0], found
    for word in words:
        assert word in found[0], found


def test_probes_that_need_a_section_say_which() -> None:
    lan_only = """
hostname = "r1"
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"
prefix = 24
[control]
listen = ["192.168.50.1:51820"]
"""
    found = issues('probes = ["wan-gateway", "dns:example.com"]', base=lan_only)
    assert any("health.probes[0]" in f and "needs a WAN" in f for f in found), found
    assert any("health.probes[1]" in f and "add a [dns] section" in f for f in found), found


# ---------------------------------------------------------------- what each probe targets


def test_specs_resolve_targets_from_the_config_and_the_leases() -> None:
    config = load(
        'probes = ["kernel", "control", "wan-gateway", "dns:example.com", "ping:10.0.0.9"]'
    )
    leases = {
        "wan0": Lease(interface="wan0", address="100.64.0.5/24", at=1.0, gateway="100.64.0.1")
    }
    got = {s.target: s for s in specs(config, leases)}
    assert got["kernel"] == ProbeSpec(target="kernel", kind="kernel")
    assert got["control"].expect == ("192.168.50.1:51820",)
    # the DHCP WAN has priority 100 and a lease: its gateway, through its link
    assert (got["wan-gateway"].address, got["wan-gateway"].iface) == ("100.64.0.1", "wan0")
    # [dns] listens on 0.0.0.0 = every LAN address; the resolver never answers on a WAN
    dns = got["dns:example.com"]
    assert (dns.name, dns.address, dns.port, dns.problem) == (
        "example.com",
        "192.168.50.1",
        5353,
        "",
    )
    assert got["ping:10.0.0.9"].address == "10.0.0.9" and got["ping:10.0.0.9"].kind == "ping"


def test_without_a_lease_the_static_wan_is_the_active_one() -> None:
    config = load('probes = ["wan-gateway"]')
    (spec,) = specs(config, {})
    assert (spec.address, spec.iface, spec.problem) == ("203.0.113.1", "wan1", "")


def test_no_gateway_at_all_is_a_failing_probe_with_the_reason() -> None:
    base = BASE.replace(
        'mode = "static"\naddress = "203.0.113.2"\nprefix = 24\ngateway = "203.0.113.1"',
        'mode = "dhcp"',
    )
    (spec,) = specs(load('probes = ["wan-gateway"]', base=base), {})
    assert spec.problem.startswith("no WAN has a gateway yet") and "wan (wan0)" in spec.problem


def test_resolver_prefers_an_explicit_listen_address() -> None:
    config = load(base=BASE.replace("listen_port = 5353", 'listen_v4 = ["192.168.50.1"]'))
    assert resolver(config) == ("192.168.50.1", 15353)
    assert resolver(load(base=BASE.replace("[dns]\nlisten_port = 5353", ""))) is None


# ---------------------------------------------------------------- the schedule


def results(**ok: bool) -> list[HealthProbed]:
    return [HealthProbed(target=t, ok=v, detail="" if v else "down") for t, v in ok.items()]


HEALTH = Health(probes=["kernel", "ping:10.0.0.9"], window_s=30, interval_s=10)


def test_rounds_run_every_interval_inside_the_window_then_stop() -> None:
    w = watch(HEALTH, 2, "reload", 1, 100.0)
    assert w is not None and w.due == 110.0 and w.window_end == 130.0 and w.fallback == 1
    dues = []
    while w.due is not None:
        dues.append(w.due)
        w, request = report(w, results(kernel=True))
        assert request.revert_to is None
    assert dues == [110.0, 120.0, 130.0]


def test_after_the_window_monitoring_rounds_only_record() -> None:
    health = Health(probes=["kernel"], window_s=20, interval_s=10, monitor_s=60)
    w = watch(health, 2, "reload", 1, 0.0)
    assert w is not None
    w, _ = report(w, results(kernel=True))  # due 10
    w, _ = report(w, results(kernel=True))  # due 20: the last round inside the window
    assert w.due == 80.0
    w, request = report(w, results(kernel=False))
    assert request.revert_to is None and w.due == 140.0
    assert [r.ok for r in request.results] == [False]


def test_a_failure_inside_the_window_asks_for_the_fallback() -> None:
    w = watch(HEALTH, 2, "reload", 1, 100.0)
    assert w is not None
    w, request = report(w, results(kernel=True, **{"ping:10.0.0.9": False}))
    assert request.revision == 2 and request.revert_to == 1
    assert "ping:10.0.0.9 failed 1 round(s) in a row: down" in request.reason


def test_failures_to_revert_counts_consecutive_rounds_per_probe() -> None:
    health = Health(probes=["kernel", "control"], window_s=60, interval_s=10, failures_to_revert=2)
    w: Watch | None = watch(health, 5, "rollback", 4, 0.0)
    assert w is not None
    w, r1 = report(w, results(kernel=False, control=True))
    w, r2 = report(w, results(kernel=True, control=False))  # kernel recovered: streak reset
    w, r3 = report(w, results(kernel=True, control=False))
    assert (r1.revert_to, r2.revert_to, r3.revert_to) == (None, None, 4)
    assert r3.reason.startswith("control failed 2 round(s)")


@pytest.mark.parametrize(("why", "fallback"), [("revert", 1), ("boot", 1), ("reload", None)])
def test_a_revert_a_boot_or_nothing_to_go_back_to_is_never_gated(
    why: str, fallback: int | None
) -> None:
    w = watch(HEALTH, 2, why, fallback, 0.0)
    assert w is not None and w.fallback is None
    _, request = report(w, results(kernel=False))
    assert request.revert_to is None and request.results[0].ok is False
