"""The services glue against the fakes: a real Runtime (in-memory journal, fake kernel), a fake
supervisor that keeps a PID per unchanged service, and the real lease socket fed datagrams.

Asserts on what the operator and the journal see: the service set the supervisor runs, which
PIDs changed, the rendered dnsmasq.conf, journaled events, the fake kernel's WAN address and
default route, status rows, restart and logs replies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import pytest

from journal.memory import MemoryStore
from oxwrtd.control.api import ApiError, Author
from oxwrtd.core import supervise
from oxwrtd.core.dhcp_client import ClientPaths
from oxwrtd.core.state import Lease as LeaseRow
from oxwrtd.core.state import ServiceRow
from oxwrtd.eventlog import EventLog
from oxwrtd.runtime import Runtime
from oxwrtd.services import (
    ServicePaths,
    Services,
    journal_event,
    moves_wan,
    service_problems,
    service_set,
    state_dirs,
    status_rows,
)
from oxwrtd.shell.dataplane import Dataplane
from oxwrtd.shell.fake_netlink import FakeNetlink
from oxwrtd.shell.fake_nft import FakeNft
from oxwrtd.shell.logring import LogBook
from oxwrtd.shell.supervisor import StatusLine
from schema import events as ev
from schema.config import Config, Service
from schema.events import LeaseAcquired
from schema.load import load_text

KEY = bytes(range(32))
OPERATOR = Author(name="alice", public_key=b"\x01" * 32)
ISP_GATEWAY = "203.0.113.1"

PUBLIC = """hostname = "r1"

[[networks]]
name = "wan"
type = "wan"
iface = "wan0"
mode = "dhcp"

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
members = ["lan0"]
address = "192.168.50.1"
prefix = 24

[[firewall.zones]]
name = "lan"
networks = ["lan"]
default_input = "accept"

[[firewall.zones]]
name = "wan"
networks = ["wan"]
masquerade = true

[[firewall.forwardings]]
src = "lan"
dest = "wan"

[dns]
listen_v4 = ["192.168.50.1"]
listen_port = 53

[[dns.upstreams]]
ip = "9.9.9.9"
protocol = "udp"

[dhcp]
network = "lan"
lease_time = "{lease}"
pool_start = "192.168.50.100"
pool_end = "192.168.50.250"

[[services]]
name = "dnsmasq"
rootfs = "/"
entrypoint = ["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/run/dnsmasq/dnsmasq.conf"]
net_mode = "host"
binds = [
  {{ source = "/run/oxwrt/dnsmasq.conf", target = "/run/dnsmasq/dnsmasq.conf" }},
  {{ source = "/var/lib/oxwrt/dnsmasq", target = "/var/lib/misc", readonly = false }},
]
{extra}
[control]
listen = ["192.168.50.1:51820"]
"""
NTP_SERVICE = """
[[services]]
name = "ntp"
rootfs = "/"
entrypoint = ["/usr/sbin/chronyd", "-d"]
net_mode = "host"
"""


def public(lease: str = "12h", extra: str = "") -> str:
    return PUBLIC.format(lease=lease, extra=extra)


def config_of(text: str) -> Config:
    return load_text(text).raise_for_issues()


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class FakeSupervisor:
    """Keeps one PID per service while its spec is unchanged, as the real one does (the lab test
    proves that); emits the core's events through `on_event`."""

    def __init__(self, on_event: Callable[[supervise.Event], None]) -> None:
        self.on_event = on_event
        self.logs = LogBook()
        self.specs: dict[str, Service] = {}
        self.pids: dict[str, int] = {}
        self.restarts: dict[str, int] = {}
        self._next_pid = 100

    async def start(self) -> None:
        pass

    async def close(self, timeout: float | None = None) -> None:
        for name in list(self.specs):
            self.exit(name, signal=15)

    def reconcile(self, services: Sequence[Service]) -> None:
        wanted = {s.name: s for s in services}
        for name in list(self.specs):
            if name not in wanted:
                self.exit(name, signal=15)
                del self.specs[name]
                self.on_event(supervise.ServiceRemoved(name=name, at=0.0))
        for svc in services:
            if self.specs.get(svc.name) == svc:
                continue
            if svc.name in self.pids:
                self.exit(svc.name, signal=15)
            self.specs[svc.name] = svc
            self.spawn(svc.name)

    def restart(self, name: str) -> None:
        self.exit(name, signal=15)
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.spawn(name)

    def spawn(self, name: str) -> None:
        self._next_pid += 1
        self.pids[name] = self._next_pid
        self.logs.ring(name).add(f"{name} says hello", 0.0)
        self.on_event(supervise.ServiceStarted(name=name, pid=self._next_pid, at=0.0))

    def exit(self, name: str, *, code: int | None = None, signal: int | None = None) -> None:
        pid = self.pids.pop(name, None)
        if pid is not None:
            self.on_event(supervise.ServiceExited(name=name, pid=pid, code=code, signal=signal,
                                                  ran_for=1.0, at=0.0))  # fmt: skip

    def status(self) -> list[StatusLine]:
        return [
            StatusLine(
                name=name,
                phase="running" if name in self.pids else "backoff",
                pid=self.pids.get(name),
                restarts=self.restarts.get(name, 0),
                detail="",
                last_log=self.logs.ring(name).last_line(),
            )
            for name in self.specs
        ]


