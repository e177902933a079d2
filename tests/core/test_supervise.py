"""The service lifecycle state machine, stepped with a manual clock (pure tier)."""

from __future__ import annotations

from oxwrtd.core.supervise import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    DEP_READY_AFTER_S,
    GIVE_UP_AFTER_FAST_EXITS,
    HEALTHY_RUN_S,
    SIGKILL,
    SIGTERM,
    Output,
    Phase,
    RemoveCgroup,
    ServiceExited,
    ServiceGaveUp,
    ServiceNotReady,
    ServiceReady,
    ServiceRemoved,
    ServiceSpawnFailed,
    ServiceStarted,
    Signal,
    Spawn,
    Supervision,
)
from schema.config import Service, Veth

GRACE = 2.0


def svc(name: str, *, depends_on: list[str] | None = None, entry: str = "/bin/true") -> Service:
    return Service(
        name=name,
        rootfs="/",
        entrypoint=[entry],
        veth=Veth(host_ip="10.9.0.1", peer_ip="10.9.0.2"),
        depends_on=depends_on or [],
    )


def spawns(out: list[Output]) -> list[str]:
    return [o.name for o in out if isinstance(o, Spawn)]


def signals(out: list[Output]) -> list[tuple[int, int]]:
    return [(o.pid, o.signal) for o in out if isinstance(o, Signal)]


def started(sup: Supervision, name: str, pid: int, now: float) -> None:
    out = sup.spawned(name, pid, now)
    assert out == [ServiceStarted(name=name, pid=pid, at=now)]


def running(specs: list[Service], now: float = 0.0) -> Supervision:
    sup = Supervision(grace_s=GRACE)
    out = sup.reconcile(specs, now)
    for i, name in enumerate(spawns(out)):
        started(sup, name, 100 + i, now)
    return sup


def test_new_service_spawns_then_runs() -> None:
    sup = Supervision(grace_s=GRACE)
    out = sup.reconcile([svc("a")], 0.0)
    assert out == [Spawn(name="a", spec=svc("a"))]
    assert sup.phase_of("a") is Phase.STARTING
    started(sup, "a", 100, 0.01)
    assert sup.phase_of("a") is Phase.RUNNING
    assert sup.pid_of("a") == 100


def test_no_second_spawn_while_one_is_in_flight() -> None:
    sup = Supervision(grace_s=GRACE)
    sup.reconcile([svc("a")], 0.0)
    assert spawns(sup.tick(1.0)) == []
    assert spawns(sup.reconcile([svc("a")], 2.0)) == []


def test_backoff_doubles_to_the_cap_and_crash_is_reported() -> None:
    sup = running([svc("a")])
    now, pid, expected = 0.0, 100, BACKOFF_INITIAL_S
    for _ in range(GIVE_UP_AFTER_FAST_EXITS - 1):
        out = sup.exited(pid, code=None, signal=9, now=now)
        assert isinstance(out[0], ServiceExited) and out[0].signal == 9 and out[0].code is None
        assert sup.phase_of("a") is Phase.BACKOFF
        assert sup.next_deadline() == now + expected
        assert spawns(sup.tick(now + expected - 0.001)) == []  # not before the backoff
        now += expected
        assert spawns(sup.tick(now)) == ["a"]
        pid += 1
        started(sup, "a", pid, now)
        expected = min(expected * 2, BACKOFF_MAX_S)
    assert expected == BACKOFF_MAX_S


def test_backoff_caps_at_thirty_seconds() -> None:
    sup = running([svc("a")])
    now, pid = 0.0, 100
    delays = []
    for _ in range(GIVE_UP_AFTER_FAST_EXITS - 1):
        sup.exited(pid, code=1, signal=None, now=now)
        deadline = sup.next_deadline()
        assert deadline is not None
        delays.append(round(deadline - now, 3))
        now = deadline
        sup.tick(now)
        pid += 1
        # Each run lasts just under the healthy threshold: still a fast exit.
        started(sup, "a", pid, now)
        now += HEALTHY_RUN_S - 0.5
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[8:] == [25.6] + [BACKOFF_MAX_S] * (GIVE_UP_AFTER_FAST_EXITS - 10)


def test_healthy_run_resets_backoff() -> None:
    sup = running([svc("a")])
    sup.exited(100, code=1, signal=None, now=0.0)
    sup.tick(0.1)
    started(sup, "a", 101, 0.1)
    sup.exited(101, code=1, signal=None, now=0.2)
    assert sup.next_deadline() == 0.2 + 2 * BACKOFF_INITIAL_S
    sup.tick(0.4)
    started(sup, "a", 102, 0.4)
    sup.exited(102, code=0, signal=None, now=0.4 + HEALTHY_RUN_S)
    assert sup.next_deadline() == 0.4 + HEALTHY_RUN_S + BACKOFF_INITIAL_S


