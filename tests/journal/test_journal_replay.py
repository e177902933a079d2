"""Boot from snapshot + tail, compaction with a checkpoint, signatures checked offline."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_samples import events, pending, samples, signed

from journal.memory import MemoryStore
from journal.record import JournalError, Pending
from journal.retention import compact
from journal.snapshots import boot, checked_facts, due, facts, take
from journal.verify import checked, verify
from oxwrtd.core.fold import fold
from oxwrtd.core.state import STATE_VERSION, decode_state, encode_state, initial
from oxwrtd.journal_tool import load
from schema import events as ev
from schema.events import CHECKPOINT_TAG


def fold_all(store) -> object:
    """Both read paths (Record objects, fully hashed; the boot fast path) must agree."""
    slow = fold(initial(), facts(checked(store.records())))
    assert fold(initial(), checked_facts(store)) == slow
    return slow


def fold_through(store, seq: int) -> tuple[bytes, int]:
    return encode_state(fold(initial(), facts(checked(store.records(0, seq))))), STATE_VERSION


def snapshot_at(store, seq: int) -> None:
    take(store, seq, fold_through(store, seq)[0], STATE_VERSION)


def from_snapshot(snap):
    return decode_state(snap.state, snap.version)


streams = st.lists(events, min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams, data=st.data())
def test_snapshot_plus_tail_equals_folding_everything(stream, data):
    store = MemoryStore()
    store.append(pending(stream))
    split = data.draw(st.integers(1, len(stream)))
    snapshot_at(store, split)
    state, used = boot(store, initial(), fold, from_snapshot)
    assert used == split
    assert state == fold_all(store)


@settings(max_examples=60, deadline=None)
@given(stream=streams, data=st.data())
def test_replaying_a_prefix_then_the_rest_equals_replaying_all(stream, data):
    store = MemoryStore()
    store.append(pending(stream))
    split = data.draw(st.integers(0, len(stream)))
    everything = list(facts(store.records()))
    assert fold(fold(initial(), everything[:split]), everything[split:]) == fold(
        initial(), everything
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams, data=st.data())
def test_compaction_keeps_the_folded_state_and_the_chain(stream, data):
    store = MemoryStore()
    store.append(pending(stream))
    before = fold_all(store)
    upto = data.draw(st.integers(1, len(stream)))
    result = compact(store, upto, config_depth=2, state_at=lambda s: fold_through(store, s))
    assert verify(store).ok, verify(store).problem
    assert fold_all(store) == before
    tags = [r.tag for r in store.records(0, upto)]
    assert not set(tags) & ev.CHATTER_TAGS
    if result.upto is not None:
        assert tags.count(CHECKPOINT_TAG) == 1
        assert result.dropped == sum(result.dropped_by_tag.values())


def test_compaction_twice_and_appends_after_it_still_verify():
    store = MemoryStore()
    store.append(pending([ev.HealthProbed(target="wan", ok=i % 2 == 0) for i in range(30)]))
    compact(store, 20, 2, lambda s: fold_through(store, s))
    store.append(pending([ev.HealthProbed(target="lan", ok=True)] * 5))
    second = compact(store, 28, 2, lambda s: fold_through(store, s))
    assert second.dropped_by_tag == {"health.probed": 8, "journal.checkpoint": 1}
    store.append(pending([ev.Booted(software="t")]))
    assert verify(store).ok
    assert [r.seq for r in store.records()] == [28, 29, 30, *range(31, 37)]


def test_compaction_keeps_config_revisions_to_their_depth():
    stream: list[ev.Event] = []
    for rev in range(1, 6):
        stream += [
            ev.ConfigProposed(revision=rev, public_toml=f"v = {rev}\n"),
            ev.ConfigApplied(revision=rev),
            ev.HealthProbed(target="wan", ok=True),
        ]
    store = MemoryStore()
    store.append(pending(stream))
    compact(store, len(stream), 2, lambda s: fold_through(store, s))
    kept = [ev.revision_of(e) for _, _, e in facts(store.records()) if ev.revision_of(e)]
    assert kept == [4, 4, 5, 5]
    assert load(store).running == 5


def test_nothing_to_compact_changes_nothing():
    store = MemoryStore()
    store.append(
        pending([ev.ConfigProposed(revision=1, public_toml=""), ev.ConfigApplied(revision=1)])
    )
    before = list(store.records())
    assert compact(store, 2, 5, lambda s: fold_through(store, s)).upto is None
    assert list(store.records()) == before


def test_a_snapshot_that_no_longer_matches_its_record_is_ignored():
    store = MemoryStore()
    store.append(pending(samples()))
    snapshot_at(store, 10)
    snap = store.latest_snapshot()
    store.put_snapshot(msgspec.structs.replace(snap, seq=11))  # hash of 10, claims 11
    state, used = boot(store, initial(), fold, from_snapshot)
    assert used is None
    assert state == fold_all(store)


def test_snapshot_of_another_state_version_is_ignored():
    store = MemoryStore()
    store.append(pending(samples()))
    state, _ = fold_through(store, 5)
    take(store, 5, state, STATE_VERSION + 1)
    assert boot(store, initial(), fold, from_snapshot)[1] is None


def test_snapshots_fall_due_every_n_records():
    store = MemoryStore()
    store.append(pending(samples()[:9]))
    assert not due(store, every=10)
    store.append(pending(samples()[:1]))
    assert due(store, every=10)
    snapshot_at(store, 10)
    assert not due(store, every=10)
    with pytest.raises(JournalError, match="no such record"):
        take(store, 99, b"", STATE_VERSION)
    with pytest.raises(ValueError, match=">= 1 record"):
        due(store, every=0)


def test_signatures_are_checked_offline_and_a_forged_one_is_named():
    good = ev.Confirmed(revision=1, by=signed(b"confirm 1"))
    forged = ev.Confirmed(
        revision=1, by=msgspec.structs.replace(signed(b"confirm 1"), request=b"confirm 2")
    )
    store = MemoryStore()
    store.append(pending([good, ev.Booted(software="t"), forged]))
    report = verify(store)
    assert (report.ok, report.first_bad, report.signed) == (False, 3, 1)
    assert "signature by 'alice' (sha256:" in (report.problem or "")
    assert verify(store, signatures=False).ok


def test_an_undecodable_payload_stops_the_fold_by_name():
    store = MemoryStore()
    store.append(pending(samples()[:2]))
    store.append([Pending(0.0, "config.applied", 1, b"\xc1")])
    with pytest.raises(JournalError, match=r"record 3: config\.applied version 1"):
        load(store)