class World:
    """A runtime over fakes with Services wired as the daemon wires them."""

    def __init__(
        self, tmp: Path, store: MemoryStore | None = None, live: dict[int, float] | None = None
    ) -> None:
        self.tmp = tmp
        self.etc = tmp / "etc"
        self.etc.mkdir(exist_ok=True)
        self.paths = ServicePaths(run_dir=tmp / "run", state_dir=tmp / "state")
        self.store = store or MemoryStore()
        self.kernel = FakeNetlink()
        for dev in ("wan0", "lan0"):
            self.kernel.add_device(dev)
        self.clock = Clock()
        self.rt = Runtime(
            events=EventLog(self.store),
            dataplane=Dataplane(self.kernel, FakeNft()),
            config_dir=self.etc,
            device_key=KEY,
            software="test",
            clock=self.clock,
        )
        self.sup: FakeSupervisor | None = None
        # processes "alive" on this fake machine (pid -> start); kill_matching ends them
        self.live = live if live is not None else {}
        self.killed: list[int] = []
        self.services = Services(self.rt, self.paths, supervisor=self._supervisor, python="py",
                                 started_at=self.live.get, kill=self._kill)  # fmt: skip
        self.rt.services = self.services
        self.rt.on_applied.append(self.services.on_applied)

    def _kill(self, pids: list[int], still_ours: Callable[[int], bool]) -> list[int]:
        ended = [pid for pid in pids if pid in self.live and still_ours(pid)]
        for pid in ended:
            del self.live[pid]
        self.killed += ended
        return ended

    def _supervisor(self, on_event: Callable[[supervise.Event], None]) -> FakeSupervisor:
        self.sup = FakeSupervisor(on_event)
        return self.sup

    @property
    def supervisor(self) -> FakeSupervisor:
        assert self.sup is not None
        return self.sup

    async def settle(self) -> None:
        """Let the reconcile scheduled from the kernel thread and the journaling task run."""
        for _ in range(20):
            await asyncio.sleep(0.01)

    async def boot(self, text: str) -> None:
        (self.etc / "oxwrt.toml").write_text(text)
        await self.services.start()
        await self.rt.offload(self.rt.boot)
        await self.settle()

    async def push_reload(self, text: str) -> None:
        await self.rt.push(text, None, OPERATOR)
        await self.rt.reload(OPERATOR)
        await self.settle()

    def lease(self, address: str, gateway: str = ISP_GATEWAY, event: str = "bound") -> None:
        env = {"interface": "wan0", "ip": address, "mask": "24", "router": gateway,
               "dns": gateway, "lease": "3600"}  # fmt: skip
        self.services.receiver.feed(json.dumps({"v": 1, "event": event, "env": env}).encode())

    def journaled(self, kind: type[ev.Event]) -> list[ev.Event]:
        from schema.codec import decode

        found = [decode(r.tag, r.version, r.payload) for r in self.store.records()]
        return [e for e in found if isinstance(e, kind)]

    def wan_addresses(self) -> set[str]:
        return {a.cidr for a in self.kernel.addrs if a.link == "wan0" and a.version == 4}

    def default_gateways(self) -> set[str | None]:
        return {r.gateway for r, _ in self.kernel.routes.values() if r.dest == "0.0.0.0/0"}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


