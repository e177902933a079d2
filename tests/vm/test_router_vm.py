"""oxwrtd as the router in a real kernel (QEMU, TCG): the daemon is PID 1's main loop, its config
and journal live on the data disk, oxctl reaches it from the LAN namespace over the VM's LAN NIC.

Boots are the cost here (~30 s each under TCG), so one guest carries the scenarios in file order:
boot + status; push, reload and `reboot --confirm`, then boot again; `kill -TERM 1`, a corrupt
oxwrt.toml written on the stopped disk, boot again. The journal replay boots one more, fresh
disk, built from a lab-tier run of the same config. Each test reads the state it starts from
rather than assuming the previous test's, so any subset runs.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clients.keys import keygen
from oxwrtd import pid1
from oxwrtd.lab import IfaceNames, Topology
from oxwrtd.lab_router import LabRouter
from oxwrtd.shell.init import Console
from vm.harness import (
    ROUTER_READY,
    VM,
    NetPlan,
    VMConfig,
    make_data_disk,
    read_disk_tree,
    router_argv,
    write_disk_file,
)
from vm.router_config import (
    LAN_ADDRESS,
    LAN_CLIENT,
    LAN_IFACE,
    WAN_IFACE,
    copy_state,
    data_tree,
    vm_router_toml,
)

REPO = Path(__file__).resolve().parent.parent.parent
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable


@dataclass
class RouterLab:
    """The router guest, its operator, and the lab namespaces its NICs are cabled to."""

    workdir: Path
    wan_ns: str
    lan_ns: str
    operator_key: Path
    server_key: str = ""
    disk: Path = field(init=False)
    current: VM | None = None

    def __post_init__(self) -> None:
        self.disk = self.workdir / "data.img"

    def config(self, disk: Path, name: str = "router") -> VMConfig:
        return VMConfig(
            workdir=self.workdir / name,
            init_argv=router_argv(),
            ready_line=ROUTER_READY,
            net=NetPlan(nics={"wan": self.wan_ns, "lan": self.lan_ns}),
            data_disk=disk,
        )

    def vm(self) -> VM:
        """The running router, booting it if it is not running."""
        if self.current is None or not self.current.alive():
            self.stop()
            self.current = VM(self.config(self.disk))
            self.current.boot()
            self.cable_lan_client()
        return self.current

    def cable_lan_client(self) -> None:
        """The LAN client's address on its end of the VM's LAN NIC (a new one each boot)."""
        cmd = ["ip", "-n", self.lan_ns, "addr", "replace", LAN_CLIENT[0], "dev", "vm-lan"]
        subprocess.run(cmd, check=True)

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None

    def oxctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [PYTHON, "-m", "clients.oxctl", "--key", str(self.operator_key)]
        argv += ["--server-key", self.server_key, "--timeout", "60", *args]
        done = subprocess.run(
            ["ip", "netns", "exec", self.lan_ns, *argv],
            capture_output=True, text=True, check=False, cwd=REPO,
        )  # fmt: skip
        assert not check or done.returncode == 0, f"oxctl {args}: {done.stdout}{done.stderr}"
        return done

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.oxctl("--json", LAN_ADDRESS, "status").stdout))


@pytest.fixture(scope="module")
def router_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterLab]:
    if os.geteuid() != 0:
        pytest.skip("the VM tier needs root (apt, network namespaces, taps)")
    workdir = tmp_path_factory.mktemp("router-vm")
    tag = secrets.token_hex(3)
    lab = RouterLab(workdir, f"oxvmr-wan-{tag}", f"oxvmr-lan-{tag}", workdir / "operator.key")
    operator = keygen(lab.operator_key)
    lab.server_key = data_tree(workdir / "tree", vm_router_toml(operator))
    make_data_disk(lab.disk, root=workdir / "tree")
    for ns in (lab.wan_ns, lab.lan_ns):
        subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        yield lab
    finally:
        lab.stop()
        for ns in (lab.wan_ns, lab.lan_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.fixture
def router(router_lab: RouterLab) -> VM:
    return router_lab.vm()


def ok(vm: VM, cmd: str) -> str:
    rc, out = vm.run(cmd)
    assert rc == 0, f"{cmd!r} failed ({rc}): {out}"
    return out


def addresses(out: str, devs: tuple[str, ...]) -> dict[str, set[str]]:
    """`ip -j addr` output -> dev -> its global addresses (link-local ones follow the MAC)."""
    return {
        link["ifname"]: {
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("scope") == "global"
        }
        for link in json.loads(out)
        if link["ifname"] in devs
    }


def ruleset(out: str) -> list[Any]:
    """`nft -j list table` output without what differs between two equal rulesets: handles
    (allocation order), counters' values, the nft version header."""

    def clean(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ({"packets": 0, "bytes": 0} if k == "counter" and isinstance(v, dict) else
                    clean(v))
                for k, v in node.items() if k != "handle"
            }  # fmt: skip
        if isinstance(node, list):
            return [clean(v) for v in node]
        return node

    return [clean(item) for item in json.loads(out)["nftables"] if "metainfo" not in item]


