"""The pure projections: what each fact does to the state, and fold's algebra."""

from __future__ import annotations

import copy

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from oxwrtd.core.fold import fold
from oxwrtd.core.state import (
    STATE_VERSION,
    State,
    decode_state,
    encode_state,
    initial,
    next_deadline,
    rollback_ring,
    summary,
)
from schema import events as ev

KEY = SigningKey(bytes(32))
LEAF_A = ev.SealedLeaf(box=b"box-a", digest=b"A" * 16)
LEAF_B = ev.SealedLeaf(box=b"box-b", digest=b"B" * 16)


def signed(request: bytes) -> ev.Signed:
    return ev.Signed(
        name="alice",
        public_key=bytes(KEY.verify_key),
        request=request,
        signature=KEY.sign(request).signature,
    )


def run(*events: ev.Event, state: State | None = None) -> State:
    start = state or initial()
    return fold(start, [(start.seq + i, float(start.seq + i), e) for i, e in enumerate(events, 1)])


def push(rev: int, text: str = "", **kw: object) -> list[ev.Event]:
    return [
        ev.ConfigProposed(revision=rev, public_toml=text or f"v = {rev}\n", **kw),  # type: ignore[arg-type]
        ev.ConfigApplied(revision=rev),
    ]


def test_proposed_then_applied_moves_candidate_to_running():
    s = run(ev.ConfigProposed(revision=1, public_toml="a = 1\n"))
    assert (s.candidate, s.running, s.next_revision) == (1, None, 2)
    s = run(ev.ConfigApplied(revision=1), state=s)
    assert (s.candidate, s.running, s.seq) == (None, 1, 2)
    assert s.revisions[1].status == "applied"
    assert s.revisions[1].applied_at == 2.0


def test_failed_apply_keeps_the_running_revision():
    s = run(
        *push(1),
        ev.ConfigProposed(revision=2, public_toml=""),
        ev.ApplyFailed(revision=2, reason="EEXIST"),
    )
    assert (s.running, s.candidate) == (1, None)
    assert (s.revisions[2].status, s.revisions[2].failure) == ("failed", "EEXIST")


def test_rollback_ring_is_newest_first_bounded_by_depth_and_history_is_trimmed():
    events = [e for rev in range(1, 121) for e in push(rev)]
    s = fold(initial(ring_depth=5), [(i, float(i), e) for i, e in enumerate(events, 1)])
    assert [r.id for r in rollback_ring(s)] == [120, 119, 118, 117, 116]
    assert [r.id for r in rollback_ring(s, depth=2)] == [120, 119]
    assert len(s.revisions) <= 10
    assert [r.id for r in rollback_ring(run(*push(121), state=initial()))] == [121]


def test_rolling_back_makes_the_target_running_and_is_audited_with_its_signer():
    s = run(
        *push(1),
        *push(2),
        ev.RolledBack(from_revision=2, to_revision=1, comment="oops", by=signed(b"rb")),
    )
    assert s.running == 1
    assert s.revisions[2].status == "reverted"
    assert [r.id for r in rollback_ring(s)] == [1, 2]
    entry = s.audit[-1]
    assert (entry.action, entry.revision, entry.author, entry.comment) == (
        "rollback",
        1,
        "alice",
        "oops",
    )
    assert entry.fingerprint == ev.key_fingerprint(bytes(KEY.verify_key))
    assert entry.signature == signed(b"rb").signature


def test_pending_confirm_has_a_deadline_and_ends_by_confirm_or_revert():
    s = run(*push(1), *push(2), ev.ConfirmRequested(revision=2, deadline=100.0))
    assert next_deadline(s) == 100.0
    confirmed = run(ev.Confirmed(revision=2, by=signed(b"ok")), state=s)
    assert next_deadline(confirmed) is None
    assert confirmed.audit[-1].action == "confirm"
    expired = run(
        ev.ConfirmExpired(revision=2),
        ev.AutoReverted(from_revision=2, to_revision=1, reason="no confirm"),
        state=s,
    )
    assert (next_deadline(expired), expired.running) == (None, 1)
    reverted = run(ev.AutoReverted(from_revision=2, to_revision=1, reason="probe"), state=s)
    assert next_deadline(reverted) is None


def test_audit_summarises_the_change_and_names_changed_secrets_without_values():
    s = run(
        ev.ConfigProposed(
            revision=1, public_toml="a = 1\nb = 2\n", sealed_secrets={"wan.password": LEAF_A}
        ),
        ev.ConfigApplied(revision=1),
        ev.ConfigProposed(
            revision=2,
            public_toml="a = 1\nb = 3\nc = 4\n",
            sealed_secrets={"wan.password": LEAF_B},
            comment="wan",
            by=signed(b"push 2"),
        ),
    )
    first, second = s.audit
    assert first.summary == "first revision: 2 lines, 1 secret(s)"
    assert second.summary == "from revision 1: +2 -1 lines; secrets changed: wan.password"
    assert (second.author, second.comment) == ("alice", "wan")
    assert s.revisions[2].fingerprint == ev.key_fingerprint(bytes(KEY.verify_key))


def test_audit_is_bounded_by_its_depth():
    events = [ev.ConfigProposed(revision=r, public_toml="") for r in range(1, 8)]
    s = fold(initial(audit_depth=3), [(i, 0.0, e) for i, e in enumerate(events, 1)])
    assert [a.revision for a in s.audit] == [5, 6, 7]


