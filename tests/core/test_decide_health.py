"""The health gate and drift reports in the transaction: decide + fold with a manual clock, the
watch from core/health.py deciding when a round may revert."""

from __future__ import annotations

from oxwrtd.core.decide import (
    Apply,
    ApplyOutcome,
    Boot,
    Decision,
    DriftReport,
    HealthReport,
    Propose,
    Reload,
    Request,
    Stop,
    decide,
    next_deadline,
)
from oxwrtd.core.fold import fold
from oxwrtd.core.health import report, watch
from oxwrtd.core.state import State, initial
from schema.config import Health
from schema.events import AutoReverted, DriftDetected, HealthProbed, ProbationEnded

CONFIG = """
hostname = "{host}"
[[networks]]
name = "lan"
type = "lan"
bridge = "br-lan"
address = "192.168.50.1"
prefix = 24
[control]
listen = ["192.168.50.1:51820"]
"""
HEALTH = Health(probes=["kernel", "ping:198.51.100.80"], window_s=60, interval_s=10)
PING_DOWN = [
    HealthProbed(target="kernel", ok=True, latency_ms=1.5),
    HealthProbed(target="ping:198.51.100.80", ok=False, detail="100% packet loss"),
]
ALL_OK = [
    HealthProbed(target="kernel", ok=True),
    HealthProbed(target="ping:198.51.100.80", ok=True),
]


class World:
    """decide + fold, and a kernel that takes every apply; `applies` is what it was told."""

    def __init__(self) -> None:
        self.state: State = initial()
        self.seq = 0
        self.now = 1000.0
        self.applies: list[Apply] = []

    def send(self, request: Request) -> Decision:
        decision = decide(self.state, request, self.now)
        assert decision.rejected is None, decision.rejected
        self._journal(decision)
        for effect in decision.effects:
            assert isinstance(effect, Apply)
            self.applies.append(effect)
            self.send(ApplyOutcome(apply=effect, ok=True))
        return decision

    def _journal(self, decision: Decision) -> None:
        facts = []
        for event in decision.events:
            self.seq += 1
            facts.append((self.seq, self.now, event))
        self.state = fold(self.state, facts)

    def two_revisions(self, **reload: float) -> None:
        """Revision 1 runs, then revision 2 is reloaded over it."""
        self.send(Propose(public_toml=CONFIG.format(host="a")))
        self.send(Reload())
        self.send(Propose(public_toml=CONFIG.format(host="b")))
        self.send(Reload(**reload))  # type: ignore[arg-type]
        assert self.state.running == 2


def test_a_failed_probe_inside_the_window_reverts_and_every_result_is_journaled() -> None:
    w = World()
    w.two_revisions()
    gate = watch(HEALTH, 2, "reload", 1, w.now)
    assert gate is not None
    w.now = gate.due or 0.0
    _, request = report(gate, PING_DOWN)
    d = w.send(request)
    assert [type(e) for e in d.events] == [HealthProbed, HealthProbed, AutoReverted]
    revert = d.events[2]
    assert isinstance(revert, AutoReverted) and (revert.from_revision, revert.to_revision) == (2, 1)
    assert (
        "ping:198.51.100.80 failed 1 round(s)" in revert.reason and "packet loss" in revert.reason
    )
    assert w.applies[-1] == Apply(revision=1, fallback=None, why="revert")
    assert w.state.running == 1 and w.state.revisions[2].status == "reverted"
    probe = w.state.probes["ping:198.51.100.80"]
    assert not probe.ok and probe.failures == 1 and probe.detail == "100% packet loss"
    assert w.state.probes["kernel"].latency_ms == 1.5
    assert "reverting to revision 1" in d.reply


