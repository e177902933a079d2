"""The store interface every journal backend implements, and what it must guarantee.

Guarantees (tests/journal/test_contract.py checks both backends against them):
- `append` is all-or-nothing and durable when it returns; seqs strictly increase;
- `records` yields what was appended, in seq order, byte for byte;
- a full store raises JournalError and stays readable with everything acknowledged before;
- `replace_prefix` (compaction) and snapshot writes are atomic.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import msgspec

from journal.record import Pending, Record


class Snapshot(msgspec.Struct, frozen=True, gc=False):
    """Folded state as of record `seq` (whose hash is `hash`), in the core's encoding `version`."""

    seq: int
    hash: bytes
    version: int
    state: bytes


class Stats(msgspec.Struct, frozen=True):
    records: int
    first_seq: int | None
    head_seq: int
    head_hash: str
    snapshot_seq: int | None
    bytes_used: int
    bytes_capacity: int | None


class Store(Protocol):
    def append(self, pending: Sequence[Pending]) -> list[Record]:
        """Chain and durably store a batch in one transaction; the records as stored."""
        ...

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]:
        """Records with start <= seq (<= stop), in seq order."""
        ...

    def values(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The same as `records`, as (key, stored value) for the fold's fast path; the key is
        the big-endian seq (journal.record.SEQ)."""
        ...

    def chunks(
        self, start: int = 0, stop: int | None = None, size: int = 2048
    ) -> Iterator[tuple[Sequence[int], list[bytes]]]:
        """The same as `values`, as (seqs, stored values) in lists of 1 to `size` records: the
        fold reads this way to check a chunk at a time (journal/scan.py)."""
        ...

    def head(self) -> tuple[int, bytes]:
        """(seq, hash) of the last record, or (0, GENESIS) when empty."""
        ...

    def put_snapshot(self, snapshot: Snapshot) -> None: ...

    def latest_snapshot(self) -> Snapshot | None: ...

    def replace_prefix(self, upto: int, records: Sequence[Record]) -> None:
        """Atomically drop every record and snapshot with seq <= upto and store `records`."""
        ...

    def stats(self) -> Stats: ...

    def close(self) -> None: ...


__all__ = ["Snapshot", "Stats", "Store"]
