"""The lab topology: built with unique names, serving DHCP and HTTP on the WAN side, and gone
without a trace afterwards, even when the test using it fails (lab tier)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oxwrtd.lab import Topology, list_labs


def alive(pid: int) -> bool:
    """Running, not merely a zombie: an orphan killed here waits for whichever init reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_names_are_unique_and_router_ifaces_match_the_config(lab: Topology) -> None:
    other = Topology(prefix="oxtest", teardown_at_exit=False)
    assert other.id != lab.id
    other.down()
    assert sorted(list_labs(lab.id)) == sorted(lab.ns.values())
    names = {link["ifname"] for link in lab.ip_json("router", "link", "show")}
    assert {"wan0", "lan0", "guest0"} <= names
    assert {link["ifname"] for link in lab.ip_json("lan", "link", "show")} == {"lo", "eth0"}


def test_wan_side_serves_dhcp_and_http_to_the_router(lab: Topology) -> None:
    if shutil.which("busybox") is None:
        pytest.skip("busybox (udhcpc) not installed")
    lab.ip(lab.router, "link", "set", "wan0", "up")
    out = lab.run(
        "router", "busybox", "udhcpc", "-i", "wan0", "-n", "-q", "-f", "-s", "/bin/true"
    ).stderr
    lease = re.search(r"lease of ([0-9.]+) obtained from ([0-9.]+)", out)
    assert lease is not None, out
    assert lease.group(2) == lab.wan.gateway
    lab.ip(lab.router, "addr", "add", f"{lease.group(1)}/24", "dev", "wan0")
    lab.ip(lab.router, "route", "add", "default", "via", lab.wan.gateway)
    page = lab.run(
        "router", sys.executable, "-c",
        f"import urllib.request; print(urllib.request.urlopen('http://{lab.wan.internet}/').read())",
    ).stdout  # fmt: skip
    assert "hello from the internet" in page


def test_teardown_removes_namespaces_and_processes_even_after_a_failure() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    topo = Topology(prefix="oxtest")
    with pytest.raises(RuntimeError, match="test body failed"), topo:
        pids = [p.pid for p in topo._procs]
        assert pids and all(alive(p) for p in pids)
        raise RuntimeError("test body failed")
    assert list_labs(topo.id) == []
    assert not any(alive(p) for p in pids)
    assert not topo.workdir.exists()


def test_cli_up_status_down() -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    run = [sys.executable, "-m", "oxwrtd.lab"]
    up = subprocess.run(
        [*run, "up", "--prefix", "oxtest"], check=False, capture_output=True, text=True
    )
    assert up.returncode == 0, up.stderr
    lab_id = re.search(r"lab (\S+) is up", up.stdout)
    assert lab_id is not None
    try:
        status = subprocess.run([*run, "status"], capture_output=True, text=True, check=True)
        assert f"{lab_id.group(1)} router" in status.stdout
        assert len(list_labs(lab_id.group(1))) == 4
    finally:
        down = subprocess.run(
            [*run, "down", lab_id.group(1)], check=False, capture_output=True, text=True
        )
    assert down.returncode == 0, down.stderr
    assert list_labs(lab_id.group(1)) == []


def test_teardown_ends_processes_left_inside_the_namespaces() -> None:
    """A daemon killed with SIGKILL leaves its services, in their own sessions, behind."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    with Topology(prefix="oxtest") as topo:
        stray = subprocess.Popen(
            ["ip", "netns", "exec", topo.router, "setsid", "-f", "sleep", "300"],
            stdout=subprocess.DEVNULL,
        )
        stray.wait(10)  # setsid -f forks: the sleep lives on alone, in its own session
        ns_pids = ["ip", "netns", "pids", topo.router]
        out = subprocess.run(ns_pids, check=True, capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        assert pids and all(alive(p) for p in pids)
    for pid in pids:
        for _ in range(50):
            if not alive(pid):
                break
            time.sleep(0.05)
        assert not alive(pid)
