"""WAN DHCP client and LAN DHCP/DNS with real daemons in the lab (lab tier: root, namespaces).

The router namespace runs busybox udhcpc on wan0 (reporting through the shipped hook to a
`LeaseReceiver`) and dnsmasq rendered from the cookbook; the wan namespace plays the ISP with its
own dnsmasq (DHCP with a DNS option, and a resolver answering `example.test`); lan and guest
clients run `busybox udhcpc` and `busybox nslookup`. The router's links are set up here with
`ip` as a stand-in for the netlink adapter (another module's job, tested elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from oxwrtd.core.dhcp_client import (
    ENV_PYTHON,
    ENV_SOCKET,
    ClientPaths,
    LeaseBound,
    LeaseFailed,
    LeaseLost,
    client_service,
    lease_facts,
    parse_event,
)
from oxwrtd.core.net import Lease as NetLease
from oxwrtd.core.render_dnsmasq import DnsmasqOptions, render
from oxwrtd.core.state import Lease as LeaseRow
from oxwrtd.core.supervise import ServiceStarted
from oxwrtd.lab import Topology
from oxwrtd.shell.dhcp_client import HOOK_SCRIPT, DhcpClient, LeaseReceiver, default_paths
from oxwrtd.shell.dnsmasq import Dnsmasq, check_conf, write_conf
from oxwrtd.shell.supervisor import Supervisor
from schema.config import Config, DnsUpstream, Wan
from schema.events import LeaseAcquired
from schema.load import load_text
from tests.conftest import COOKBOOK_DIR

pytestmark = pytest.mark.lab

ISP = "203.0.113.1"
ISP_POOL = ("203.0.113.100", "203.0.113.199")
INTERNET_NAME = "example.test"
INTERNET_ADDR = "198.51.100.80"
VENDOR = "homelab-router"
LEASE_TIMEOUT_S = 30.0
CLONE_NEWNET = 0x40000000
# A LAN client's hook: the variables udhcpc exports, as JSON, for the test to parse.
CLIENT_HOOK = """#!/bin/sh
[ "$1" = bound ] || exit 0
exec "$PY" -I -S -c 'import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], "w"))' \\
    "$OUT"
"""


def _cookbook() -> Config:
    loaded = load_text(
        (COOKBOOK_DIR / "oxwrt.toml").read_text(),
        (COOKBOOK_DIR / "oxwrt.secrets.toml.example").read_text(),
    )
    return loaded.raise_for_issues()


@pytest.fixture
def topo() -> Iterator[Topology]:
    """The lab without its own WAN DHCP server: that one sends no DNS option (port=0), and this
    test checks the DNS a lease carries. The ISP dnsmasq below is spawned through the topology,
    so its teardown kills it by PID."""
    if os.geteuid() != 0 or shutil.which("dnsmasq") is None or shutil.which("busybox") is None:
        pytest.skip("needs root, dnsmasq and busybox")
    lab = Topology(prefix="oxdhcp", dhcp=False, http=False)
    with lab:
        conf = lab.workdir / "isp.conf"
        conf.write_text(
            "\n".join([
                "interface=eth0", "bind-interfaces", "no-resolv", "user=root",
                f"address=/{INTERNET_NAME}/{INTERNET_ADDR}",
                f"dhcp-range={ISP_POOL[0]},{ISP_POOL[1]},255.255.255.0,1h",
                f"dhcp-option=option:router,{ISP}", f"dhcp-option=option:dns-server,{ISP}",
                # Option 60 made visible: a matching vendor class gets a telltale domain name.
                f"dhcp-vendorclass=set:ours,{VENDOR}", "dhcp-vendorclass=set:busybox,udhcp",
                "dhcp-option=tag:ours,option:domain-name,ours.example",
                "dhcp-option=tag:busybox,option:domain-name,busybox.example",
                f"dhcp-leasefile={lab.workdir / 'isp.leases'}",
                f"pid-file={lab.workdir / 'isp.pid'}", "",
            ])
        )  # fmt: skip
        lab.spawn("wan", "dnsmasq", "--keep-in-foreground", f"--conf-file={conf}")
        _wait_for((lab.workdir / "isp.pid").exists, "the ISP's dnsmasq")
        router = lab.router
        lab.ip(router, "link", "add", "br-lan", "type", "bridge")
        lab.ip(router, "link", "set", "lan0", "master", "br-lan")
        for link in ("br-lan", "lan0", "guest0", "wan0"):
            lab.ip(router, "link", "set", link, "up")
        lab.ip(router, "addr", "add", "192.168.50.1/24", "dev", "br-lan")
        lab.ip(router, "addr", "add", "10.99.0.1/24", "dev", "guest0")
        yield lab


def _wait_for(ready: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not ready within {timeout}s")


async def _wan_lease(
    topo: Topology, config: Config, tmp_path: Path, wan: Wan | None = None
) -> tuple[LeaseAcquired, LeaseBound]:
    """Run the router's client until its first lease: the journal fact and the full report."""
    wan = wan or config.primary_wan()
    assert wan is not None
    leases: asyncio.Queue[LeaseAcquired] = asyncio.Queue()
    receiver = LeaseReceiver(tmp_path / "run" / "dhcp.sock", on_lease=leases.put_nowait)
    await receiver.start()
    client = DhcpClient(
        wan,
        config.hostname,
        default_paths(receiver.path),
        prefix=topo.command("router"),
        log=tmp_path / "udhcpc.log",
    )
    try:
        client.start()
        event = await asyncio.wait_for(leases.get(), LEASE_TIMEOUT_S)
        assert not receiver.errors
        return event, receiver.latest["wan0"]
    finally:
        client.stop()
        receiver.close()