# ---------------------------------------------------------------- pure pieces


def test_the_service_set_adds_a_dhcp_client_per_dhcp_wan_and_relocates_canonical_binds(
    tmp_path: Path,
) -> None:
    paths = ServicePaths(run_dir=tmp_path / "run", state_dir=tmp_path / "state")
    client = ClientPaths(hook="/hook", socket=str(paths.dhcp_socket))
    services, problems = service_set(config_of(public(extra=NTP_SERVICE)), paths, client)
    assert [s.name for s in services] == ["dnsmasq", "ntp", "dhcp-wan"]
    assert problems == []
    dnsmasq = services[0]
    assert [(b.source, b.target) for b in dnsmasq.binds] == [
        (str(tmp_path / "run" / "dnsmasq.conf"), "/run/dnsmasq/dnsmasq.conf"),
        (str(tmp_path / "state" / "dnsmasq"), "/var/lib/misc"),
    ]
    dhcp = services[2]
    assert dhcp.entrypoint[:5] == ["/bin/busybox", "udhcpc", "-f", "-i", "wan0"]
    assert dhcp.env["OXWRT_DHCP_SOCKET"] == str(paths.dhcp_socket)
    assert state_dirs(services, paths) == [tmp_path / "state" / "dnsmasq"]
    # The canonical dirs are where they are on a router: nothing moves.
    router = ServicePaths(run_dir=Path("/run/oxwrt"), state_dir=Path("/var/lib/oxwrt"))
    assert router.relocate("/run/oxwrt/dnsmasq.conf") == "/run/oxwrt/dnsmasq.conf"
    assert paths.relocate("/run/oxwrtd.conf") == "/run/oxwrtd.conf"  # a prefix, not a dir


def test_a_service_named_like_a_dhcp_client_keeps_its_name_and_the_wan_runs_none(
    tmp_path: Path,
) -> None:
    paths = ServicePaths(run_dir=tmp_path / "run", state_dir=tmp_path / "state")
    text = public(extra=NTP_SERVICE.replace('name = "ntp"', 'name = "dhcp-wan"'))
    services, problems = service_set(config_of(text), paths, ClientPaths(hook="/h", socket="/s"))
    assert [s.name for s in services] == ["dnsmasq", "dhcp-wan"]
    assert services[1].entrypoint[0] == "/usr/sbin/chronyd"
    assert problems == ['WAN "wan" runs no DHCP client: a [[services]] entry is named dhcp-wan']


def test_a_lease_moves_the_wan_only_when_its_address_or_gateway_changes() -> None:
    config = config_of(public())
    new = LeaseAcquired(interface="wan0", address="203.0.113.7/24", gateway=ISP_GATEWAY)
    same = LeaseRow(interface="wan0", address="203.0.113.7/24", gateway=ISP_GATEWAY, at=1.0)
    assert moves_wan(config, None, new)
    assert not moves_wan(config, same, new)  # a renewal
    assert moves_wan(config, msgspec.structs.replace(same, address="203.0.113.8/24"), new)
    assert moves_wan(config, msgspec.structs.replace(same, gateway="203.0.113.2"), new)
    assert not moves_wan(config, None, msgspec.structs.replace(new, interface="eth9"))
    assert not moves_wan(None, None, new)  # nothing applied yet


def test_supervisor_events_map_to_journal_events() -> None:
    started = supervise.ServiceStarted(name="a", pid=7, at=0.0)
    exited = supervise.ServiceExited(name="a", pid=7, code=None, signal=9, ran_for=2.0, at=1.0)
    gave_up = supervise.ServiceGaveUp(name="a", fast_exits=15, last_exit="code 1", at=2.0)
    assert journal_event(started, 3) == ev.ServiceStarted(name="a", pid=7, generation=3)
    assert journal_event(exited, 0) == ev.ServiceExited(name="a", pid=7, code=None, signal=9)
    assert journal_event(gave_up, 0) == ev.ServiceGaveUp(name="a", restarts=15, reason="code 1")
    removed = supervise.ServiceRemoved(name="a", at=3.0)
    assert journal_event(removed, 0) == ev.ServiceRemoved(name="a")
    failed = supervise.ServiceSpawnFailed(name="a", reason="exec: no such file", at=0.0)
    assert journal_event(failed, 0) is None  # the log ring and status say it