def test_gives_up_after_repeated_fast_exits_with_event_and_status() -> None:
    sup = running([svc("a")])
    now, pid = 0.0, 100
    gave_up: list[Output] = []
    for _ in range(GIVE_UP_AFTER_FAST_EXITS):
        out = sup.exited(pid, code=3, signal=None, now=now)
        gave_up = [o for o in out if isinstance(o, ServiceGaveUp)]
        if gave_up:
            break
        now = sup.next_deadline() or now
        sup.tick(now)
        pid += 1
        started(sup, "a", pid, now)
    assert gave_up == [
        ServiceGaveUp(name="a", fast_exits=GIVE_UP_AFTER_FAST_EXITS, last_exit="code 3", at=now)
    ]
    assert sup.phase_of("a") is Phase.GAVE_UP
    assert sup.next_deadline() is None
    assert spawns(sup.tick(now + 1000)) == []
    (line,) = sup.status()
    assert (
        line.phase is Phase.GAVE_UP
        and f"gave up after {GIVE_UP_AFTER_FAST_EXITS} fast exits" in line.detail
    )
    # An explicit restart clears the give-up with a fresh backoff.
    assert spawns(sup.restart("a", now + 1000)) == ["a"]


def test_stop_sends_sigterm_then_sigkill_after_grace_without_duplicate() -> None:
    sup = running([svc("a")])
    assert signals(sup.stop("a", 1.0)) == [(100, SIGTERM)]
    assert sup.phase_of("a") is Phase.STOPPING
    assert sup.next_deadline() == 1.0 + GRACE
    assert signals(sup.tick(1.0 + GRACE - 0.01)) == []
    assert signals(sup.tick(1.0 + GRACE)) == [(100, SIGKILL)]
    assert sup.next_deadline() is None
    assert spawns(sup.tick(100.0)) == []
    sup.exited(100, code=None, signal=SIGKILL, now=100.0)
    assert sup.phase_of("a") is Phase.STOPPED and sup.pid_of("a") is None
    assert spawns(sup.start("a", 101.0)) == ["a"]


def test_restart_waits_for_the_old_process_before_spawning() -> None:
    sup = running([svc("a")])
    out = sup.restart("a", 1.0)
    assert signals(out) == [(100, SIGTERM)] and spawns(out) == []
    assert spawns(sup.tick(1.0 + GRACE)) == []  # SIGKILL sent, but no second instance
    out = sup.exited(100, code=None, signal=SIGKILL, now=4.0)
    assert spawns(out) == ["a"]


def test_dependency_waits_for_uptime_then_starts() -> None:
    sup = Supervision(grace_s=GRACE)
    out = sup.reconcile([svc("app", depends_on=["dns"]), svc("dns")], 0.0)
    assert spawns(out) == ["dns"]
    assert sup.status()[1].detail == "waiting for dns"
    started(sup, "dns", 100, 0.0)
    assert sup.next_deadline() == DEP_READY_AFTER_S
    assert spawns(sup.tick(DEP_READY_AFTER_S - 0.01)) == []
    out = sup.tick(DEP_READY_AFTER_S)
    assert ServiceReady(name="dns", via="uptime", at=DEP_READY_AFTER_S) in out
    assert spawns(out) == ["app"]


def test_readiness_check_passes_before_uptime() -> None:
    sup = Supervision(grace_s=GRACE)
    sup.reconcile([svc("dns"), svc("app", depends_on=["dns"])], 0.0)
    started(sup, "dns", 100, 0.0)
    out = sup.readiness("dns", ok=True, detail="", now=0.05)
    assert out[0] == ServiceReady(name="dns", via="check", at=0.05)
    assert spawns(out) == ["app"]


def test_failed_readiness_check_holds_dependents() -> None:
    sup = Supervision(grace_s=GRACE)
    sup.reconcile([svc("dns"), svc("app", depends_on=["dns"])], 0.0)
    started(sup, "dns", 100, 0.0)
    out = sup.readiness("dns", ok=False, detail="port 53 closed", now=0.1)
    assert out == [ServiceNotReady(name="dns", detail="port 53 closed", at=0.1)]
    assert spawns(sup.tick(5.0)) == []
    assert spawns(sup.readiness("dns", ok=True, detail="", now=6.0)) == ["app"]


