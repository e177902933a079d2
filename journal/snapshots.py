"""Boot = latest snapshot + tail; snapshots every N records. Generic over the folded state.

The journal does not know the state's shape: the caller passes `fold` and the state codec
(oxwrtd/core/state.py). A snapshot records the hash of the record it was taken at, so the tail
must chain to exactly that record; a snapshot that does not match (compacted away, other state
version, unreadable) is ignored and boot folds from the start instead: snapshots are caches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Final, TypeVar

from journal.record import GENESIS, JournalError, Record
from journal.scan import Fact, checked_facts
from journal.store import Snapshot, Store
from journal.verify import links_after
from schema.codec import CodecError, decode

S = TypeVar("S")
Fold = Callable[[S, Iterable[Fact]], S]

DEFAULT_EVERY: Final = 50_000  # PERFORMANCE.md: snapshot every 50-100k events


def facts(records: Iterable[Record]) -> Iterator[Fact]:
    """Decode records into (seq, time, event); an undecodable record stops the fold, named."""
    for r in records:
        try:
            yield r.seq, r.time, decode(r.tag, r.version, r.payload)
        except CodecError as exc:
            raise JournalError(f"record {r.seq}: {exc}; refusing to fold past it") from exc


def boot(
    store: Store,
    initial: S,
    fold: Fold[S],
    load: Callable[[Snapshot], S | None],
    *,
    rehash: bool = True,
) -> tuple[S, int | None]:
    """The folded state and the seq of the snapshot it started from (None: from the start)."""
    start, state, used = 0, initial, None
    after: tuple[bytes, ...] = (GENESIS,)
    snap = store.latest_snapshot()
    if snap is not None:
        anchor = next(store.records(snap.seq, snap.seq), None)
        loaded = load(snap) if anchor is not None and anchor.hash == snap.hash else None
        if loaded is not None and anchor is not None:
            start, after, state, used = snap.seq + 1, links_after(anchor), loaded, snap.seq
    return fold(state, checked_facts(store, start, after, rehash=rehash)), used


def take(store: Store, seq: int, state: bytes, version: int) -> Snapshot:
    """Store `state` (folded through record `seq`) as the latest snapshot."""
    anchor = next(store.records(seq, seq), None)
    if anchor is None:
        raise JournalError(f"cannot snapshot at record {seq}: no such record")
    snap = Snapshot(seq=seq, hash=anchor.hash, version=version, state=state)
    store.put_snapshot(snap)
    return snap


def due(store: Store, every: int = DEFAULT_EVERY) -> bool:
    """Whether enough records have been appended since the latest snapshot."""
    if every < 1:
        raise ValueError(f"snapshot interval must be >= 1 record, got {every}")
    snap = store.latest_snapshot()
    return store.head()[0] - (snap.seq if snap else 0) >= every


__all__ = ["DEFAULT_EVERY", "Fact", "boot", "checked_facts", "due", "facts", "take"]