def test_status_rows_take_uptime_from_the_journal_and_problems_name_gave_up_services() -> None:
    lines = [
        StatusLine(name="a", phase="running", pid=7, restarts=1, detail="", last_log="hi"),
        StatusLine(name="b", phase="gave_up", pid=None, restarts=15,
                         detail="gave up after 15 fast exits; last: spawn failed: exec x",
                         last_log="oxwrtd: spawn failed: exec x", unenforced=["pids_max"]),
    ]  # fmt: skip
    rows = {"a": ServiceRow(name="a", state="running", pid=7, since=100.0)}
    out = status_rows(lines, rows, now=160.5)
    assert [(r.name, r.state, r.pid, r.uptime_secs, r.last_log) for r in out] == [
        ("a", "running", 7, 60, "hi"),
        ("b", "gave_up", None, 0, "oxwrtd: spawn failed: exec x"),
    ]
    assert service_problems(lines) == [
        "service b: gave up after 15 fast exits; last: spawn failed: exec x",
        "service b: not enforced on this kernel: pids_max",
    ]


# ---------------------------------------------------------------- the runtime with services


def test_boot_renders_dnsmasq_and_runs_the_set_and_events_are_journaled(world: World) -> None:
    async def scenario() -> None:
        await world.boot(public())
        assert sorted(world.supervisor.pids) == ["dhcp-wan", "dnsmasq"]
        conf = (world.paths.run_dir / "dnsmasq.conf").read_text()
        assert "dhcp-range=" in conf and "192.168.50.100" in conf
        assert (world.paths.state_dir / "dnsmasq").is_dir()  # the leases' writable bind
        pid = world.supervisor.pids["dnsmasq"]
        assert set(world.journaled(ev.ServiceStarted)) == {
            ev.ServiceStarted(name="dnsmasq", pid=pid, generation=0),
            ev.ServiceStarted(name="dhcp-wan", pid=world.supervisor.pids["dhcp-wan"]),
        }
        assert world.rt.state.services["dnsmasq"].state == "running"
        world.supervisor.exit("dnsmasq", signal=9)
        await world.settle()
        assert world.journaled(ev.ServiceExited) == [
            ev.ServiceExited(name="dnsmasq", pid=pid, signal=9)
        ]
        assert world.rt.state.services["dnsmasq"].last_signal == 9
        await world.services.close()

    asyncio.run(scenario())


def test_a_new_lease_reapplies_the_running_revision_and_a_renewal_does_not(world: World) -> None:
    async def scenario() -> None:
        await world.boot(public())
        assert world.wan_addresses() == set() and world.default_gateways() == set()
        applied = len(world.journaled(ev.ConfigApplied))
        before = await world.rt.status()
        assert (before.wan, before.active_wan) == (None, None)
        assert [(w.name, w.healthy) for w in before.wans] == [("wan", False)]
        assert before.firewall_rules > 0

        world.lease("203.0.113.7")
        await world.settle()
        assert world.wan_addresses() == {"203.0.113.7/24"}
        assert world.default_gateways() == {ISP_GATEWAY}
        assert len(world.journaled(ev.ConfigApplied)) == applied + 1
        assert world.rt.state.leases["wan0"].address == "203.0.113.7/24"
        after = await world.rt.status()  # the operator sees the lease
        assert after.wan is not None and (
            after.wan.address,
            after.wan.gateway,
            after.active_wan,
        ) == (
            "203.0.113.7",
            ISP_GATEWAY,
            "wan",
        )
        assert after.wan.lease_seconds == 3600

        world.lease("203.0.113.7", event="renew")
        await world.settle()
        assert len(world.journaled(ev.LeaseAcquired)) == 2  # journaled all the same
        assert len(world.journaled(ev.ConfigApplied)) == applied + 1

        world.lease("203.0.113.9")  # a new address after a NAK, say
        await world.settle()
        assert world.wan_addresses() == {"203.0.113.9/24"}
        assert len(world.journaled(ev.ConfigApplied)) == applied + 2
        # the unchanged services were not touched by the re-applies
        assert world.supervisor.restarts == {}
        assert world.journaled(ev.ServiceExited) == []
        await world.services.close()

    asyncio.run(scenario())


