"""oxwrtd with its services for real in the router namespace, on the cookbook (lab tier).

The daemon supervises the cookbook's dnsmasq, chrony and hostapd entries plus a busybox udhcpc
on wan0. The lab's ISP (a dnsmasq in the wan namespace) hands the WAN its lease; the LAN reaches
the "internet" (198.51.100.80) through masquerade; LAN clients lease from the router's dnsmasq.
Operators see it all through `oxctl status/logs/restart`, and the journal records every start
and exit.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oxwrtd.lab import Topology
from oxwrtd.lab_router import LAN_CLIENT, REPO, LabRouter
from tests.lab.test_daemon import v4_addresses, wait_for
from tests.lab.test_topology import alive

ROUTER = "192.168.50.1"
LEASE_TIMEOUT_S = 30.0
# A LAN client's udhcpc hook: the variables of the lease, as JSON, configuring nothing.
CLIENT_HOOK = """#!/bin/sh
[ "$1" = bound ] || exit 0
exec "$PY" -I -S -c 'import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], "w"))' \\
    "$OUT"
"""
FETCH = (
    "import sys, urllib.request as u; "
    "sys.stdout.write(u.urlopen(sys.argv[1], timeout=5).read().decode())"
)
EXTRA_SERVICES = """
[[services]]
name = "sleeper"
rootfs = "/"
entrypoint = ["/bin/sleep", "1000"]
net_mode = "host"

