"""The config transaction, step by step, with a manual clock and the real fold."""

from __future__ import annotations

import pytest

from oxwrtd.core.decide import (
    Apply,
    ApplyOutcome,
    Boot,
    Confirm,
    Decision,
    Plan,
    Propose,
    Reload,
    Request,
    Rollback,
    Tick,
    decide,
    next_deadline,
)
from oxwrtd.core.fold import fold
from oxwrtd.core.state import State, initial
from schema.events import ApplyFailed, AutoReverted, ConfirmExpired, RolledBack

BASE = """
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


def cfg(host: str = "router") -> str:
    return BASE.format(host=host)


class World:
    """The runtime's loop without I/O: decide, fold, and a scripted kernel."""

    def __init__(self) -> None:
        self.state: State = initial()
        self.seq = 0
        self.now = 1000.0
        self.kernel_refuses: set[int] = set()
        self.applied: list[int] = []  # what the fake kernel holds, in order

    def send(self, request: Request) -> Decision:
        decision = decide(self.state, request, self.now)
        self._journal(decision)
        for effect in decision.effects:
            if isinstance(effect, Apply):
                ok = effect.revision not in self.kernel_refuses
                if ok:
                    self.applied.append(effect.revision)
                outcome = ApplyOutcome(apply=effect, ok=ok, reason="" if ok else "nft: syntax")
                follow = decide(self.state, outcome, self.now)
                self._journal(follow)
                for nested in follow.effects:
                    assert isinstance(nested, Apply)
                    self.applied.append(nested.revision)
                    self._journal(decide(self.state, ApplyOutcome(apply=nested, ok=True), self.now))
        return decision

    def _journal(self, decision: Decision) -> None:
        facts = []
        for event in decision.events:
            self.seq += 1
            facts.append((self.seq, self.now, event))
        self.state = fold(self.state, facts)

    def push_and_reload(self, host: str, **reload: object) -> Decision:
        d = self.send(Propose(public_toml=cfg(host)))
        assert d.rejected is None, d.rejected
        return self.send(Reload(**reload))  # type: ignore[arg-type]


def test_push_then_reload_applies_the_candidate() -> None:
    w = World()
    d = w.send(Propose(public_toml=cfg()))
    assert d.rejected is None and w.state.candidate == 1 and w.state.running is None
    assert d.reply == "revision 1 proposed; run reload to apply it"
    w.send(Reload())
    assert w.state.running == 1 and w.state.candidate is None and w.applied == [1]
    # a local edit is applied by the runtime at once: no hint to run reload
    assert w.send(Propose(public_toml=cfg("b"), source="sighup")).reply == (
        "revision 2 proposed from the files"
    )


def test_invalid_push_is_rejected_with_every_issue_and_changes_nothing() -> None:
    w = World()
    bad = cfg().replace("prefix = 24", "prefix = 33").replace('bridge = "br-lan"', "bridg = 1")
    d = w.send(Propose(public_toml=bad))
    assert d.rejected is not None and d.rejected.code == "invalid"
    assert len(d.rejected.details) >= 2 and w.state.seq == 0
    assert any("bridg" in line for line in d.rejected.details)


def test_stale_push_is_refused_with_the_head() -> None:
    w = World()
    w.push_and_reload("a")
    w.send(Propose(public_toml=cfg("b"), base_revision=1))
    d = w.send(Propose(public_toml=cfg("c"), base_revision=1))
    assert d.rejected is not None and d.rejected.code == "stale"
    assert "head is 2" in d.rejected.message


def test_identical_push_is_not_a_new_revision() -> None:
    w = World()
    w.push_and_reload("a")
    d = w.send(Propose(public_toml=cfg("a")))
    assert d.events == [] and "no change" in d.reply


def test_failed_apply_reverts_to_the_last_good_revision() -> None:
    w = World()
    w.push_and_reload("a")
    w.kernel_refuses.add(2)
    d = w.push_and_reload("b")
    assert w.state.running == 1 and w.applied == [1, 1]
    assert w.state.revisions[2].status == "reverted"
    assert w.state.revisions[2].failure == "nft: syntax"
    assert d.reply == "applying revision 2" and w.state.ring[-1] == 1


def test_failed_first_apply_has_nothing_to_revert_to() -> None:
    w = World()
    w.kernel_refuses.add(1)
    w.send(Propose(public_toml=cfg()))
    decision = decide(w.state, Reload(), w.now)
    (apply,) = decision.effects
    assert isinstance(apply, Apply) and apply.fallback is None
    out = decide(w.state, ApplyOutcome(apply=apply, ok=False, reason="x", step="nft"), w.now)
    assert [type(e) for e in out.events] == [ApplyFailed] and "intervention" in out.reply


