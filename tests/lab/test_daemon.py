"""oxwrtd for real in the router namespace: boot on the cookbook, local edits with SIGHUP, a
broken edit that must not replace what runs, and SIGKILL followed by a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from oxwrtd.lab import Topology
from oxwrtd.lab_router import LAN_CLIENT, REPO, LabRouter


@pytest.fixture
def router(lab: Topology) -> Iterator[LabRouter]:
    r = LabRouter(lab).start()
    lab.add_address("lan", *LAN_CLIENT)
    try:
        yield r
    finally:
        r.stop()


def v4_addresses(lab: Topology, dev: str) -> set[str]:
    out = lab.run("router", "ip", "-j", "addr", "show", "dev", dev, check=False).stdout
    if not out.strip():
        return set()
    return {
        f"{a['local']}/{a['prefixlen']}"
        for link in json.loads(out)
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }


def wait_for(what: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.1)
    return False


def journal(r: LabRouter, *args: str) -> subprocess.CompletedProcess[str]:
    python = REPO / ".venv" / "bin" / "python"
    return subprocess.run(
        [str(python), "-m", "oxwrtd", "journal", *args, str(r.state / "journal")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_boots_the_cookbook_and_the_lan_reaches_the_router(lab: Topology, router: LabRouter):
    assert v4_addresses(lab, "br-lan") == {"192.168.50.1/24"}
    assert "table inet oxwrt" in lab.run("router", "nft", "list", "tables").stdout
    ping = lab.run("lan", "ping", "-c1", "-W2", "192.168.50.1", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # the machine's own namespace never sees router rules
    host = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    assert "oxwrt" not in host.stdout
    verified = journal(router, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # [metrics] serves Prometheus text on the LAN address
    url = "http://192.168.50.1:9100/metrics"
    fetch = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).read().decode())"
    scraped = lab.run("lan", str(REPO / ".venv" / "bin" / "python"), "-c", fetch, check=False)
    assert "oxwrt_revision_running 1" in scraped.stdout, scraped.stderr


def test_sighup_adopts_an_edit_and_a_broken_edit_keeps_the_last_good(
    lab: Topology, router: LabRouter
):
    public = router.etc / "oxwrt.toml"
    text = public.read_text()
    public.write_text(text.replace('hostname = "', 'hostname = "edited-'))
    router.signal(signal.SIGHUP)
    assert wait_for(lambda: "revision 2 applied" in router.tail(50)), router.tail()

    public.write_text(text.replace("prefix = 24", "prefix = 99", 1))
    router.signal(signal.SIGHUP)
    assert wait_for(lambda: "rejected" in router.tail(50)), router.tail()
    assert v4_addresses(lab, "br-lan") == {"192.168.50.1/24"}
    assert lab.run("lan", "ping", "-c1", "-W2", "192.168.50.1", check=False).returncode == 0
    replay = journal(router, "replay")
    assert '"running": 2' in replay.stdout.replace("'", '"'), replay.stdout


def test_sigkill_then_restart_converges_on_the_journaled_revision(lab: Topology, router: LabRouter):
    assert router.proc is not None
    router.signal(signal.SIGKILL)
    router.proc.wait(10)
    lab.run("router", "ip", "addr", "flush", "dev", "br-lan")  # the kernel lost state meanwhile
    router.start()
    assert wait_for(lambda: v4_addresses(lab, "br-lan") == {"192.168.50.1/24"})
    assert journal(router, "verify").returncode == 0
    log = Path(router.log).read_text()
    assert log.count("oxwrtd ready") == 2 and "booting revision 1" in log


def _push_new_lan_address(lab: Topology, router: LabRouter) -> None:
    """Push a config that moves the LAN to 192.168.51.1: it cuts the operator off."""
    edited = router.etc.parent / "cut-off.toml"
    text = (router.etc / "oxwrt.toml").read_text()
    edited.write_text(text.replace("192.168.50.", "192.168.51."))
    pushed = router.oxctl("lan", "192.168.50.1", "config-push", str(edited), "--comment", "oops")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr


def _reload_in_background(router: LabRouter, window: str) -> subprocess.Popen[bytes]:
    argv = router.oxctl_argv("lan", "192.168.50.1", "reload", "--confirm-within", window)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_oxctl_from_the_lan_and_a_cut_off_operator_is_reverted_by_the_confirm_window(
    lab: Topology, router: LabRouter
):
    status = router.oxctl("lan", "--json", "192.168.50.1", "status")
    assert status.returncode == 0 and json.loads(status.stdout)["running_revision"] == 1
    _push_new_lan_address(lab, router)
    # The reply may never arrive: the reload moves the address the operator talks to.
    cut_off = _reload_in_background(router, "6s")
    try:
        assert wait_for(lambda: "revision 2 applied" in router.tail(80)), router.tail()
        assert v4_addresses(lab, "br-lan") == {"192.168.51.1/24"}
        assert wait_for(lambda: v4_addresses(lab, "br-lan") == {"192.168.50.1/24"}, timeout=20)
        reverted = "was not confirmed in time: reverting to revision 1"
        assert wait_for(lambda: reverted in router.tail(80)), router.tail()
    finally:
        cut_off.kill()
        cut_off.wait()
    status = router.oxctl("lan", "--json", "192.168.50.1", "status")
    assert json.loads(status.stdout)["running_revision"] == 1
    assert "192.168.50.1" in (router.etc / "oxwrt.toml").read_text()


def test_a_confirm_window_that_closes_while_the_daemon_is_down_reverts_at_start(
    lab: Topology, router: LabRouter
):
    _push_new_lan_address(lab, router)
    cut_off = _reload_in_background(router, "5s")
    try:
        assert wait_for(lambda: v4_addresses(lab, "br-lan") == {"192.168.51.1/24"})
    finally:
        cut_off.kill()
        cut_off.wait()
    assert router.proc is not None
    router.signal(signal.SIGKILL)
    router.proc.wait(10)
    time.sleep(5.5)
    router.start()
    assert v4_addresses(lab, "br-lan") == {"192.168.50.1/24"}
    replay = journal(router, "replay").stdout.replace("'", '"')
    assert '"running": 1' in replay, replay


def test_confirm_keeps_the_revision(lab: Topology, router: LabRouter):
    public = router.etc / "oxwrt.toml"
    edited = router.etc.parent / "renamed.toml"
    edited.write_text(public.read_text().replace('hostname = "', 'hostname = "kept-', 1))
    assert router.oxctl("lan", "192.168.50.1", "config-push", str(edited)).returncode == 0
    assert router.oxctl("lan", "192.168.50.1", "reload", "--confirm-within", "5s").returncode == 0
    confirm = router.oxctl("lan", "192.168.50.1", "confirm")
    assert confirm.returncode == 0, confirm.stdout + confirm.stderr
    time.sleep(6)
    status = json.loads(router.oxctl("lan", "--json", "192.168.50.1", "status").stdout)
    assert status["running_revision"] == 2 and status["hostname"].startswith("kept-")


def _routes(lab: Topology) -> list[str]:
    out = lab.run("router", "ip", "-j", "route", "show", "proto", "155", check=False).stdout
    return sorted(f"{r['dst']} {r.get('gateway', '')}" for r in json.loads(out or "[]"))


def _ruleset(lab: Topology) -> str:
    return lab.run("router", "nft", "-j", "list", "table", "inet", "oxwrt").stdout


def test_a_revision_the_kernel_refuses_reverts_addresses_routes_and_ruleset_exactly(
    lab: Topology, router: LabRouter
):
    before = (v4_addresses(lab, "br-lan"), _routes(lab), _ruleset(lab))
    text = (router.etc / "oxwrt.toml").read_text()
    bad = router.etc.parent / "kernel-refuses.toml"
    # valid as config, refused by the kernel: the named set does not exist
    bad.write_text(
        text.replace("192.168.50.", "192.168.52.")
        + '\n[[firewall.raw_nft]]\nchain = "input"\nrule = "ip saddr @no_such_set drop"\n'
    )
    assert router.oxctl("lan", "192.168.50.1", "config-push", str(bad)).returncode == 0
    reload = router.oxctl("lan", "192.168.50.1", "reload")
    assert reload.returncode != 0
    assert "raw_nft" in reload.stderr + reload.stdout and "reverting to revision 1" in (
        reload.stderr + reload.stdout
    )
    assert (v4_addresses(lab, "br-lan"), _routes(lab), _ruleset(lab)) == before
    status = json.loads(router.oxctl("lan", "--json", "192.168.50.1", "status").stdout)
    assert status["running_revision"] == 1


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_sigkill_during_an_apply_converges_on_the_journaled_revision(
    lab: Topology, router: LabRouter, delay: float
):
    edited = router.etc.parent / "moved.toml"
    edited.write_text((router.etc / "oxwrt.toml").read_text().replace("192.168.50.", "192.168.53."))
    assert router.oxctl("lan", "192.168.50.1", "config-push", str(edited)).returncode == 0
    reloading = _reload_in_background(router, "60s")
    try:
        # the reload is on its way: kill the daemon at some point of the apply
        wait_for(lambda: "applying revision 2" in router.tail(20), timeout=10)
        time.sleep(delay)
        router.signal(signal.SIGKILL)
        assert router.proc is not None
        router.proc.wait(10)
    finally:
        reloading.kill()
        reloading.wait()
    router.start()
    replay = journal(router, "replay").stdout.replace("'", '"')
    running = 2 if '"running": 2' in replay else 1
    want = "192.168.53.1/24" if running == 2 else "192.168.50.1/24"
    assert wait_for(lambda: v4_addresses(lab, "br-lan") == {want}), (running, replay)
    assert journal(router, "verify").returncode == 0