[[services]]
name = "ghost"
rootfs = "/"
entrypoint = ["/usr/sbin/no-such-daemon", "-d"]
net_mode = "host"
"""


@pytest.fixture
def router(lab: Topology) -> Iterator[LabRouter]:
    if shutil.which("busybox") is None:
        pytest.skip("the WAN DHCP client is busybox udhcpc")
    r = LabRouter(lab).start()
    lab.add_address("lan", *LAN_CLIENT)
    try:
        yield r
    finally:
        r.stop()


def status(r: LabRouter) -> dict[str, Any]:
    res = r.oxctl("lan", "--json", ROUTER, "status")
    assert res.returncode == 0, res.stdout + res.stderr
    reply: dict[str, Any] = json.loads(res.stdout)
    return reply


def services(r: LabRouter) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status(r)["services"]}


def pid_of(r: LabRouter, name: str) -> int | None:
    pid = services(r).get(name, {}).get("pid")
    return int(pid) if pid is not None else None


def journal_events(r: LabRouter) -> list[dict[str, Any]]:
    res = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "oxwrtd", "journal", "export",
         str(r.state / "journal")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in res.stdout.splitlines()]


def journaled(r: LabRouter, tag: str, **fields: object) -> bool:
    return any(
        e["tag"] == tag and all(e["event"].get(k) == v for k, v in fields.items())
        for e in journal_events(r)
    )


def wan_address(lab: Topology) -> str | None:
    pool = [ipaddress.IPv4Address(a) for a in lab.wan.pool]
    for cidr in v4_addresses(lab, "wan0"):
        address = ipaddress.IPv4Interface(cidr).ip
        if pool[0] <= address <= pool[1]:
            return str(address)
    return None


def lan_lease(lab: Topology, tmp: Path) -> dict[str, str]:
    hook, out = tmp / "lan-hook.sh", tmp / "lan-lease.json"
    hook.write_text(CLIENT_HOOK)
    hook.chmod(0o755)
    res = subprocess.run(
        lab.command("lan", "busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", str(hook),
                    "-t", "8", "-T", "1"),
        env={**os.environ, "PY": shutil.which("python3") or "python3", "OUT": str(out)},
        capture_output=True, text=True, timeout=LEASE_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lease: dict[str, str] = json.loads(out.read_text())
    return lease


def test_wan_lease_masquerade_lan_dhcp_and_what_the_operator_sees(
    lab: Topology, router: LabRouter, tmp_path: Path
) -> None:
    # The WAN lease arrives from the ISP's DHCP server and the running revision follows it.
    assert wait_for(lambda: wan_address(lab) is not None, LEASE_TIMEOUT_S), router.tail()
    wan = wan_address(lab)
    routes = lab.ip_json("router", "-4", "route", "show", "default")
    assert [r.get("gateway") for r in routes] == [lab.wan.gateway]
    assert journaled(router, "lease.acquired", interface="wan0", address=f"{wan}/24")

    # LAN -> internet through masquerade: the server sees the router's WAN address.
    lab.ip(lab.ns["lan"], "route", "replace", "default", "via", ROUTER)
    got = lab.run("lan", sys.executable, "-I", "-c", FETCH, f"http://{lab.wan.internet}/",
                  check=False)  # fmt: skip
    assert got.stdout == "hello from the internet\n", got.stderr
    access = "".join(p.read_text(errors="replace") for p in lab.workdir.glob("*.log"))
    assert f"{wan} - - " in access and "GET / HTTP" in access, access

    # A LAN client leases from the router's dnsmasq.
    lease = lan_lease(lab, tmp_path)
    assert ipaddress.IPv4Address(lease["ip"]) in ipaddress.IPv4Network("192.168.50.0/24")
    assert (lease["router"], lease["dns"].strip()) == (ROUTER, ROUTER)

    # status lists every service with its state; a missing program or file is a reason, not a
    # dead daemon or a failed apply.
    seen = services(router)
    assert set(seen) == {"dnsmasq", "chrony", "hostapd-5g", "hostapd-2g", "dhcp-wan"}
    assert seen["dnsmasq"]["state"] == "running" and seen["dnsmasq"]["pid"] > 0
    assert seen["dhcp-wan"]["state"] == "running"
    for name in ("hostapd-5g", "hostapd-2g"):
        assert seen[name]["state"] in {"backoff", "starting", "gave_up"}, seen[name]
        # their configs are rendered; this machine has no hostapd binary
        assert "exec /usr/sbin/hostapd: No such file" in seen[name]["last_log"], seen[name]
    assert status(router)["running_revision"] == 1

    # ... and what the router holds: the WAN lease, the firewall as the kernel counts it, the APs
    assert wait_for(lambda: "wan" in status(router)), router.tail()  # the lease is journaled
    now = status(router)
    assert now["wan"] == {"address": wan, "prefix": 24, "gateway": lab.wan.gateway,
                          "lease_seconds": 3600}  # fmt: skip
    assert now["active_wan"] == "wan"
    entry = {"name": "wan", "iface": "wan0", "priority": 100, "healthy": True, "active": True}
    assert now["wans"] == [{**entry, "address": f"{wan}/24", "gateway": lab.wan.gateway}]
    listed = json.loads(lab.run("router", "nft", "-j", "list", "table", "inet", "oxwrt").stdout)
    assert now["firewall_rules"] == sum(1 for item in listed["nftables"] if "rule" in item) > 20
    assert [(a["ssid"], a["iface"], a["operstate"]) for a in now["aps"]] == [
        ("homelab-2g", "phy0-ap0", "absent"),
        ("homelab", "phy1-ap0", "absent"),
        ("homelab-guest", "phy1-ap1", "absent"),
    ]  # rendered for hostapd; this machine has no radios, so no interfaces
    text = router.oxctl("lan", ROUTER, "status").stdout
    assert f"wan: {wan}/24 via {lab.wan.gateway} (lease 3600s) [active=wan]" in text, text

    logs = router.oxctl("lan", ROUTER, "logs", "dnsmasq")
    assert logs.returncode == 0, logs.stderr
    assert "DHCP, IP range 192.168.50.100 -- 192.168.50.250" in logs.stdout
    unknown = router.oxctl("lan", ROUTER, "logs", "nope")
    assert unknown.returncode != 0 and "no service 'nope'" in unknown.stdout + unknown.stderr


def test_restart_and_kill_minus_nine_give_new_pids_and_the_journal_says_so(
    lab: Topology, router: LabRouter
) -> None:
    assert wait_for(lambda: pid_of(router, "dnsmasq") is not None), router.tail()
    first = pid_of(router, "dnsmasq")
    wan_pid = pid_of(router, "dhcp-wan")

    res = router.oxctl("lan", ROUTER, "restart", "dnsmasq")
    assert res.returncode == 0, res.stdout + res.stderr
    assert wait_for(lambda: pid_of(router, "dnsmasq") not in {None, first}), router.tail()
    second = pid_of(router, "dnsmasq")
    assert second is not None

    os.kill(second, signal.SIGKILL)  # a PID of this machine: the daemon's child, started here
    assert wait_for(lambda: pid_of(router, "dnsmasq") not in {None, second}), router.tail()
    third = pid_of(router, "dnsmasq")
    assert journaled(router, "service.exited", name="dnsmasq", pid=second, signal=9)
    assert journaled(router, "service.started", name="dnsmasq", pid=third)
    assert pid_of(router, "dhcp-wan") == wan_pid  # the others were not touched
    # serves again after the restart
    assert wait_for(lambda: f"{ROUTER}:53" in lab.run("router", "ss", "-Hlun").stdout)


def test_pushed_services_start_a_missing_program_is_reported_and_removal_stops(
    lab: Topology, router: LabRouter
) -> None:
    assert wait_for(lambda: pid_of(router, "dnsmasq") is not None), router.tail()
    dnsmasq = pid_of(router, "dnsmasq")
    base = (router.etc / "oxwrt.toml").read_text()
    with_extra = router.etc.parent / "with-extra.toml"
    with_extra.write_text(base.replace("\n[[services]]\n", EXTRA_SERVICES + "\n[[services]]\n", 1))
    for argv in (("config-push", str(with_extra)), ("reload",)):
        res = router.oxctl("lan", ROUTER, *argv)
        assert res.returncode == 0, res.stdout + res.stderr

    assert wait_for(lambda: pid_of(router, "sleeper") is not None), router.tail()
    sleeper = pid_of(router, "sleeper")
    assert sleeper is not None
    assert Path(f"/proc/{sleeper}/cmdline").read_bytes().split(b"\0")[0] == b"/bin/sleep"
    assert wait_for(lambda: "exec" in (services(router)["ghost"].get("last_log") or ""))
    ghost = services(router)["ghost"]
    assert ghost["state"] in {"backoff", "starting", "gave_up"}
    assert "/usr/sbin/no-such-daemon" in ghost["last_log"], ghost
    assert pid_of(router, "dnsmasq") == dnsmasq  # unchanged services keep their PID

    (router.etc.parent / "without.toml").write_text(base)
    for argv in (("config-push", str(router.etc.parent / "without.toml")), ("reload",)):
        res = router.oxctl("lan", ROUTER, *argv)
        assert res.returncode == 0, res.stdout + res.stderr
    assert wait_for(lambda: "sleeper" not in services(router)), router.tail()
    assert wait_for(lambda: not Path(f"/proc/{sleeper}").exists())
    assert journaled(router, "service.exited", name="sleeper", pid=sleeper, signal=15)
    assert wait_for(lambda: journaled(router, "service.removed", name="sleeper"))
    assert wait_for(lambda: journaled(router, "service.removed", name="ghost"))  # never ran
    assert "ghost" not in services(router)
    assert pid_of(router, "dnsmasq") == dnsmasq
    assert status(router)["running_revision"] == 3


def test_services_a_killed_daemon_left_running_are_ended_when_it_restarts(
    lab: Topology, router: LabRouter
) -> None:
    """The OOM killer or a `kill -9` ends the daemon alone (not its process group, as the lab's
    stop does): its services live on, unsupervised, until the next daemon ends them."""
    assert wait_for(lambda: pid_of(router, "dnsmasq") is not None), router.tail()
    old = pid_of(router, "dnsmasq")
    assert old is not None and router.proc is not None
    os.kill(router.proc.pid, signal.SIGKILL)  # the daemon itself (ip netns exec execs into it)
    router.proc.wait(10)
    assert alive(old)  # left running with nobody supervising it

    router.start()
    assert wait_for(lambda: not alive(old)), router.tail()
    assert journaled(router, "service.exited", name="dnsmasq", pid=old, signal=9)
    assert "left running by an earlier daemon" in router.tail(200)
    assert wait_for(lambda: pid_of(router, "dnsmasq") not in (None, old)), router.tail()
    # the new instance got port 53: the old one no longer held it
    assert wait_for(lambda: f"{ROUTER}:53" in lab.run("router", "ss", "-Hlun").stdout)
    assert services(router)["dnsmasq"].get("restarts", 0) == 0, services(router)["dnsmasq"]


def test_diag_shows_the_operator_the_kernel_without_a_shell(
    lab: Topology, router: LabRouter
) -> None:
    def diag(*args: str) -> str:
        res = router.oxctl("lan", ROUTER, "diag", *args)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    assert wait_for(lambda: wan_address(lab) is not None, LEASE_TIMEOUT_S), router.tail()
    links = diag("links")
    assert all(name in links for name in ("br-lan", "wan0", "lo")), links
    assert f"{wan_address(lab)}/24" in diag("addresses")
    assert wait_for(lambda: lab.wan.gateway in diag("routes")), diag("routes")
    default = next(line for line in diag("routes").splitlines() if line.startswith("default"))
    assert default.split()[1:3] == [lab.wan.gateway, "wan0"] and default.split()[-1] == "oxwrt"
    listed = json.loads(lab.run("router", "nft", "-j", "list", "table", "inet", "oxwrt").stdout)
    rules = sum(1 for item in listed["nftables"] if "rule" in item)
    summary = diag("nft-summary").split("table ")
    ours = next(part for part in summary if part.startswith("inet oxwrt\n"))
    counted = sum(int(line.split(": ")[-1].split()[0]) for line in ours.splitlines()[1:]
                  if line.startswith("  chain "))  # fmt: skip
    assert counted == rules > 20, ours  # the summary counts what the kernel holds
    assert diag("sysctl", "net.ipv4.ip_forward") == "net.ipv4.ip_forward = 1\n"
    assert "wan0: " in diag("dhcp") and "s left" in diag("dhcp")
    assert "br-lan" in diag("qdisc") and diag("dmesg").startswith(("[", "("))
    refused = router.oxctl("lan", ROUTER, "diag", "sysctl", "../../../etc/shadow")
    assert refused.returncode == 1 and "not a sysctl key" in refused.stdout + refused.stderr
    later = router.oxctl("lan", ROUTER, "diag", "ping", "198.51.100.80")
    assert (
        later.returncode == 1 and "not available on this router yet" in later.stdout + later.stderr
    )
