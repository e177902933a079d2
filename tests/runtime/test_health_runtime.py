"""The health gate and drift checks through the runtime, against the fakes with a manual clock:
the real Probes with a scripted `ping`, the fake kernel, an in-memory journal. Asserts on what
runs (fake kernel), on the journal and on the running revision."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from journal.memory import MemoryStore
from oxwrtd.control.api import Author
from oxwrtd.eventlog import EventLog
from oxwrtd.runtime import Runtime
from oxwrtd.shell.dataplane import Dataplane
from oxwrtd.shell.fake_netlink import FakeNetlink
from oxwrtd.shell.fake_nft import FakeNft
from oxwrtd.shell.probes import Probes
from schema.codec import decode
from schema.events import AutoReverted, DriftDetected, Event, HealthProbed

KEY = bytes(range(32))
OPERATOR = Author(name="alice", public_key=b"\x01" * 32)
UNREACHABLE = "198.51.100.80"

PUBLIC = """hostname = "{host}"

[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
members = ["lan0"]
address = "{lan}"
prefix = 24

[[firewall.zones]]
name = "lan"
networks = ["lan"]
default_input = "accept"

[control]
listen = ["{lan}:51820"]

[health]
probes = ["kernel", "control", "ping:{target}"]
window_s = 20
interval_s = 10
monitor_s = {monitor}
drift_check_s = {drift}
"""


def public(
    host: str = "r1",
    lan: str = "192.168.50.1",
    target: str = "192.0.2.1",
    monitor: int = 0,
    drift: int = 0,
) -> str:
    return PUBLIC.format(host=host, lan=lan, target=target, monitor=monitor, drift=drift)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Router:
    def __init__(self, tmp: Path) -> None:
        (tmp / "etc").mkdir()
        self.dir = tmp / "etc"
        self.store = MemoryStore()
        self.kernel = FakeNetlink()
        self.kernel.add_device("lan0")
        self.nft = FakeNft()
        self.clock = Clock()
        self.unreachable = {UNREACHABLE}
        self.unbound: list[str] = []
        self.pings: list[list[str]] = []
        self.rt = self.daemon()
        self.probes = Probes(
            kernel=lambda: self.rt.offload(self.rt.kernel_drift),
            control=lambda listen: list(self.unbound),
            services=self.rt.service_states,
            command=self.ping,
        )

    def daemon(self) -> Runtime:
        """A runtime over this router's journal, kernel, files and clock: a new one is a
        restarted daemon."""
        return Runtime(
            events=EventLog(self.store),
            dataplane=Dataplane(self.kernel, self.nft),
            config_dir=self.dir,
            device_key=KEY,
            software="test",
            clock=self.clock,
        )

    def ping(self, argv: list[str], timeout: float) -> tuple[int, str]:
        self.pings.append(argv)
        if argv[-1] in self.unreachable:
            return 1, "1 packets transmitted, 0 received, 100% packet loss, time 0ms"
        return 0, "1 packets transmitted, 1 received"

    def boot(self, text: str) -> None:
        (self.dir / "oxwrt.toml").write_text(text)
        self.rt.boot()
        assert self.rt.state.running == 1

    def push_and_reload(self, text: str) -> None:
        asyncio.run(self.rt.push(text, None, OPERATOR))
        asyncio.run(self.rt.reload(OPERATOR))

    def after(self, seconds: float) -> None:
        """Let `seconds` pass and run whatever health work is due then."""
        self.clock.now += seconds
        asyncio.run(self.rt.health_step(self.probes))

    def events(self) -> list[Event]:
        return [decode(r.tag, r.version, r.payload) for r in self.store.records()]

    def lan_addresses(self) -> set[str]:
        return {a.cidr for a in self.kernel.addrs if a.link == "br-lan" and a.version == 4}


@pytest.fixture
def router(tmp_path: Path) -> Router:
    return Router(tmp_path)


def test_a_revision_whose_probe_fails_is_reverted_and_the_revert_is_not_reverted_again(
    router: Router,
) -> None:
    router.boot(public(target=UNREACHABLE))  # revision 1 fails that probe too
    router.push_and_reload(public(lan="10.7.7.1", target=UNREACHABLE))
    assert router.rt.state.running == 2 and router.lan_addresses() == {"10.7.7.1/24"}
    assert router.rt.health_deadline() == router.clock.now + 10

    router.after(9)
    assert router.rt.state.running == 2 and router.pings == []  # not due yet
    router.after(1)
    s = router.rt.state
    assert s.running == 1 and s.revisions[2].status == "reverted"
    assert router.lan_addresses() == {"192.168.50.1/24"}  # the kernel went back too
    assert "192.168.50.1" in (router.dir / "oxwrt.toml").read_text()
    (revert,) = [e for e in router.events() if isinstance(e, AutoReverted)]
    assert (revert.from_revision, revert.to_revision) == (2, 1)
    assert f"ping:{UNREACHABLE}" in revert.reason and "100% packet loss" in revert.reason
    probed = {e.target: e.ok for e in router.events() if isinstance(e, HealthProbed)}
    assert probed == {"kernel": True, "control": True, f"ping:{UNREACHABLE}": False}

    # revision 1 came back by a revert: its failures are journaled, never reverted again
    router.after(10)
    router.after(10)
    assert router.rt.state.running == 1
    assert router.rt.state.probes[f"ping:{UNREACHABLE}"].failures == 3
    assert len([e for e in router.events() if isinstance(e, AutoReverted)]) == 1


def test_after_the_window_a_failing_probe_is_recorded_and_the_revision_stays(
    router: Router,
) -> None:
    router.boot(public())
    router.push_and_reload(public(host="r2", monitor=60))
    router.after(10)
    router.after(10)  # the last round inside the 20 s window: healthy
    assert router.rt.health_deadline() == router.clock.now + 60
    router.unreachable.add("192.0.2.1")
    router.after(60)
    s = router.rt.state
    assert s.running == 2 and s.revisions[2].status == "applied"
    assert not s.probes["ping:192.0.2.1"].ok
    assert not any(isinstance(e, AutoReverted) for e in router.events())


def test_control_plane_not_listening_reverts(router: Router) -> None:
    router.boot(public())
    router.push_and_reload(public(host="r2"))
    router.unbound = ["192.168.50.1:51820"]
    router.after(10)
    assert router.rt.state.running == 1
    assert "not listening on: 192.168.50.1:51820" in router.rt.state.probes["control"].detail


def test_a_reload_during_the_window_replaces_the_watch(router: Router) -> None:
    router.boot(public())
    router.push_and_reload(public(host="r2"))
    router.clock.now += 5
    router.push_and_reload(public(host="r3", target=UNREACHABLE))
    router.after(5)  # revision 2's round would have been due now: nothing runs
    assert router.pings == [] and router.rt.state.running == 3
    router.after(5)
    assert router.rt.state.running == 2  # revision 3's own round reverts to the one before it


def test_drift_found_by_the_periodic_check_is_repaired_and_journaled(router: Router) -> None:
    router.boot(public(drift=30))
    router.after(30)  # the first check: nothing differs, nothing journaled
    assert not any(isinstance(e, DriftDetected) for e in router.events())
    # someone removes the LAN address and a firewall rule by hand
    router.kernel.addrs = {a for a in router.kernel.addrs if a.link != "br-lan"}
    router.nft.tables["inet oxwrt"].pop()
    router.after(29)
    assert router.lan_addresses() == set()  # not due yet
    router.after(1)
    assert router.lan_addresses() == {"192.168.50.1/24"}
    drift = [e for e in router.events() if isinstance(e, DriftDetected)]
    assert {e.kind for e in drift} == {"network", "firewall"}
    assert all(e.detail.endswith("(repaired)") for e in drift)
    assert any("192.168.50.1" in e.detail for e in drift)
    assert router.rt.state.drift == len(drift)
    assert router.rt.kernel_drift() == []
    router.after(30)  # repaired for good: the next check finds nothing
    assert len([e for e in router.events() if isinstance(e, DriftDetected)]) == len(drift)


def test_kernel_probe_fails_on_drift_inside_the_window(router: Router) -> None:
    router.boot(public())
    router.push_and_reload(public(lan="10.7.7.1"))
    router.kernel.addrs = {a for a in router.kernel.addrs if a.link != "br-lan"}
    router.after(10)
    assert router.rt.state.running == 1
    assert "10.7.7.1" in router.rt.state.probes["kernel"].detail


def test_a_lease_reapplying_the_revision_inside_its_window_keeps_the_gate(router: Router) -> None:
    from schema.events import LeaseAcquired

    router.boot(public(target=UNREACHABLE))
    router.push_and_reload(public(lan="10.7.7.1", target=UNREACHABLE))
    router.after(5)
    lease = LeaseAcquired(interface="wan0", address="203.0.113.7/24", gateway="203.0.113.1")
    router.rt.observe([lease], reapply=True)  # a WAN lease re-applies revision 2 ("fact")
    router.after(5)
    s = router.rt.state
    assert s.running == 1 and s.revisions[2].status == "reverted"


# ---------------------------------------------------------------- restarts inside the window


def restart(router: Router, *, orderly: bool = False) -> list[str]:
    """The daemon dies (or, `orderly`, stops as asked) and starts again: a new Runtime on the
    same journal, kernel and files."""
    if orderly:
        router.rt.stopping("test")
    router.rt = router.daemon()
    return router.rt.boot()


def test_a_restart_inside_the_window_keeps_the_gate(router: Router) -> None:
    router.boot(public())
    router.push_and_reload(public(lan="10.7.7.1"))
    router.after(10)  # one healthy round, the window (20 s) still open
    lines = restart(router)
    assert any("still inside its health window (1 unclean" in line for line in lines)
    assert router.rt.state.running == 2 and router.lan_addresses() == {"10.7.7.1/24"}
    assert router.rt.health_deadline() == router.clock.now + 10  # a full window again
    router.unreachable.add("192.0.2.1")
    router.after(10)  # a failure inside the resumed window reverts, as before the restart
    assert router.rt.state.running == 1 and router.lan_addresses() == {"192.168.50.1/24"}


def test_restarting_again_before_the_window_passes_reverts_at_boot(router: Router) -> None:
    router.boot(public())
    router.push_and_reload(public(lan="10.7.7.1"))
    restart(router)
    status = asyncio.run(router.rt.status())
    assert (status.probation_fallback, status.probation_restarts) == (1, 1)
    lines = restart(router)
    assert any("restarted 2 times before revision 2 passed" in line for line in lines)
    assert asyncio.run(router.rt.status()).probation_fallback is None
    s = router.rt.state
    assert s.running == 1 and s.revisions[2].status == "reverted" and s.probation is None
    assert router.lan_addresses() == {"192.168.50.1/24"}
    reverts = [e for e in router.events() if isinstance(e, AutoReverted)]
    assert [(e.from_revision, e.to_revision) for e in reverts] == [(2, 1)]
    assert (router.dir / "oxwrt.toml").read_text() == public()  # the files follow the revert


def test_restarts_after_the_window_passed_do_not_count(router: Router) -> None:
    router.boot(public())
    router.push_and_reload(public(lan="10.7.7.1"))
    router.after(10)
    assert asyncio.run(router.rt.status()).probation_fallback == 1
    router.after(10)  # the window's last round passed: probation ended, journaled
    assert router.rt.state.probation is None
    assert asyncio.run(router.rt.status()).probation_fallback is None
    restart(router)
    restart(router)
    assert router.rt.state.running == 2 and router.lan_addresses() == {"10.7.7.1/24"}


def test_orderly_restarts_inside_the_window_resume_the_gate_without_reverting(
    router: Router,
) -> None:
    router.boot(public())
    router.push_and_reload(public(lan="10.7.7.1"))
    restart(router, orderly=True)
    restart(router, orderly=True)
    assert router.rt.state.running == 2 and router.lan_addresses() == {"10.7.7.1/24"}
    assert router.rt.health_deadline() == router.clock.now + 10  # still gated