def test_the_vm_config_validates_and_names_only_what_the_vm_has() -> None:
    import tomlkit

    from schema.load import load_text

    text = vm_router_toml("ab" * 32)
    config = load_text(text).raise_for_issues()
    assert [(n.name, getattr(n, "iface", None)) for n in config.networks] == [
        ("wan", WAN_IFACE),
        ("lan", None),
    ]
    assert [getattr(n, "members", None) for n in config.networks][1] == [LAN_IFACE]
    assert [s.name for s in config.services] == ["dnsmasq", "chrony"]
    assert not config.wifi and not config.radios and not config.wireguard
    values = json.dumps(tomlkit.parse(text).unwrap())  # comments may still say wan0
    assert "wan0" not in values and "lan0" not in values
    assert [c.key for c in config.control.clients] == ["ab" * 32]


def test_pid1_runs_the_daemon_with_defaults_when_its_arguments_do_not_parse() -> None:
    out = io.StringIO()
    args = pid1.daemon_args(["--state-dir", "/x", "--bogus"], Console(out))
    assert args.state_dir == Path("/var/lib/oxwrt") and args.config_dir == Path("/etc/oxwrt")
    assert "unrecognized arguments: --bogus; running with the defaults" in out.getvalue()
    assert pid1.daemon_args(["--state-dir", "/x"], Console(out)).state_dir == Path("/x")
    assert pid1.split_companion(["--log-level", "debug", "--", "agent", "--"]) == (
        ["--log-level", "debug"],
        ["agent", "--"],
    )


def test_boots_to_the_control_plane_and_answers_status_from_the_lan(
    router: VM, router_lab: RouterLab
) -> None:
    assert "-m oxwrtd.pid1" in ok(router, "tr '\\0' ' ' < /proc/1/cmdline")
    status = router_lab.status()
    assert status["running_revision"] >= 1 and status["hostname"]
    lan = addresses(ok(router, "ip -j addr"), ("br-lan", WAN_IFACE))
    assert lan == {"br-lan": {f"{LAN_ADDRESS}/24", "fd7a:5c3e:9b21::1/64"},
                   WAN_IFACE: {"203.0.113.2/24"}}  # fmt: skip
    assert "master br-lan" in ok(router, f"ip -o link show {LAN_IFACE}")
    assert "table inet oxwrt" in ok(router, "nft list tables")
    # the journal is on the data disk, not in the overlay's tmpfs
    assert "/var/lib/oxwrt ext4" in ok(router, "awk '{print $2, $3}' /proc/mounts")
    ok(router, "test -d /var/lib/oxwrt/journal")


def test_a_service_runs_under_its_cgroup_limits_and_orphans_are_reaped(router: VM) -> None:
    # the cookbook's dnsmasq: memory_max = 64 MiB, pids_max = 16
    cgroup = "/sys/fs/cgroup/svc/dnsmasq"
    rc, out = router.run(f"for i in $(seq 300); do grep -q . {cgroup}/cgroup.procs && exit 0; "
                         "sleep 0.1; done; exit 1")  # fmt: skip
    assert rc == 0, f"dnsmasq never ran in {cgroup}: {out}"
    assert ok(router, f"cat {cgroup}/memory.max").strip() == "67108864"
    assert ok(router, f"cat {cgroup}/pids.max").strip() == "16"
    # a fork bomb in that cgroup is stopped at pids.max: forks beyond it fail (EAGAIN)
    bomb = (f"echo $$ > {cgroup}/cgroup.procs; i=0; "
            "while [ $i -lt 40 ]; do sleep 60 >/dev/null 2>&1 & i=$((i+1)); done")  # fmt: skip
    out = ok(router, f"sh -c {shlex.quote(bomb)} 2>&1; cat {cgroup}/pids.current; "
                     f"cat {cgroup}/pids.events")  # fmt: skip
    current, events = out.strip().splitlines()[-2:]
    assert "Cannot fork" in out and 1 < int(current) <= 16, out
    assert int(events.split()[-1]) > 0, out  # pids.events: "max N", N forks refused
    ok(router, f"for p in $(cat {cgroup}/cgroup.procs); do "
               "[ \"$(cat /proc/$p/comm)\" = sleep ] && kill $p; done; true")  # fmt: skip
    # orphans of PID 1's children are reaped by the daemon's loop (one reaper for all)
    pid = ok(router, "sh -c 'sleep 2 >/dev/null 2>&1 & echo $!'").strip()
    rc, out = router.run(f"for i in $(seq 100); do [ -e /proc/{pid} ] || exit 0; sleep 0.1; "
                         f"done; grep State /proc/{pid}/status; exit 1")  # fmt: skip
    assert rc == 0, f"orphan {pid} not reaped: {out}"


