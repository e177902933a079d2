"""The WAN DHCP client's pure half: argv from the WAN config, hook reports into typed leases, the
journal fact, the deadlines, and the NetFacts leases (pure tier)."""

from __future__ import annotations

import json

import msgspec
import pytest

from oxwrtd.core.dhcp_client import (
    ENV_PYTHON,
    ENV_SOCKET,
    HOOK_MOUNT,
    MAX_REPORT_BYTES,
    ClientPaths,
    Deadlines,
    Lease,
    LeaseBound,
    LeaseFailed,
    LeaseLost,
    ReportError,
    acquired,
    client_argv,
    client_env,
    client_service,
    deadlines,
    lease_facts,
    next_expiry,
    parse_event,
    parse_report,
    wan_dns,
)
from oxwrtd.core.net import Lease as NetLease
from oxwrtd.core.state import Lease as LeaseRow
from schema.config import Bind, Config, Wan
from schema.load import load_text

PATHS = ClientPaths(hook="/opt/oxwrt/udhcpc_hook.sh", socket="/run/oxwrt/dhcp.sock")
COOKBOOK_WAN = Wan(name="wan", iface="wan0", mode="dhcp", send_hostname=True, ipv6_pd=True)
# What busybox 1.35 udhcpc exported for a dnsmasq lease in the lab (its own variables only).
BOUND_ENV = {
    "interface": "wan0",
    "ip": "203.0.113.106",
    "mask": "24",
    "subnet": "255.255.255.0",
    "router": "203.0.113.1",
    "dns": "203.0.113.1 203.0.113.2",
    "lease": "3600",
    "serverid": "203.0.113.1",
    "broadcast": "203.0.113.255",
    "opt53": "05",
    "opt58": "00000708",
    "opt59": "00000c4e",
}


# ---------------------------------------------------------------- argv


def test_cookbook_wan_runs_udhcpc_in_the_foreground_with_its_hostname() -> None:
    assert client_argv(COOKBOOK_WAN, "homelab-gw", PATHS) == [
        "/bin/busybox", "udhcpc", "-f", "-i", "wan0", "-s", "/opt/oxwrt/udhcpc_hook.sh",
        "-t", "4", "-T", "3", "-A", "10",
        "-x", "hostname:homelab-gw",
        "-V", "",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "hostname_arg", "vendor_arg"),
    [
        ({"send_hostname": False}, None, ""),
        ({"send_hostname": False, "hostname_override": "x"}, None, ""),
        ({"hostname_override": "customer-4711"}, "hostname:customer-4711", ""),
        ({"hostname_override": "   "}, None, ""),
        ({"vendor_class_id": "homelab-router"}, "hostname:homelab-gw", "homelab-router"),
    ],
)
def test_hostname_and_vendor_class_follow_the_wan_options(
    changes: dict[str, object], hostname_arg: str | None, vendor_arg: str
) -> None:
    argv = client_argv(msgspec.structs.replace(COOKBOOK_WAN, **changes), "homelab-gw", PATHS)
    sent = [argv[i + 1] for i, a in enumerate(argv) if a == "-x"]
    assert sent == ([hostname_arg] if hostname_arg else [])
    assert argv[argv.index("-V") + 1] == vendor_arg
    assert "-R" not in argv  # a stop must not release the ISP's address


def test_empty_hostname_is_not_sent() -> None:
    assert "-x" not in client_argv(COOKBOOK_WAN, " ", PATHS)


@pytest.mark.parametrize("mode", ["static", "pppoe"])
def test_only_dhcp_wans_run_a_client(mode: str) -> None:
    wan = Wan(name="wan", iface="wan0", mode=mode)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f'mode "{mode}"'):
        client_argv(wan, "gw", PATHS)


def test_client_as_a_supervised_service() -> None:
    svc = client_service(COOKBOOK_WAN, "homelab-gw", PATHS)
    assert svc.name == "dhcp-wan"
    # the hook runs from its directory bound at HOOK_MOUNT (the sandbox's /tmp and /run are
    # private, so a checkout there would be hidden)
    hook_dir, _, hook_file = PATHS.hook.rpartition("/")
    inside = msgspec.structs.replace(PATHS, hook=f"{HOOK_MOUNT}/{hook_file}")
    assert svc.entrypoint == client_argv(COOKBOOK_WAN, "homelab-gw", inside)
    assert svc.env == client_env(PATHS) == {ENV_SOCKET: PATHS.socket, ENV_PYTHON: PATHS.python}
    assert svc.net_mode == "host"
    assert svc.binds == [
        Bind(source="/run/oxwrt", target="/run/oxwrt"),
        Bind(source=hook_dir, target=HOOK_MOUNT),
    ]
    assert set(svc.security.caps) == {"NET_RAW", "NET_BIND_SERVICE"}


