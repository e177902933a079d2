"""The chunked read path gives exactly what checking one record at a time gives: the same facts,
then the same error, for any journal, any damage and any chunk size."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_samples import events, pending, samples

from journal.memory import MemoryStore
from journal.record import GENESIS, SEQ, JournalError, rechain, unpack
from journal.retention import compact
from journal.scan import _checked_chunk, _Links, _one_by_one, checked_facts
from journal.snapshots import facts
from journal.verify import checked
from oxwrtd.core.fold import fold
from oxwrtd.core.state import STATE_VERSION, encode_state, initial
from schema import events as ev

Outcome = tuple[list[tuple[int, float, object]], str | None]


def outcome(source: Iterable[tuple[int, float, object]]) -> Outcome:
    got: list[tuple[int, float, object]] = []
    try:
        for fact in source:
            got.append(fact)
    except JournalError as exc:
        return got, str(exc)
    return got, None


def one_at_a_time(store: MemoryStore, rehash: bool) -> Outcome:
    pairs = [(SEQ.unpack(k)[0], v) for k, v in store.values()]
    seqs, values = [s for s, _ in pairs], [v for _, v in pairs]
    return outcome(_one_by_one(seqs, values, _Links((GENESIS,)), rehash))


def state_through(store: MemoryStore, seq: int) -> tuple[bytes, int]:
    return encode_state(fold(initial(), facts(checked(store.records(0, seq))))), STATE_VERSION


def flip_a_byte(store: MemoryStore, seq: int, at: int, mask: int) -> None:
    value = bytearray(store._values[seq])
    value[at % len(value)] ^= mask
    store._values[seq] = bytes(value)


def edit_and_rehash(store: MemoryStore, seq: int, **change: object) -> None:
    """A deliberate edit with every later hash fixed up: it passes checksums and links."""
    recs = list(store.records())
    i = [r.seq for r in recs].index(seq)
    edited = [*recs[:i], msgspec.structs.replace(recs[i], **change), *recs[i + 1 :]]
    store.replace_prefix(recs[-1].seq, rechain(edited, GENESIS))


damage = st.sampled_from(["none", "flip", "tamper", "drop", "newer", "compact", "rehashed"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=st.lists(events, min_size=2, max_size=40),
    kind=damage,
    data=st.data(),
    chunk=st.sampled_from([1, 2, 3, 7, 2048]),
    rehash=st.booleans(),
)
def test_chunked_reads_agree_with_one_record_at_a_time(stream, kind, data, chunk, rehash):
    store = MemoryStore()
    recs = store.append(pending(stream))
    target = data.draw(st.integers(1, len(recs)))
    if kind == "flip":
        flip_a_byte(
            store, target, data.draw(st.integers(0, 10_000)), data.draw(st.integers(1, 255))
        )
    elif kind == "tamper":  # content changed, checksum fixed, hash not
        bad = msgspec.structs.replace(recs[target - 1], time=recs[target - 1].time + 1)
        store.replace_prefix(target, [*recs[: target - 1], bad])
    elif kind == "drop" and target < len(recs):
        store.replace_prefix(target, recs[: target - 1])
    elif kind == "newer":
        edit_and_rehash(store, target, version=ev.VERSIONS[recs[target - 1].tag] + 1)
    elif kind == "rehashed":
        edit_and_rehash(store, target, time=recs[target - 1].time + 1)
    elif kind == "compact":
        compact(store, target, config_depth=1, state_at=lambda s: state_through(store, s))

    expected = one_at_a_time(store, rehash)
    assert outcome(checked_facts(store, rehash=rehash, chunk=chunk)) == expected
    if expected[1] is None and rehash:  # and the independent Record path agrees on the facts
        assert expected[0] == list(facts(checked(store.records())))


def test_a_bad_record_is_named_after_every_fact_before_it():
    store = MemoryStore()
    store.append(pending(samples()))
    flip_a_byte(store, 10, 80, 0x01)
    got, error = outcome(checked_facts(store, chunk=4))
    assert [seq for seq, _, _ in got] == list(range(1, 10))
    assert (
        error == "record 10: stored bytes fail their checksum (corrupted); refusing to go past it"
    )


def test_a_record_from_newer_software_stops_the_fold_naming_it():
    store = MemoryStore()
    store.append(pending(samples()))
    tag = unpack(5, store._values[5]).tag
    edit_and_rehash(store, 5, version=ev.VERSIONS[tag] + 1)
    with pytest.raises(
        JournalError, match=rf"record 5: {tag} version 2 is newer than this software"
    ):
        list(checked_facts(store))


def test_a_forged_but_consistent_edit_passes_without_rehash_and_fails_with_it():
    """What `rehash=False` gives up, said by a test: an edit whose checksum was fixed up."""
    store = MemoryStore()
    recs = store.append(pending(samples()))
    bad = msgspec.structs.replace(recs[2], time=recs[2].time + 60)
    store.replace_prefix(3, [*recs[:2], bad])
    assert len(list(checked_facts(store, rehash=False))) == len(recs)
    with pytest.raises(JournalError, match="record 3: content does not match its hash"):
        list(checked_facts(store))


def test_a_stop_inside_a_chunk_ends_the_facts_there():
    store = MemoryStore()
    store.append(pending(samples()))
    got = [seq for seq, _, _ in checked_facts(store, stop=6, chunk=4)]
    assert got == [1, 2, 3, 4, 5, 6]


def test_sound_current_chunks_take_the_fast_path_and_anything_else_does_not():
    """Guards the speed-up itself: the fast path must be taken when nothing is unusual."""
    chatter = [ev.HealthProbed(target="wan", ok=i % 2 == 0) for i in range(6)]
    store = MemoryStore()
    store.append(pending([*chatter, ev.Booted(software="t"), ev.ConfigApplied(revision=1)]))
    ((seqs, values),) = store.chunks(0, None, 100)
    assert _checked_chunk(seqs, values, _Links((GENESIS,)), rehash=True) is not None
    assert _checked_chunk(seqs, values, _Links((b"x" * 32,)), rehash=True) is None
    assert (
        _checked_chunk(seqs[:3] + seqs[4:], values[:3] + values[4:], _Links((GENESIS,)), True)
        is None
    )
    flip_a_byte(store, 4, 90, 0x20)
    ((seqs, values),) = store.chunks(0, None, 100)
    assert _checked_chunk(seqs, values, _Links((GENESIS,)), rehash=False) is None