def test_a_pushed_hostname_and_revision_survive_reboot_over_oxctl(
    router: VM, router_lab: RouterLab
) -> None:
    before = router_lab.status()["running_revision"]
    name = f"vm-renamed-{before + 1}"
    edited = router_lab.workdir / "renamed.toml"
    text = ok(router, "cat /etc/oxwrt/oxwrt.toml")
    edited.write_text(text.replace('hostname = "', f'hostname = "{name}"  # was "', 1))
    router_lab.oxctl(LAN_ADDRESS, "config-push", str(edited), "--comment", "rename")
    router_lab.oxctl(LAN_ADDRESS, "reload")
    assert router_lab.status()["hostname"] == name
    start = router.console_size()
    router_lab.oxctl(LAN_ADDRESS, "reboot", "--confirm")
    assert router.wait_exit(120) == 0  # -no-reboot: the guest's reboot(2) ends QEMU
    after = router.console(start)
    assert "shutdown requested: reboot" in after and "/data unmounted" in after, after
    assert "Kernel panic" not in after
    again = router_lab.vm()
    assert again is not router
    status = router_lab.status()
    assert (status["running_revision"], status["hostname"]) == (before + 1, name)


def test_kill_term_1_is_orderly_and_a_corrupt_config_boots_the_last_good_revision(
    router: VM, router_lab: RouterLab
) -> None:
    before = router_lab.status()
    start = router.console_size()
    assert router.shutdown("TERM") == 0
    after = router.console(start)
    steps = ["shutdown requested: reboot", "oxwrtd stopped", "/data unmounted", "reboot now"]
    positions = [after.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), after
    # the journal on the disk verifies, read out by the host
    journal = read_disk_tree(router_lab.disk, "/state/journal", router_lab.workdir / "out")
    verified = subprocess.run([PYTHON, "-m", "oxwrtd", "journal", "verify", str(journal)],
                              capture_output=True, text=True, check=False, cwd=REPO)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    shutil.rmtree(journal)

    garbage = b'hostname = "half-written\n[[networks]\nname = \x00\x00\x00'
    write_disk_file(router_lab.disk, "/etc/oxwrt/oxwrt.toml", garbage, router_lab.workdir / "bad")
    vm = router_lab.vm()
    status = router_lab.status()
    assert status["running_revision"] == before["running_revision"]
    assert status["hostname"] == before["hostname"]
    assert any("malformed TOML" in problem for problem in status.get("problems", [])), status
    assert LAN_ADDRESS in ok(vm, "ip -o -4 addr show br-lan")
    # the running revision is back on disk; the broken file is kept beside it, not lost
    assert f'hostname = "{before["hostname"]}"' in ok(vm, "cat /etc/oxwrt/oxwrt.toml")
    kept = ok(vm, "cat /etc/oxwrt/oxwrt.toml.local-*")
    assert "half-written" in kept


def test_a_lab_journal_boots_a_fresh_vm_disk_into_the_same_state(
    router_lab: RouterLab, tmp_path: Path
) -> None:
    router_lab.stop()  # one guest at a time on these namespaces
    devs = ("br-lan", WAN_IFACE)
    names = IfaceNames(wan=WAN_IFACE, lan=LAN_IFACE, guest="guest0")
    with Topology("oxvmrp", names) as topo:
        source = tmp_path / "source"
        source.mkdir()
        (source / "oxwrt.toml").write_text(vm_router_toml("00" * 32))
        (source / "oxwrt.secrets.toml").write_text("")
        lab = LabRouter(topo, source)
        # the VM's exact config: the operator inline, authorized_keys where the VM has it
        (lab.etc / "oxwrt.toml").write_text(vm_router_toml(lab.operator_public))
        lab.start(timeout=60)
        try:
            topo.add_address("lan", *LAN_CLIENT)
            edited = tmp_path / "pushed.toml"
            text = (lab.etc / "oxwrt.toml").read_text()
            text = text.replace('hostname = "', 'hostname = "replayed-', 1)
            edited.write_text(text.replace('"192.168.50.200/29"]', '"192.168.50.200/29", '
                                           '"192.168.50.77"]', 1))  # fmt: skip
            for args in (("config-push", str(edited)), ("reload",)):
                done = lab.oxctl("lan", LAN_ADDRESS, *args)
                assert done.returncode == 0, done.stdout + done.stderr
            lab_rules = ruleset(topo.run("router", "nft", "-j", "list", "table", "inet",
                                         "oxwrt").stdout)  # fmt: skip
            lab_addrs = addresses(topo.run("router", "ip", "-j", "addr").stdout, devs)
        finally:
            assert lab.stop() == 0, lab.tail()
        tree = tmp_path / "tree"
        copy_state(tree, lab.etc, lab.state)
    assert "192.168.50.77" in json.dumps(lab_rules)
    disk = make_data_disk(tmp_path / "replay.img", root=tree)
    with VM(router_lab.config(disk, "replay")) as vm:
        vm.boot()
        vm_rules = ruleset(ok(vm, "nft -j list table inet oxwrt"))
        vm_addrs = addresses(ok(vm, "ip -j addr"), devs)
        replay = ok(vm, f"{PYTHON} -m oxwrtd journal replay /var/lib/oxwrt/journal")
    assert vm_addrs == lab_addrs
    assert vm_rules == lab_rules
    assert '"running": 2' in replay.replace("'", '"'), replay
