"""The in-memory journal: the LMDB store's twin, verified by the same contract suite.

It keeps packed values exactly as LMDB would, so corruption tests and byte counts behave alike.
`capacity` (bytes of stored values) stands in for LMDB's map size.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from journal.record import GENESIS, SEQ, JournalError, Pending, Record, extend, pack, unpack
from journal.store import Snapshot, Stats


class MemoryStore:
    def __init__(self, capacity: int | None = None) -> None:
        self._seqs: list[int] = []
        self._values: dict[int, bytes] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._capacity = capacity
        self._used = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise JournalError("journal is closed")

    def head(self) -> tuple[int, bytes]:
        self._check_open()
        if not self._seqs:
            return 0, GENESIS
        last = self._seqs[-1]
        return last, unpack(last, self._values[last]).hash

    def append(self, pending: Sequence[Pending]) -> list[Record]:
        self._check_open()
        if not pending:
            return []
        last_seq, last_hash = self.head()
        chained = extend(last_seq, last_hash, pending)
        extra = sum(len(v) for _, v in chained)
        if self._capacity is not None and self._used + extra > self._capacity:
            raise JournalError(
                f"journal is full: {self._used} of {self._capacity} bytes used, "
                f"batch of {len(pending)} needs {extra}; nothing was appended"
            )
        for rec, value in chained:
            self._seqs.append(rec.seq)
            self._values[rec.seq] = value
        self._used += extra
        return [rec for rec, _ in chained]

    def values(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        i = bisect.bisect_left(self._seqs, start)
        for seq in self._seqs[i:]:
            if stop is not None and seq > stop:
                return
            yield SEQ.pack(seq), self._values[seq]

    def chunks(
        self, start: int = 0, stop: int | None = None, size: int = 2048
    ) -> Iterator[tuple[Sequence[int], list[bytes]]]:
        self._check_open()
        if size < 1:
            raise ValueError(f"chunk size must be >= 1 record, got {size}")
        i = bisect.bisect_left(self._seqs, start)
        j = len(self._seqs) if stop is None else bisect.bisect_right(self._seqs, stop)
        for at in range(i, j, size):
            seqs = self._seqs[at : min(at + size, j)]
            yield seqs, [self._values[seq] for seq in seqs]

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]:
        for key, value in self.values(start, stop):
            yield unpack(SEQ.unpack(key)[0], value)

    def put_snapshot(self, snapshot: Snapshot) -> None:
        self._check_open()
        self._snapshots[snapshot.seq] = snapshot

    def latest_snapshot(self) -> Snapshot | None:
        self._check_open()
        return self._snapshots[max(self._snapshots)] if self._snapshots else None

    def replace_prefix(self, upto: int, records: Sequence[Record]) -> None:
        self._check_open()
        if any(r.seq > upto for r in records):
            raise JournalError(f"replace_prefix: records must have seq <= {upto}")
        keep = [s for s in self._seqs if s > upto]
        values = {s: self._values[s] for s in keep}
        values.update({r.seq: pack(r) for r in records})
        self._seqs = sorted(values)
        self._values = values
        self._used = sum(len(v) for v in values.values())
        self._snapshots = {s: v for s, v in self._snapshots.items() if s > upto}

    def stats(self) -> Stats:
        seq, h = self.head()
        snap = self.latest_snapshot()
        return Stats(
            records=len(self._seqs),
            first_seq=self._seqs[0] if self._seqs else None,
            head_seq=seq,
            head_hash=h.hex(),
            snapshot_seq=snap.seq if snap else None,
            bytes_used=self._used,
            bytes_capacity=self._capacity,
        )

    def close(self) -> None:
        self._closed = True


__all__ = ["MemoryStore"]