# ---------------------------------------------------------------- reports


def test_bound_report_becomes_a_typed_lease() -> None:
    report = parse_event("bound", BOUND_ENV)
    assert report == LeaseBound(
        Lease(
            interface="wan0",
            address="203.0.113.106",
            prefix=24,
            gateway="203.0.113.1",
            dns=("203.0.113.1", "203.0.113.2"),
            lease_s=3600,
            renew_s=1800,
            rebind_s=3150,
            server="203.0.113.1",
        )
    )


def test_renew_is_flagged_and_subnet_stands_in_for_a_missing_mask() -> None:
    env = {k: v for k, v in BOUND_ENV.items() if k != "mask"} | {"subnet": "255.255.252.0"}
    report = parse_event("renew", env)
    assert isinstance(report, LeaseBound)
    assert report.renewed
    assert report.lease.prefix == 22


def test_lease_without_mask_router_or_dns_is_a_host_route_lease() -> None:
    env = {"interface": "wan0", "ip": "198.51.100.7", "lease": "600", "domain": " isp.example "}
    report = parse_event("bound", env)
    assert isinstance(report, LeaseBound)
    assert (report.lease.prefix, report.lease.gateway, report.lease.dns) == (32, None, ())
    assert report.lease.domain == "isp.example"


def test_infinite_lease_and_timers() -> None:
    env = BOUND_ENV | {"lease": "4294967295", "opt58": "ffffffff", "opt59": "FFFFFFFF"}
    report = parse_event("bound", env)
    assert isinstance(report, LeaseBound)
    assert (report.lease.lease_s, report.lease.renew_s, report.lease.rebind_s) == (None, None, None)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("deconfig", LeaseLost("wan0")),
        ("leasefail", LeaseFailed("wan0", "leasefail")),
        ("nak", LeaseFailed("wan0", "nak")),
    ],
)
def test_loss_and_failure_reports(event: str, expected: object) -> None:
    assert parse_event(event, {"interface": "wan0"}) == expected


@pytest.mark.parametrize(
    ("event", "changes", "needle"),
    [
        ("bound", {"interface": ""}, "`interface`"),
        ("bound", {"interface": "wan0/../x"}, "`interface`"),
        ("bound", {"interface": "a-very-long-interface-name"}, "`interface`"),
        ("expire", {}, '"expire"'),
        ("bound", {"ip": ""}, "without `ip`"),
        ("bound", {"ip": "203.0.113.256"}, "`ip`"),
        ("bound", {"ip": "0.0.0.0"}, "`ip` 0.0.0.0"),
        ("bound", {"ip": "224.0.0.1"}, "`ip` 224.0.0.1"),
        ("bound", {"mask": "33"}, "`mask`"),
        ("bound", {"mask": "", "subnet": "255.0.255.0"}, "`subnet`"),
        ("bound", {"router": "203.0.113.1 gateway"}, "`router` entry 'gateway'"),
        ("bound", {"dns": "2001:db8::53"}, "`dns` entry"),
        ("bound", {"lease": ""}, "without `lease`"),
        ("bound", {"lease": "-5"}, "`lease`"),
        ("bound", {"lease": "99999999999"}, "`lease`"),
        ("bound", {"opt58": "708"}, "`opt58`"),
        ("bound", {"opt59": "zzzzzzzz"}, "`opt59`"),
        ("bound", {"serverid": "server"}, "`serverid`"),
    ],
)
def test_bad_reports_name_the_variable(event: str, changes: dict[str, str], needle: str) -> None:
    with pytest.raises(ReportError) as err:
        parse_event(event, BOUND_ENV | changes)
    assert needle in str(err.value)


def _datagram(event: str, env: dict[str, str], v: int = 1) -> bytes:
    """What oxwrtd/shell/dhcp_hook.py sends."""
    return json.dumps({"v": v, "event": event, "env": env}).encode()


def test_hook_datagram_round_trip() -> None:
    assert parse_report(_datagram("bound", BOUND_ENV)) == parse_event("bound", BOUND_ENV)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"not json", "not a hook payload"),
        (b'{"v": 1, "event": "bound"}', "not a hook payload"),
        (b'{"v": 1, "event": "bound", "env": {"ip": 5}}', "not a hook payload"),
        (_datagram("bound", BOUND_ENV, v=2), "version 2"),
        (b" " * (MAX_REPORT_BYTES + 1), "exceeds"),
    ],
)
def test_bad_datagrams_are_refused(payload: bytes, needle: str) -> None:
    with pytest.raises(ReportError, match=needle):
        parse_report(payload)


# ---------------------------------------------------------------- fact and deadlines


def _lease(**changes: object) -> Lease:
    report = parse_event("bound", BOUND_ENV)
    assert isinstance(report, LeaseBound)
    return msgspec.structs.replace(report.lease, **changes)