def _client_lease(topo: Topology, role: str, tmp_path: Path) -> dict[str, str]:
    hook, out = tmp_path / f"{role}-hook.sh", tmp_path / f"{role}-lease.json"
    hook.write_text(CLIENT_HOOK)
    hook.chmod(0o755)
    res = subprocess.run(
        topo.command(role, "busybox", "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", str(hook),
                     "-t", "8", "-T", "1"),
        env={**os.environ, "PY": shutil.which("python3") or "python3", "OUT": str(out)},
        capture_output=True, text=True, timeout=LEASE_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    env: dict[str, str] = json.loads(out.read_text())
    return env


def _resolve(topo: Topology, role: str, name: str, server: str) -> str:
    res = subprocess.run(
        topo.command(role, "busybox", "nslookup", "-type=A", name, server),
        capture_output=True, text=True, timeout=15, check=False,
    )  # fmt: skip
    return res.stdout + res.stderr


def test_wan_lease_then_lan_and_guest_dhcp_and_dns(topo: Topology, tmp_path: Path) -> None:
    config = _cookbook()

    # WAN: udhcpc on wan0 gets a lease from the ISP; the hook's report becomes LeaseAcquired.
    before = time.time()
    event, bound = asyncio.run(_wan_lease(topo, config, tmp_path))
    address, _, prefix = event.address.partition("/")
    assert ipaddress.IPv4Address(ISP_POOL[0]) <= ipaddress.IPv4Address(address)
    assert ipaddress.IPv4Address(address) <= ipaddress.IPv4Address(ISP_POOL[1])
    assert prefix == "24"
    assert event.interface == "wan0"
    assert event.gateway == ISP
    assert event.dns == [ISP]
    assert event.expires is not None
    assert bound.lease.domain is None  # no vendor class sent, not even udhcpc's default
    assert before + 3600 <= event.expires <= time.time() + 3600
    # send_hostname = true in the cookbook: the ISP saw option 12 with the router's hostname.
    isp_leases = (topo.workdir / "isp.leases").read_text()
    assert f" {address} {config.hostname} " in isp_leases
    # The fact, folded, is what net.desired consumes.
    row = LeaseRow(**msgspec.structs.asdict(event), at=before)
    assert lease_facts(config, {"wan0": row}, time.time()) == {"wan": NetLease(address, 24, ISP)}

    # Apply it as net.desired would (address on wan0), so the router reaches its upstream.
    topo.ip(topo.router, "addr", "add", event.address, "dev", "wan0")

    # LAN side: dnsmasq rendered from the cookbook, its upstream pointed at the ISP resolver.
    assert config.dns is not None
    config = msgspec.structs.replace(
        config,
        dns=msgspec.structs.replace(config.dns, upstreams=[DnsUpstream(ip=ISP, protocol="udp")]),
    )
    pid_file = tmp_path / "dnsmasq.pid"
    opts = DnsmasqOptions(lease_file=str(tmp_path / "dnsmasq.leases"), pid_file=str(pid_file),
                          user="root")  # fmt: skip
    rendered = render(config, opts)
    assert rendered.warnings == ()
    conf = tmp_path / "dnsmasq.conf"
    assert write_conf(conf, rendered.text)
    assert check_conf(conf) is None
    dnsmasq = Dnsmasq(conf, pid_file, prefix=topo.command("router"), log=tmp_path / "dnsmasq.log")
    try:
        dnsmasq.start()
        listening = topo.run("router", "ss", "-Hlun", "sport = :53").stdout
        assert "192.168.50.1:53" in listening
        assert "10.99.0.1:53" in listening
        assert address not in listening  # never on the WAN

        lan = parse_event("bound", _client_lease(topo, "lan", tmp_path))
        assert isinstance(lan, LeaseBound)
        got = ipaddress.IPv4Address(lan.lease.address)
        pool = (ipaddress.IPv4Address("192.168.50.100"), ipaddress.IPv4Address("192.168.50.250"))
        assert pool[0] <= got <= pool[1]
        assert (lan.lease.prefix, lan.lease.gateway, lan.lease.dns) == (
            24, "192.168.50.1", ("192.168.50.1",)
        )  # fmt: skip
        assert lan.lease.lease_s == 12 * 3600  # [dhcp].lease_time

        guest = parse_event("bound", _client_lease(topo, "guest", tmp_path))
        assert isinstance(guest, LeaseBound)
        assert ipaddress.IPv4Address(guest.lease.address) in ipaddress.IPv4Network("10.99.0.0/24")
        assert ipaddress.IPv4Address(guest.lease.address) >= ipaddress.IPv4Address("10.99.0.100")
        assert (guest.lease.gateway, guest.lease.dns) == ("10.99.0.1", ("10.99.0.1",))

        # The LAN client asks the router, which forwards to the ISP's resolver.
        topo.add_address("lan", lan.lease.cidr, lan.lease.gateway)
        answer = _resolve(topo, "lan", INTERNET_NAME, "192.168.50.1")
        assert INTERNET_ADDR in answer, answer
        topo.add_address("guest", guest.lease.cidr, guest.lease.gateway)
        answer = _resolve(topo, "guest", INTERNET_NAME, "10.99.0.1")
        assert INTERNET_ADDR in answer, answer

        # A changed config restarts dnsmasq (SIGHUP would keep the old ranges).
        old_pid = dnsmasq.pid
        assert dnsmasq.apply(rendered.text.replace("43200", "7200")) is True
        assert dnsmasq.pid != old_pid
        assert dnsmasq.running()
        assert dnsmasq.apply(rendered.text.replace("43200", "7200")) is False
    finally:
        dnsmasq.stop()
    assert not dnsmasq.running()


def test_wan_client_sends_hostname_and_vendor_class_only_as_configured(
    topo: Topology, tmp_path: Path
) -> None:
    config = _cookbook()
    wan = config.primary_wan()
    assert wan is not None
    leases = topo.workdir / "isp.leases"

    quiet = msgspec.structs.replace(wan, send_hostname=False)
    _, bound = asyncio.run(_wan_lease(topo, config, tmp_path, quiet))
    assert " * " in leases.read_text()  # dnsmasq's mark for "no hostname sent"
    assert bound.lease.domain is None  # no vendor class, not udhcpc's default "udhcp 1.35.0"

    custom = msgspec.structs.replace(wan, hostname_override="customer-4711", vendor_class_id=VENDOR)
    _, bound = asyncio.run(_wan_lease(topo, config, tmp_path, custom))
    assert " customer-4711 " in leases.read_text()
    assert bound.lease.domain == "ours.example"  # option 60 = vendor_class_id


def test_hook_reports_reach_the_receiver_and_bad_ones_are_kept_as_errors(tmp_path: Path) -> None:
    """The shipped hook script, run as udhcpc runs it, against a real receiver socket."""
    facts: list[LeaseAcquired] = []
    losses: list[LeaseLost | LeaseFailed] = []
    path = tmp_path / "run" / "dhcp.sock"
    paths = default_paths(path)

    def hook(event: str, env: dict[str, str], socket_path: Path | None = path) -> int:
        full = {"PATH": os.environ["PATH"], ENV_PYTHON: paths.python, **env}
        if socket_path is not None:
            full[ENV_SOCKET] = str(socket_path)
        res = subprocess.run(
            [paths.hook, event], env=full, capture_output=True, timeout=15, check=False
        )
        return res.returncode

    async def scenario() -> None:
        receiver = LeaseReceiver(path, on_lease=facts.append, on_lost=losses.append,
                                 clock=lambda: 1000.0)  # fmt: skip
        await receiver.start()
        try:
            assert path.stat().st_mode & 0o777 == 0o600
            bound = {
                "interface": "wan0", "ip": "198.51.100.7", "mask": "24", "lease": "600",
                "router": "198.51.100.1", "dns": "198.51.100.53",
            }  # fmt: skip
            for event, env in [
                ("deconfig", {"interface": "wan0"}),
                ("bound", bound),
                ("bound", {**bound, "ip": "300.1.1.1"}),
                ("leasefail", {"interface": "wan0"}),
            ]:
                assert await asyncio.to_thread(hook, event, env) == 0
            deadline = time.monotonic() + 5.0
            while len(facts) + len(losses) + len(receiver.errors) < 4:
                assert time.monotonic() < deadline, "reports did not arrive"
                await asyncio.sleep(0.02)
            assert list(receiver.errors) == ["`ip` '300.1.1.1' is not an IPv4 address"]
        finally:
            receiver.close()
        assert not path.exists()

    asyncio.run(scenario())
    assert facts == [
        LeaseAcquired(
            interface="wan0",
            address="198.51.100.7/24",
            gateway="198.51.100.1",
            dns=["198.51.100.53"],
            expires=1600.0,
        )
    ]
    assert losses == [LeaseLost("wan0"), LeaseFailed("wan0", "leasefail")]
    # Misconfigured or daemon gone: the hook says so and returns at once (udhcpc carries on).
    assert hook("bound", {"interface": "wan0"}, socket_path=None) == 2
    assert hook("bound", {"interface": "wan0"}, socket_path=tmp_path / "gone.sock") == 1


@contextlib.contextmanager
def _inside(netns: str) -> Iterator[None]:
    """Move this thread into a lab namespace (where a supervisor's host-net services run)."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        assert libc.setns(target, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        yield
    finally:
        assert libc.setns(home, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        os.close(home)
        os.close(target)


def test_wan_client_runs_as_a_supervised_service(topo: Topology, tmp_path: Path) -> None:
    """The same client under the real supervisor and sandbox (host network, NET_RAW, private
    /run with the report socket's directory bound in), with the system Python running the hook."""
    config = _cookbook()
    wan = config.primary_wan()
    assert wan is not None
    run_dir = Path("/run") / f"oxdhcp-{uuid.uuid4().hex[:8]}"  # the sandbox sees / read-only
    state_dir = Path("/run") / f"oxdhcp-{uuid.uuid4().hex[:8]}"
    paths = ClientPaths(hook=str(HOOK_SCRIPT), socket=str(run_dir / "dhcp.sock"))
    service = client_service(wan, config.hostname, paths)

    async def scenario() -> LeaseAcquired:
        leases: asyncio.Queue[LeaseAcquired] = asyncio.Queue()
        receiver = LeaseReceiver(Path(paths.socket), on_lease=leases.put_nowait)
        await receiver.start()
        sup = Supervisor(state_dir=state_dir, cgroup_base=tmp_path / "no-cgroup", grace_s=1.0)
        await sup.start()
        try:
            sup.reconcile([service])
            try:
                return await asyncio.wait_for(leases.get(), LEASE_TIMEOUT_S)
            except TimeoutError:
                logs = [line.text for line in sup.logs.ring(service.name).lines()]
                raise AssertionError(f"no lease; service log: {logs}") from None
        finally:
            await sup.close(timeout=4.0)
            for event in sup.events:  # whatever survived the graceful stop
                if isinstance(event, ServiceStarted):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(event.pid, signal.SIGKILL)
            receiver.close()

    try:
        with _inside(topo.router):
            event = asyncio.run(scenario())
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    assert event.interface == "wan0"
    assert event.gateway == ISP
    assert event.dns == [ISP]


def test_cookbook_dnsmasq_service_serves_the_lan_under_the_supervisor(
    topo: Topology, tmp_path: Path
) -> None:
    """The cookbook's own [[services]] dnsmasq entry (sandbox, caps, seccomp, landlock, pid
    namespace, dropping to dnsmasq's user) running the rendered config, default state paths;
    only the bind sources move to a scratch directory and the upstream to the lab's ISP."""
    config = _cookbook()
    assert config.dns is not None
    dns = msgspec.structs.replace(config.dns, upstreams=[DnsUpstream(ip=ISP, protocol="udp")])
    config = msgspec.structs.replace(config, dns=dns)
    scratch = Path("/run") / f"oxdhcp-{uuid.uuid4().hex[:8]}"
    state_dir = Path("/run") / f"oxdhcp-{uuid.uuid4().hex[:8]}"
    (scratch / "leases").mkdir(parents=True)
    cookbook_service = next(s for s in config.services if s.name == "dnsmasq")
    moved = {
        "/run/oxwrt/dnsmasq.conf": str(scratch / "dnsmasq.conf"),
        "/var/lib/oxwrt/dnsmasq": str(scratch / "leases"),
    }
    service = msgspec.structs.replace(
        cookbook_service,
        binds=[msgspec.structs.replace(b, source=moved[b.source]) for b in cookbook_service.binds],
    )
    rendered = render(config)  # default options: the paths the service binds
    assert write_conf(scratch / "dnsmasq.conf", rendered.text)
    topo.ip(topo.router, "addr", "add", "203.0.113.50/24", "dev", "wan0")  # a static WAN

    async def scenario() -> tuple[dict[str, str], str]:
        sup = Supervisor(state_dir=state_dir, cgroup_base=tmp_path / "no-cgroup", grace_s=1.0)
        await sup.start()
        try:
            sup.reconcile([service])
            deadline = time.monotonic() + 10.0
            while "192.168.50.1:53" not in topo.run("router", "ss", "-Hlun").stdout:
                logs = [line.text for line in sup.logs.ring("dnsmasq").lines()]
                assert time.monotonic() < deadline, f"dnsmasq never listened: {logs}"
                await asyncio.sleep(0.05)
            env = await asyncio.to_thread(_client_lease, topo, "lan", tmp_path)
            lease = parse_event("bound", env)
            assert isinstance(lease, LeaseBound)
            topo.add_address("lan", lease.lease.cidr, lease.lease.gateway)
            answer = await asyncio.to_thread(_resolve, topo, "lan", INTERNET_NAME, "192.168.50.1")
            return env, answer
        finally:
            await sup.close(timeout=4.0)
            for event in sup.events:
                if isinstance(event, ServiceStarted):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(event.pid, signal.SIGKILL)

    try:
        with _inside(topo.router):
            env, answer = asyncio.run(scenario())
        leases = (scratch / "leases" / "dnsmasq.leases").read_text()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    assert env["router"] == "192.168.50.1"
    assert env["ip"] in leases  # the lease survived in the bound state directory
    assert INTERNET_ADDR in answer, answer