def test_reload_keeps_unchanged_services_restarts_dnsmasq_on_a_new_conf_and_stops_removed(
    world: World,
) -> None:
    async def scenario() -> None:
        await world.boot(public(extra=NTP_SERVICE))
        pids = dict(world.supervisor.pids)
        assert sorted(pids) == ["dhcp-wan", "dnsmasq", "ntp"]

        await world.push_reload(public(lease="2h", extra=NTP_SERVICE))  # only the conf changes
        assert "7200" in (world.paths.run_dir / "dnsmasq.conf").read_text()
        assert world.supervisor.restarts == {"dnsmasq": 1}
        assert world.supervisor.pids["dnsmasq"] != pids["dnsmasq"]
        assert world.supervisor.pids["ntp"] == pids["ntp"]
        assert world.supervisor.pids["dhcp-wan"] == pids["dhcp-wan"]

        pids = dict(world.supervisor.pids)
        await world.push_reload(public(lease="2h"))  # ntp removed, dnsmasq.conf unchanged
        assert sorted(world.supervisor.pids) == ["dhcp-wan", "dnsmasq"]
        assert world.supervisor.pids["dnsmasq"] == pids["dnsmasq"]
        assert world.supervisor.restarts == {"dnsmasq": 1}
        assert "ntp" not in world.rt.state.services  # the operator's status forgets it
        assert world.journaled(ev.ServiceRemoved) == [ev.ServiceRemoved(name="ntp")]
        await world.services.close()

    asyncio.run(scenario())