def test_spawn_failure_backs_off() -> None:
    sup = Supervision(grace_s=GRACE)
    sup.reconcile([svc("a")], 0.0)
    out = sup.spawn_failed("a", "rootfs missing", 0.0)
    assert out == [ServiceSpawnFailed(name="a", reason="rootfs missing", at=0.0)]
    assert sup.phase_of("a") is Phase.BACKOFF
    assert spawns(sup.tick(BACKOFF_INITIAL_S)) == ["a"]


def test_stop_during_spawn_signals_once_the_pid_is_known() -> None:
    sup = Supervision(grace_s=GRACE)
    sup.reconcile([svc("a")], 0.0)
    assert sup.stop("a", 0.0) == []
    out = sup.spawned("a", 100, 0.01)
    assert signals(out) == [(100, SIGTERM)]
    sup.exited(100, code=0, signal=None, now=0.02)
    assert sup.phase_of("a") is Phase.STOPPED


def test_reload_unchanged_keeps_pid_changed_restarts_only_that_one() -> None:
    sup = running([svc("a"), svc("b")])
    sup.tick(5.0)
    assert sup.reconcile([svc("a"), svc("b")], 5.0) == []
    assert (sup.pid_of("a"), sup.pid_of("b")) == (100, 101)
    changed = svc("b", entry="/bin/sleep")
    out = sup.reconcile([svc("a"), changed], 6.0)
    assert signals(out) == [(101, SIGTERM)]
    out = sup.exited(101, code=0, signal=None, now=6.1)
    assert [o for o in out if isinstance(o, Spawn)] == [Spawn(name="b", spec=changed)]
    assert sup.pid_of("a") == 100


def test_reload_removal_stops_then_removes_cgroup() -> None:
    sup = running([svc("a"), svc("b")])
    out = sup.reconcile([svc("a")], 1.0)
    assert signals(out) == [(101, SIGTERM)]
    assert not [o for o in out if isinstance(o, ServiceRemoved)]  # not before it is gone
    out = sup.exited(101, code=None, signal=SIGTERM, now=1.1)
    assert RemoveCgroup(name="b") in out
    assert ServiceRemoved(name="b", at=1.1) in out
    assert sup.names() == ["a"]


def test_reload_removal_of_stopped_service_removes_cgroup_at_once() -> None:
    sup = running([svc("a"), svc("b")])
    sup.stop("b", 1.0)
    sup.exited(101, code=0, signal=None, now=1.1)
    sup.tick(2.0)
    assert sup.reconcile([svc("a")], 2.0) == [
        RemoveCgroup(name="b"),
        ServiceRemoved(name="b", at=2.0),
    ]


def test_changed_spec_of_a_crashed_service_resets_backoff_and_spawns_now() -> None:
    sup = running([svc("a")])
    for pid in range(100, 103):
        sup.exited(pid, code=1, signal=None, now=0.0)
        sup.tick(sup.next_deadline() or 0.0)
        sup.spawned("a", pid + 1, 0.0)
    sup.exited(103, code=1, signal=None, now=0.0)
    assert spawns(sup.reconcile([svc("a", entry="/bin/false")], 0.0)) == ["a"]


def test_exit_of_an_unknown_pid_is_ignored() -> None:
    sup = running([svc("a")])
    assert sup.exited(4242, code=0, signal=None, now=1.0) == []
    assert sup.phase_of("a") is Phase.RUNNING


def test_shutdown_stops_dependents_first_and_removes_all() -> None:
    sup = Supervision(grace_s=GRACE)
    sup.reconcile([svc("dns"), svc("app", depends_on=["dns"])], 0.0)
    started(sup, "dns", 100, 0.0)
    sup.tick(1.0)
    started(sup, "app", 101, 1.0)
    assert signals(sup.shutdown(2.0)) == [(101, SIGTERM), (100, SIGTERM)]
    sup.exited(101, code=0, signal=None, now=2.1)
    out = sup.exited(100, code=0, signal=None, now=2.2)
    assert out[-1] == RemoveCgroup(name="dns")
    assert not [o for o in out if isinstance(o, ServiceRemoved)]  # stopped, still configured
    assert sup.names() == []


def test_readded_while_stopping_respawns_after_exit() -> None:
    sup = running([svc("a")])
    sup.reconcile([], 1.0)
    sup.reconcile([svc("a")], 1.1)
    out = sup.exited(100, code=0, signal=None, now=1.2)
    assert spawns(out) == ["a"]
    assert not [o for o in out if isinstance(o, ServiceRemoved | RemoveCgroup)]