def test_after_the_window_a_failure_is_only_recorded() -> None:
    w = World()
    w.two_revisions()
    gate = watch(
        Health(probes=HEALTH.probes, window_s=10, interval_s=10, monitor_s=30),
        2,
        "reload",
        1,
        w.now,
    )
    assert gate is not None
    gate, first = report(gate, ALL_OK)
    w.send(first)
    _, late = report(gate, PING_DOWN)  # the monitoring round, due after the window closed
    d = w.send(late)
    assert [type(e) for e in d.events] == [HealthProbed, HealthProbed]
    assert d.effects == [] and w.state.running == 2
    assert "ping:198.51.100.80 failed: 100% packet loss" in d.reply


def test_a_revert_that_fails_its_probes_is_reported_not_reverted_again() -> None:
    w = World()
    w.two_revisions()
    gate = watch(HEALTH, 2, "reload", 1, w.now)
    assert gate is not None
    w.send(report(gate, PING_DOWN)[1])
    back = w.applies[-1]
    assert back.why == "revert" and w.state.running == 1
    after = watch(HEALTH, back.revision, back.why, back.fallback, w.now)  # what the runtime starts
    assert after is not None
    d = w.send(report(after, PING_DOWN)[1])
    assert d.effects == [] and not any(isinstance(e, AutoReverted) for e in d.events)
    assert w.state.running == 1 and w.state.probes["ping:198.51.100.80"].failures == 2


def test_a_report_about_a_revision_no_longer_running_changes_nothing() -> None:
    w = World()
    w.two_revisions()
    gate = watch(HEALTH, 1, "reload", None, w.now)
    assert gate is not None
    seq = w.state.seq
    d = w.send(report(gate, PING_DOWN)[1])
    assert d.events == [] and w.state.seq == seq and "revision 2 runs now" in d.reply


def test_a_revert_target_that_is_gone_is_reported_for_the_operator() -> None:
    w = World()
    w.two_revisions()
    d = w.send(HealthReport(revision=2, results=PING_DOWN, revert_to=7, reason="ping"))
    assert [type(e) for e in d.events] == [HealthProbed, HealthProbed] and d.effects == []
    assert "operator intervention" in d.reply and w.state.running == 2


def test_healthy_rounds_keep_the_revision_even_when_a_revert_target_is_named() -> None:
    w = World()
    w.two_revisions()
    d = w.send(HealthReport(revision=2, results=ALL_OK, revert_to=1))
    assert d.effects == [] and w.state.running == 2 and "2/2 probes ok" in d.reply


def test_a_health_revert_ends_the_confirm_window() -> None:
    w = World()
    w.two_revisions(confirm_within=120.0)
    assert w.state.pending_confirm is not None and w.state.pending_confirm.revision == 2
    gate = watch(HEALTH, 2, "reload", 1, w.now)
    assert gate is not None
    w.send(report(gate, PING_DOWN)[1])
    assert w.state.running == 1 and w.state.pending_confirm is None
    assert next_deadline(w.state) is None


def test_drift_is_journaled_one_event_per_difference() -> None:
    w = World()
    w.two_revisions()
    found = ["network: add address 192.168.50.1/24 to br-lan", "firewall: inet oxwrt differs"]
    d = w.send(DriftReport(revision=2, findings=found, repaired=True))
    assert d.events == [
        DriftDetected(kind="network", detail="add address 192.168.50.1/24 to br-lan (repaired)"),
        DriftDetected(kind="firewall", detail="inet oxwrt differs (repaired)"),
    ]
    assert w.state.drift == 2 and "2 difference(s), repaired" in d.reply


def test_a_failed_repair_says_why_and_nothing_is_journaled_when_nothing_drifted() -> None:
    w = World()
    w.two_revisions()
    d = w.send(DriftReport(revision=2, findings=["firewall: gone"], repaired=False, error="EPERM"))
    assert d.events == [DriftDetected(kind="firewall", detail="gone (repair failed: EPERM)")]
    seq = w.state.seq
    assert w.send(DriftReport(revision=2, findings=[], repaired=True)).events == []
    assert w.send(DriftReport(revision=1, findings=["network: x"], repaired=True)).events == []
    assert w.state.seq == seq


# ---------------------------------------------------------------- probation across restarts