def test_a_service_dropped_while_the_daemon_was_down_leaves_the_table_at_boot(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        first = World(tmp_path)
        await first.boot(public(extra=NTP_SERVICE))
        await first.services.close()
        assert sorted(first.rt.state.services) == ["dhcp-wan", "dnsmasq", "ntp"]

        # the operator edits the file offline; the next boot adopts it
        second = World(tmp_path, store=first.store)
        await second.boot(public())
        assert sorted(second.rt.state.services) == ["dhcp-wan", "dnsmasq"]
        assert second.journaled(ev.ServiceRemoved) == [ev.ServiceRemoved(name="ntp")]
        await second.push_reload(public(lease="2h"))  # swept once, not on every apply
        assert second.journaled(ev.ServiceRemoved) == [ev.ServiceRemoved(name="ntp")]
        await second.services.close()

    asyncio.run(scenario())


def test_status_restart_and_logs_through_the_runtime(world: World) -> None:
    async def scenario() -> None:
        await world.boot(public())
        status = await world.rt.status()
        assert [(s.name, s.state) for s in status.services] == [
            ("dnsmasq", "running"),
            ("dhcp-wan", "running"),
        ]
        assert status.services[0].last_log == "dnsmasq says hello"
        old = world.supervisor.pids["dnsmasq"]
        out = await world.rt.restart("dnsmasq", OPERATOR)
        assert out.lines == ["restarting dnsmasq"] and out.running == 1
        assert world.supervisor.pids["dnsmasq"] != old
        assert [line async for line in world.rt.logs("dnsmasq", follow=False)] == [
            "dnsmasq says hello",
            "dnsmasq says hello",
        ]
        with pytest.raises(ApiError) as err:
            await world.rt.restart("hostapd", OPERATOR)
        assert err.value.code == "not-found" and "dnsmasq, dhcp-wan" in err.value.message
        with pytest.raises(ApiError):
            _ = [line async for line in world.rt.logs("hostapd", follow=False)]
        await world.services.close()

    asyncio.run(scenario())


def test_bad_lease_reports_show_in_status_and_change_nothing(world: World) -> None:
    async def scenario() -> None:
        await world.boot(public())
        world.services.receiver.feed(b'{"v": 1, "event": "bound", "env": {"interface": "wan0"}}')
        await world.settle()
        assert world.journaled(ev.LeaseAcquired) == []
        status = await world.rt.status()
        assert status.problems == ['WAN DHCP report refused: event "bound" without `ip`']
        await world.services.close()

    asyncio.run(scenario())


def test_without_upstreams_dnsmasq_follows_the_lease_dns_and_restarts(world: World) -> None:
    no_upstreams = public().replace('\n[[dns.upstreams]]\nip = "9.9.9.9"\nprotocol = "udp"\n', "")

    async def scenario() -> None:
        await world.boot(no_upstreams)
        conf = world.paths.run_dir / "dnsmasq.conf"
        assert "server=" not in conf.read_text()
        world.lease("203.0.113.7")
        await world.settle()
        assert f"server={ISP_GATEWAY}" in conf.read_text()
        assert world.supervisor.restarts == {"dnsmasq": 1}
        await world.services.close()

    asyncio.run(scenario())


CHRONY = """
[[services]]
name = "chrony"
rootfs = "/"
entrypoint = ["/usr/sbin/chronyd", "-d", "-f", "/run/chrony/chrony.conf"]
net_mode = "host"
binds = [{{ source = "/run/oxwrt/chrony.conf", target = "/run/chrony/chrony.conf" }}]

[ntp]
poll_min = {poll_min}
listen = ["192.168.50.1:123"]

[[ntp.sources]]
mode = "pool"
address = "pool.ntp.org"
count = 4
"""


def test_chrony_conf_is_rendered_from_ntp_and_only_chrony_restarts_when_it_changes(
    world: World,
) -> None:
    async def scenario() -> None:
        await world.boot(public(extra=CHRONY.format(poll_min=4)))
        conf = world.paths.run_dir / "chrony.conf"
        assert "pool pool.ntp.org iburst maxsources 4" in conf.read_text()
        assert "allow 192.168.50.0/24" in conf.read_text()
        pids = dict(world.supervisor.pids)

        await world.push_reload(public(extra=CHRONY.format(poll_min=6)))
        assert "minpoll 6" in conf.read_text()
        assert world.supervisor.restarts == {"chrony": 1}
        assert world.supervisor.pids["dnsmasq"] == pids["dnsmasq"]
        await world.services.close()

    asyncio.run(scenario())


def test_a_lost_lease_removes_the_wan_address_and_route_and_is_journaled(world: World) -> None:
    async def scenario() -> None:
        await world.boot(public())
        world.lease("203.0.113.7", event="deconfig")  # udhcpc's start-up deconfig: nothing held
        await world.settle()
        assert world.journaled(ev.LeaseLost) == []
        world.lease("203.0.113.7")
        await world.settle()
        assert world.wan_addresses() == {"203.0.113.7/24"}
        world.lease("203.0.113.7", event="deconfig")
        await world.settle()
        assert world.wan_addresses() == set() and world.default_gateways() == set()
        assert [e.interface for e in world.journaled(ev.LeaseLost)] == ["wan0"]
        assert "wan0" not in world.rt.state.leases
        await world.services.close()

    asyncio.run(scenario())


def test_services_an_earlier_daemon_left_running_are_killed_before_new_ones_start(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        first = World(tmp_path)
        await first.boot(public(extra=NTP_SERVICE))
        rows = first.rt.state.services
        left = {name: rows[name] for name in ("dnsmasq", "ntp")}
        # the daemon dies without stopping them (no close): dnsmasq and ntp live on; dhcp-wan's
        # PID now belongs to some other process that started much later
        live = {row.pid: row.since - 0.2 for row in left.values() if row.pid is not None}
        other = rows["dhcp-wan"].pid
        assert other is not None
        live[other] = rows["dhcp-wan"].since + 600
        first.supervisor.pids.clear()  # so closing journals no exits: the daemon just died
        await first.services.close()

        earlier = len(list(first.store.records()))
        second = World(tmp_path, store=first.store, live=live)
        await second.boot(public(extra=NTP_SERVICE))
        assert sorted(second.killed) == sorted(row.pid for row in left.values())
        assert list(second.live) == [other]  # a reused PID is left alone
        ended = second.journaled(ev.ServiceExited)
        assert sorted((e.name, e.pid, e.signal) for e in ended) == sorted(
            (name, row.pid, 9) for name, row in left.items()
        )
        # journaled before the new instances started, and the table shows the new ones
        tags = [r.tag for r in second.store.records()][earlier:]
        assert tags.index("service.exited") < tags.index("service.started")
        assert second.rt.state.services["ntp"].pid == second.supervisor.pids["ntp"]
        await second.services.close()

    asyncio.run(scenario())