def test_dry_run_plans_without_events() -> None:
    w = World()
    w.send(Propose(public_toml=cfg()))
    d = w.send(Reload(dry_run=True))
    assert d.events == [] and d.effects == [Plan(revision=1)]


def test_confirm_within_reverts_at_the_deadline_unless_confirmed() -> None:
    w = World()
    w.push_and_reload("a")
    w.push_and_reload("b", confirm_within=60.0)
    assert w.state.running == 2 and next_deadline(w.state) == w.now + 60
    w.now += 59
    assert w.send(Tick()).events == []
    w.now += 2
    d = w.send(Tick())
    assert [type(e) for e in d.events] == [ConfirmExpired, AutoReverted]
    assert w.state.running == 1 and w.applied[-1] == 1 and w.state.pending_confirm is None


def test_confirm_keeps_the_revision() -> None:
    w = World()
    w.push_and_reload("a")
    w.push_and_reload("b", confirm_within=60.0)
    assert w.send(Confirm()).rejected is None
    w.now += 120
    assert w.send(Tick()).events == [] and w.state.running == 2


def test_confirm_after_the_deadline_is_refused() -> None:
    w = World()
    w.push_and_reload("a")
    w.push_and_reload("b", confirm_within=60.0)
    w.now += 61
    d = w.send(Confirm())
    assert d.rejected is not None and d.rejected.code == "not-pending"


def test_deadline_passed_while_down_reverts_at_boot() -> None:
    w = World()
    w.push_and_reload("a")
    w.push_and_reload("b", confirm_within=30.0)
    w.now += 3600  # power cut inside the window, back an hour later
    d = w.send(Boot(software="test"))
    assert any(isinstance(e, AutoReverted) for e in d.events)
    assert w.state.running == 1 and w.applied[-1] == 1


@pytest.mark.parametrize("window", [0.0, 1.0, 10 * 24 * 3600.0])
def test_confirm_window_bounds(window: float) -> None:
    w = World()
    w.send(Propose(public_toml=cfg()))
    d = w.send(Reload(confirm_within=window))
    assert d.rejected is not None and d.rejected.code == "bad-request"


def test_rollback_addresses_stable_revision_ids() -> None:
    w = World()
    for host in ("a", "b", "c"):
        w.push_and_reload(host)
    d = w.send(Rollback(to=1))
    assert isinstance(d.events[0], RolledBack) and w.state.running == 1
    # ids never shift: revision 2 is still revision 2 after a rollback
    w.send(Rollback(to=2))
    assert w.state.running == 2 and w.state.revisions[2].public_toml == cfg("b")


def test_rollback_to_unknown_revision_names_the_known_ones() -> None:
    w = World()
    w.push_and_reload("a")
    d = w.send(Rollback(to=9))
    assert d.rejected is not None and "known: 1" in d.rejected.message


def test_boot_applies_the_running_revision() -> None:
    w = World()
    w.push_and_reload("a")
    d = w.send(Boot(software="t"))
    assert w.applied[-1] == 1 and isinstance(d.effects[0], Apply)


def test_crash_before_applied_boots_the_previous_revision() -> None:
    w = World()
    w.push_and_reload("a")
    w.send(Propose(public_toml=cfg("b")))
    decide(w.state, Reload(), w.now)  # the daemon dies before ApplyOutcome is journaled
    w.send(Boot(software="t"))
    assert w.state.running == 1 and w.applied[-1] == 1
    assert w.state.candidate == 2  # still there to retry, never half-applied


def test_a_config_hostapd_cannot_be_given_is_refused_at_push() -> None:
    w = World()
    wifi = (
        '\n[[radios]]\nphy = "phy0"\nchannel = 6\nband = "2g"\ncountry_code = "DE"\n'
        '\n[[wifi]]\nradio = "phy0"\nssid = "home"\nnetwork = "lan"\nsecurity = "open"\n'
        'extra = ["interface=evil0"]\n'
    )
    d = w.send(Propose(public_toml=cfg() + wifi))
    assert d.rejected is not None and d.rejected.code == "invalid"
    assert any("wifi[0]" in line and "extra" in line for line in d.rejected.details)
    assert w.state.seq == 0


def test_observed_facts_are_journaled_and_a_moving_wan_reapplies_the_running_revision() -> None:
    from oxwrtd.core.decide import Observed
    from schema.events import LeaseAcquired

    w = World()
    w.push_and_reload("a")
    lease = LeaseAcquired(interface="wan0", address="203.0.113.7/24", gateway="203.0.113.1")
    d = w.send(Observed(events=[lease]))
    assert d.events == [lease] and d.effects == [] and w.applied == [1]
    d = w.send(Observed(events=[lease], reapply=True))
    (apply,) = d.effects
    assert isinstance(apply, Apply) and (apply.revision, apply.why) == (1, "fact")
    assert w.applied == [1, 1] and w.state.leases["wan0"].address == "203.0.113.7/24"