def test_service_table_counts_starts_and_exits():
    s = run(
        ev.ServiceStarted(name="dns", pid=10),
        ev.ServiceExited(name="dns", pid=10, code=1),
        ev.ServiceStarted(name="dns", pid=11),
    )
    row = s.services["dns"]
    assert (row.state, row.pid, row.starts, row.exits, row.last_code) == ("running", 11, 2, 1, 1)
    s = run(ev.ServiceGaveUp(name="dns", restarts=5), state=s)
    assert (s.services["dns"].state, s.services["dns"].pid, s.services["dns"].starts) == (
        "gave_up",
        None,
        2,
    )


def test_a_removed_service_leaves_the_table_and_an_unknown_one_changes_nothing():
    s = run(ev.ServiceStarted(name="dns", pid=10), ev.ServiceStarted(name="ntp", pid=11))
    s = run(ev.ServiceExited(name="ntp", pid=11), ev.ServiceRemoved(name="ntp"), state=s)
    assert sorted(s.services) == ["dns"]
    assert run(ev.ServiceRemoved(name="gone"), state=s).services == s.services


def test_probes_count_consecutive_failures_and_leases_boots_drift_are_kept():
    s = run(
        ev.HealthProbed(target="wan", ok=False),
        ev.HealthProbed(target="wan", ok=False),
        ev.LeaseAcquired(interface="wan", address="10.0.0.2/24", dns=["10.0.0.1"]),
        ev.Booted(software="oxwrtd 1"),
        ev.DriftDetected(kind="route"),
    )
    assert s.probes["wan"].failures == 2
    assert run(ev.HealthProbed(target="wan", ok=True), state=s).probes["wan"].failures == 0
    assert s.leases["wan"].address == "10.0.0.2/24"
    assert (s.boots, s.software, s.drift) == (1, "oxwrtd 1", 1)


def test_facts_that_contradict_the_state_are_kept_as_anomalies_not_raised():
    s = run(
        ev.ConfigApplied(revision=9),
        ev.Confirmed(revision=3),
        ev.RolledBack(from_revision=1, to_revision=4),
    )
    assert s.running is None
    assert s.anomalies == [
        "record 1: revision 9 is not in the history",
        "record 2: confirmed revision 3, which was not pending",
        "record 3: went back to revision 4, which is not in the history",
    ]
    again = run(
        ev.ConfigProposed(revision=1, public_toml="x"),
        ev.ConfigProposed(revision=1, public_toml="y"),
    )
    assert again.revisions[1].public_toml == "x"
    assert "proposed twice" in again.anomalies[0]


def test_a_checkpoint_carries_the_state_it_replaced():
    before = run(*push(1), ev.ServiceStarted(name="dns", pid=3))
    cp = ev.Checkpoint(
        upto=3, bridge=bytes(32), dropped=1, state=encode_state(before), state_version=STATE_VERSION
    )
    after = run(cp, state=initial())
    assert (after.running, after.services["dns"].pid) == (1, 3)
    unreadable = run(msgspec.structs.replace(cp, state_version=STATE_VERSION + 1))
    assert "checkpoint state version" in unreadable.anomalies[0]


def test_fold_never_mutates_its_input():
    s = run(*push(1), ev.ServiceStarted(name="dns", pid=1))
    snapshot = copy.deepcopy(s)
    run(
        *push(2), ev.ServiceExited(name="dns", pid=1), ev.HealthProbed(target="x", ok=True), state=s
    )
    assert s == snapshot


def test_state_round_trips_through_snapshot_bytes():
    s = run(
        *push(1),
        *push(2),
        ev.ConfirmRequested(revision=2, deadline=5.0),
        ev.ServiceStarted(name="d", pid=1),
    )
    assert decode_state(encode_state(s), STATE_VERSION) == s
    assert decode_state(encode_state(s), STATE_VERSION + 1) is None
    assert decode_state(b"\xc1", STATE_VERSION) is None
    assert summary(s)["ring"] == [2, 1]


def test_depths_must_be_positive():
    with pytest.raises(ValueError, match="ring_depth and audit_depth must be >= 1"):
        initial(ring_depth=0)


revision = st.integers(1, 4)
any_event = st.one_of(
    st.builds(lambda r: ev.ConfigProposed(revision=r, public_toml=f"v={r}"), revision),
    st.builds(lambda r: ev.ConfigApplied(revision=r), revision),
    st.builds(lambda a, b: ev.RolledBack(from_revision=a, to_revision=b), revision, revision),
    st.builds(lambda r: ev.ConfirmRequested(revision=r, deadline=1.0), revision),
    st.builds(lambda r: ev.Confirmed(revision=r), revision),
    st.builds(lambda n: ev.ServiceStarted(name=n, pid=1), st.sampled_from("ab")),
    st.builds(lambda n: ev.ServiceExited(name=n, pid=1), st.sampled_from("ab")),
    st.builds(lambda ok: ev.HealthProbed(target="w", ok=ok), st.booleans()),
)


@settings(deadline=None)
@given(st.lists(any_event, max_size=40), st.data())
def test_fold_of_a_prefix_then_the_rest_equals_fold_of_all(events, data):
    facts = [(i, float(i), e) for i, e in enumerate(events, 1)]
    split = data.draw(st.integers(0, len(facts)))
    assert fold(fold(initial(ring_depth=2), facts[:split]), facts[split:]) == fold(
        initial(ring_depth=2), facts
    )


@settings(deadline=None)
@given(st.lists(any_event, max_size=40))
def test_every_ring_entry_is_in_the_history(events):
    s = fold(initial(ring_depth=2), [(i, 0.0, e) for i, e in enumerate(events, 1)])
    assert len(s.ring) <= 2
    assert all(r in s.revisions for r in s.ring)
    assert s.running is None or s.running in s.revisions