def test_deadlines_use_the_servers_timers() -> None:
    assert deadlines(_lease(), 1000.0) == Deadlines(renew=2800.0, rebind=4150.0, expiry=4600.0)


def test_deadlines_default_to_rfc2131_fractions_and_never_pass_expiry() -> None:
    assert deadlines(_lease(renew_s=None, rebind_s=None), 0.0) == Deadlines(1800.0, 3150.0, 3600.0)
    assert deadlines(_lease(renew_s=9000, rebind_s=9999), 0.0) == Deadlines(3600.0, 3600.0, 3600.0)
    assert deadlines(_lease(lease_s=None), 5.0) == Deadlines(None, None, None)


def test_acquired_is_the_journal_fact_with_prefix_and_expiry() -> None:
    event = acquired(_lease(), 1000.0)
    assert event.interface == "wan0"
    assert event.address == "203.0.113.106/24"
    assert event.gateway == "203.0.113.1"
    assert event.dns == ["203.0.113.1", "203.0.113.2"]
    assert event.expires == 4600.0
    assert acquired(_lease(lease_s=None), 1000.0).expires is None


CONFIG = """
hostname = "gw"
[control]
listen = ["[::1]:51820"]
[[networks]]
name = "isp"
type = "wan"
iface = "wan0"
mode = "dhcp"
[[networks]]
name = "lte"
type = "wan"
iface = "wwan0"
mode = "dhcp"
priority = 200
[[networks]]
name = "fixed"
type = "wan"
iface = "wan1"
mode = "static"
address = "192.0.2.2"
prefix = 30
gateway = "192.0.2.1"
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.1.1"
prefix = 24
"""


def _config() -> Config:
    return load_text(CONFIG).raise_for_issues()


def _row(
    interface: str, address: str, expires: float | None, dns: tuple[str, ...] = ()
) -> LeaseRow:
    return LeaseRow(interface=interface, address=address, at=0.0, gateway="203.0.113.1",
                    dns=list(dns), expires=expires)  # fmt: skip


def test_lease_facts_map_interfaces_to_wan_names_and_drop_expired_leases() -> None:
    rows = {
        "wan0": _row("wan0", "203.0.113.106/24", 100.0),
        "wwan0": _row("wwan0", "10.64.0.9/30", 50.0),  # expired at 50
        "wan1": _row("wan1", "192.0.2.9/30", None),  # a static WAN's address comes from config
        "br-lan": _row("br-lan", "192.168.1.50/24", None),  # not a WAN at all
    }
    assert lease_facts(_config(), rows, now=60.0) == {
        "isp": NetLease("203.0.113.106", 24, "203.0.113.1")
    }
    assert lease_facts(_config(), rows, now=100.0) == {}
    no_prefix = {"wwan0": _row("wwan0", "10.64.0.9", None)}
    assert lease_facts(_config(), no_prefix, now=0.0) == {
        "lte": NetLease("10.64.0.9", 32, "203.0.113.1")
    }


def test_next_expiry_is_the_earliest_future_one() -> None:
    rows = {"a": _row("a", "x/1", 100.0), "b": _row("b", "x/1", 40.0), "c": _row("c", "x/1", None)}
    assert next_expiry(rows, now=10.0) == 40.0
    assert next_expiry(rows, now=40.0) == 100.0
    assert next_expiry(rows, now=100.0) is None


def test_wan_dns_comes_from_the_best_wan_with_an_address() -> None:
    config = _config()  # isp (dhcp, 100) and fixed (static, 100, no dns) before lte (200)
    isp = _row("wan0", "203.0.113.106/24", 100.0, dns=("203.0.113.53",))
    lte = _row("wwan0", "10.64.0.9/30", None, dns=("10.64.0.1",))
    assert wan_dns(config, {"wan0": isp, "wwan0": lte}, now=50.0) == ("203.0.113.53",)
    # isp expired: the static WAN (same priority, later in the file) has an address, no DNS
    assert wan_dns(config, {"wan0": isp, "wwan0": lte}, now=100.0) == ()
    static_dns = CONFIG.replace(
        'gateway = "192.0.2.1"', 'gateway = "192.0.2.1"\ndns = ["192.0.2.53"]'
    )
    with_dns = load_text(static_dns).raise_for_issues()
    assert wan_dns(with_dns, {"wwan0": lte}, now=0.0) == ("192.0.2.53",)
    no_static = CONFIG[: CONFIG.index('[[networks]]\nname = "fixed"')] + "\n"
    lte_only = load_text(no_static).raise_for_issues()
    assert wan_dns(lte_only, {"wwan0": lte}, now=0.0) == ("10.64.0.1",)
    assert wan_dns(lte_only, {}, now=0.0) == ()
