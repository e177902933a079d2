"""The store contract: the LMDB store and the in-memory twin pass the same tests."""

from __future__ import annotations

import msgspec
import pytest
from journal_samples import pending, samples

from journal.record import GENESIS, JournalError, Pending
from journal.retention import compact
from journal.store import Snapshot
from journal.verify import verify
from oxwrtd.journal_tool import load, state_through
from schema.events import HealthProbed


def test_empty_store_has_genesis_head_and_no_records(make_store):
    store = make_store()
    assert store.head() == (0, GENESIS)
    assert list(store.records()) == []
    assert store.latest_snapshot() is None
    assert verify(store).ok


def test_append_assigns_consecutive_seqs_and_chains_hashes(make_store):
    store = make_store()
    first = store.append(pending(samples()[:3]))
    second = store.append(pending(samples()[3:5]))
    assert [r.seq for r in first + second] == [1, 2, 3, 4, 5]
    assert first[0].prev_hash == GENESIS
    for before, after in zip(first + second, (first + second)[1:], strict=False):
        assert after.prev_hash == before.hash
    assert store.head() == (5, second[-1].hash)


def test_records_come_back_byte_for_byte_in_order(make_store):
    store = make_store()
    items = pending(samples())
    appended = store.append(items)
    read = list(store.records())
    assert read == appended
    assert [(r.time, r.tag, r.version, r.payload) for r in read] == [
        (p.time, p.tag, p.version, p.payload) for p in items
    ]


def test_records_range_is_inclusive_and_ordered(make_store):
    store = make_store()
    store.append(pending(samples()))
    assert [r.seq for r in store.records(3, 6)] == [3, 4, 5, 6]
    assert [r.seq for r in store.records(15)] == [15, 16]
    assert list(store.records(17)) == []


@pytest.mark.parametrize("size", [1, 3, 16, 2048])
@pytest.mark.parametrize(("start", "stop"), [(0, None), (3, 11), (5, 5), (12, 100), (17, None)])
def test_chunks_are_values_in_pieces_across_gaps(make_store, size, start, stop):
    store = make_store()
    recs = store.append(pending(samples()))
    store.replace_prefix(9, [r for r in recs[:9] if r.seq not in (4, 7, 8)])  # gaps, as compaction
    whole = [(int.from_bytes(k), v) for k, v in store.values(start, stop)]
    pieces = list(store.chunks(start, stop, size))
    assert all(1 <= len(values) <= size and len(seqs) == len(values) for seqs, values in pieces)
    assert [(s, v) for seqs, values in pieces for s, v in zip(seqs, values, strict=True)] == whole


def test_chunk_size_must_be_positive(make_store):
    store = make_store()
    store.append(pending(samples()[:2]))
    with pytest.raises(ValueError, match="chunk size must be >= 1"):
        next(iter(store.chunks(0, None, 0)))


def test_empty_batch_appends_nothing(make_store):
    store = make_store()
    assert store.append([]) == []
    assert store.head() == (0, GENESIS)


def test_bad_tag_is_refused_before_anything_is_written(make_store):
    store = make_store()
    store.append(pending(samples()[:1]))
    with pytest.raises(JournalError, match="tag"):
        store.append([Pending(1.0, "ok", 1, b""), Pending(1.0, "", 1, b"")])
    assert [r.seq for r in store.records()] == [1]


def test_full_store_refuses_the_batch_and_stays_readable(make_store):
    store = make_store(capacity=128 * 1024)
    probe = pending([HealthProbed(target="wan", ok=True, detail="x" * 900)])[0]
    acked = []
    with pytest.raises(JournalError, match="full"):
        for _ in range(10_000):
            acked += store.append([probe] * 10)
    assert len(acked) > 0
    assert [r.seq for r in store.records()] == [r.seq for r in acked]
    assert store.head() == (acked[-1].seq, acked[-1].hash)
    assert verify(store).ok


def test_latest_snapshot_wins(make_store):
    store = make_store()
    store.append(pending(samples()))
    for seq in (4, 12, 8):
        store.put_snapshot(Snapshot(seq=seq, hash=b"h" * 32, version=1, state=b"s%d" % seq))
    latest = store.latest_snapshot()
    assert latest is not None
    assert (latest.seq, latest.state) == (12, b"s12")


def test_replace_prefix_is_atomic_and_drops_old_snapshots(make_store):
    store = make_store()
    recs = store.append(pending(samples()))
    store.put_snapshot(Snapshot(seq=5, hash=recs[4].hash, version=1, state=b""))
    kept = [recs[1], recs[3]]
    store.replace_prefix(6, kept)
    assert [r.seq for r in store.records()] == [2, 4, *range(7, 17)]
    assert store.latest_snapshot() is None
    with pytest.raises(JournalError, match="seq <= 6"):
        store.replace_prefix(6, [recs[8]])


def test_a_tampered_record_is_named_by_verify(make_store):
    store = make_store()
    recs = store.append(pending(samples()))
    bad = msgspec.structs.replace(recs[6], payload=recs[6].payload[:-1] + b"\x00")
    store.replace_prefix(7, [*recs[:6], bad])
    report = verify(store)
    assert not report.ok
    assert report.first_bad == 7
    assert "content does not match its hash" in (report.problem or "")
    assert report.records == 6
    with pytest.raises(JournalError, match="record 7: content does not match its hash"):
        load(store)


def test_a_dropped_record_breaks_the_chain_at_the_next_one(make_store):
    store = make_store()
    recs = store.append(pending(samples()))
    store.replace_prefix(5, [r for r in recs[:5] if r.seq != 3])
    report = verify(store)
    assert (report.ok, report.first_bad) == (False, 4)
    assert "does not chain" in (report.problem or "")
    with pytest.raises(JournalError, match=r"record 4: does not chain.*refusing to go past it"):
        load(store)


def test_stats_count_records_and_name_the_head(make_store):
    store = make_store()
    recs = store.append(pending(samples()))
    stats = store.stats()
    assert (stats.records, stats.first_seq, stats.head_seq) == (16, 1, 16)
    assert stats.head_hash == recs[-1].hash.hex()
    assert stats.bytes_used > 0


def test_closed_store_refuses_use(make_store):
    store = make_store()
    store.close()
    with pytest.raises(JournalError, match="closed"):
        store.append(pending(samples()[:1]))


def test_compaction_keeps_the_state_and_the_chain(make_store):
    store = make_store()
    store.append(pending([HealthProbed(target="wan", ok=i % 3 > 0) for i in range(40)]))
    store.append(pending(samples()[:-1]))
    store.append(pending([HealthProbed(target="lan", ok=True)] * 10))
    before = load(store)
    result = compact(store, 50, 3, lambda seq: state_through(store, seq))
    assert result.upto is not None
    assert result.dropped_by_tag == {"health.probed": 40, "service.exited": 1, "service.started": 1}
    assert verify(store).ok
    assert load(store) == before
    store.append(pending(samples()[:2]))
    assert verify(store).ok