class GatedWorld(World):
    """The runtime's half: a reload or rollback (or a resumed window) with probes is gated."""

    def send(self, request: Request) -> Decision:
        decision = decide(self.state, request, self.now)
        assert decision.rejected is None, decision.rejected
        self._journal(decision)
        for effect in decision.effects:
            assert isinstance(effect, Apply)
            self.applies.append(effect)
            gated = watch(HEALTH, effect.revision, effect.why, effect.fallback, self.now)
            self.send(ApplyOutcome(apply=effect, ok=True, gated=bool(gated and gated.fallback)))
        return decision


def test_a_gated_reload_is_journaled_as_probation_and_its_last_good_round_ends_it() -> None:
    w = GatedWorld()
    w.two_revisions()
    assert w.state.probation is not None
    assert (w.state.probation.revision, w.state.probation.fallback) == (2, 1)
    gate = watch(Health(probes=HEALTH.probes, window_s=10, interval_s=10), 2, "reload", 1, w.now)
    assert gate is not None
    after, last = report(gate, ALL_OK)
    assert last.settled and after.fallback is None  # past the window: never reverts again
    d = w.send(last)
    assert isinstance(d.events[-1], ProbationEnded)
    assert w.state.probation is None and "passed its health window" in d.reply


def test_a_restart_inside_the_window_resumes_the_gate_and_a_second_reverts() -> None:
    w = GatedWorld()
    w.two_revisions()
    first = w.send(Boot(software="t"))
    assert w.applies[-1] == Apply(revision=2, fallback=1, why="resume")
    assert "still inside its health window (1 unclean restart(s))" in first.reply
    assert w.state.probation is not None and w.state.probation.restarts == 1
    assert watch(HEALTH, 2, "resume", 1, w.now).fallback == 1  # type: ignore[union-attr]
    second = w.send(Boot(software="t"))
    revert = second.events[1]
    assert isinstance(revert, AutoReverted) and (revert.from_revision, revert.to_revision) == (2, 1)
    assert "restarted 2 times before revision 2 passed its health window" in revert.reason
    assert w.applies[-1] == Apply(revision=1, fallback=None, why="revert")
    assert w.state.running == 1 and w.state.probation is None
    third = w.send(Boot(software="t"))  # the revert is not on probation: boots are plain again
    assert w.applies[-1].why == "boot" and w.state.running == 1, third.reply


def test_once_passed_or_superseded_restarts_are_plain_boots() -> None:
    w = GatedWorld()
    w.two_revisions()
    w.send(HealthReport(revision=2, results=ALL_OK, settled=True))
    w.send(Boot(software="t"))
    w.send(Boot(software="t"))
    assert w.state.running == 2 and [a.why for a in w.applies[-2:]] == ["boot", "boot"]
    w2 = GatedWorld()
    w2.two_revisions()
    w2.send(Propose(public_toml=CONFIG.format(host="c")))
    w2.send(Reload())  # revision 3's own window replaces revision 2's
    assert w2.state.probation is not None and w2.state.probation.revision == 3
    assert w2.state.probation.fallback == 2


def test_an_ungated_apply_starts_no_probation() -> None:
    w = World()  # reports every apply ungated: no probes configured
    w.two_revisions()
    assert w.state.probation is None
    w.send(Boot(software="t"))
    w.send(Boot(software="t"))
    assert w.state.running == 2


def test_an_orderly_stop_inside_the_window_is_not_counted_as_a_crash() -> None:
    w = GatedWorld()
    w.two_revisions()
    for _ in range(3):  # reboots the operator asked for: the gate resumes, nothing reverts
        w.send(Stop(reason="reboot"))
        w.send(Boot(software="t"))
        assert w.applies[-1] == Apply(revision=2, fallback=1, why="resume")
    assert w.state.probation is not None and w.state.probation.restarts == 0
    w.send(Boot(software="t"))  # a crash: no stop before this boot
    w.send(Boot(software="t"))  # and another
    assert w.state.running == 1
