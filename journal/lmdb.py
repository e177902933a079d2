"""The LMDB journal: durable, ordered, one writer process at a time. The only lmdb import.

- keys are big-endian seqs, so LMDB order is seq order and appends use MDB_APPEND;
- every commit is durable (sync and metasync on): `append` returning means on disk;
- a writer holds an flock on DIR/writer.lock; a second writer gets JournalError, not interleaving;
- lmdb errors (map full, disk full, corrupt or truncated file) become JournalError naming the file.
A truncated data.mdb is refused at open: reading pages past the end of a mapped file is SIGBUS.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Final

import lmdb
import msgspec

from journal.record import GENESIS, SEQ, JournalError, Pending, Record, extend, pack, unpack
from journal.store import Snapshot, Stats

DEFAULT_MAP_SIZE: Final = 1 << 30  # 1 GiB of address space; pages are only used as written
KEEP_SNAPSHOTS: Final = 2  # the latest, and one before it in case the latest proves unusable
_SNAPSHOT_CODEC: Final = (msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(Snapshot))


class LmdbStore:
    def __init__(
        self, directory: Path, *, readonly: bool = False, map_size: int = DEFAULT_MAP_SIZE
    ) -> None:
        self.directory = Path(directory)
        self._data = self.directory / "data.mdb"
        self._lock_fd: int | None = None
        if readonly:
            if not self._data.exists():
                raise JournalError(f"{self._data}: no journal here")
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _take_writer_lock(self.directory / "writer.lock")
        try:
            self._check_has_meta_pages()
            self._env: Any = lmdb.open(
                str(self.directory),
                map_size=map_size,
                subdir=True,
                max_dbs=2,
                readonly=readonly,
                sync=True,
                metasync=True,
                # zero the unused part of each new page: without it, freed heap (a secret the
                # daemon held a moment ago) reaches the file in clear
                meminit=True,
                create=not readonly,
            )
            self._check_has_every_page()
            self._records = self._env.open_db(b"records", create=not readonly)
            self._snapshots = self._env.open_db(b"snapshots", create=not readonly)
            self._head = self._read_head()
        except lmdb.Error as exc:
            self._release_lock()
            raise JournalError(f"{self._data}: cannot open journal ({exc})") from exc
        except JournalError:
            self._release_lock()
            raise
        self._map_size = map_size

    def _check_has_meta_pages(self) -> None:
        if self._data.exists() and 0 < self._data.stat().st_size < 2 * 4096:
            raise JournalError(f"{self._data}: data file is truncated (no meta pages)")

    def _check_has_every_page(self) -> None:
        """Refuse a data file shorter than the pages its meta page claims."""
        info, stat = self._env.info(), self._env.stat()
        needed = (info["last_pgno"] + 1) * stat["psize"]
        size = self._data.stat().st_size
        if size < needed:
            self._env.close()
            raise JournalError(
                f"{self._data}: data file is truncated ({size} bytes, its pages need {needed})"
            )

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _read_head(self) -> tuple[int, bytes]:
        with self._env.begin(db=self._records) as txn:
            cur = txn.cursor()
            if not cur.last():
                return 0, GENESIS
            seq = SEQ.unpack(cur.key())[0]
            return seq, unpack(seq, cur.value()).hash

    def _env_open(self) -> Any:
        if self._env is None:
            raise JournalError(f"{self.directory}: journal is closed")
        return self._env

    def head(self) -> tuple[int, bytes]:
        self._env_open()
        return self._head

    def append(self, pending: Sequence[Pending]) -> list[Record]:
        if self._lock_fd is None:
            raise JournalError(f"{self.directory}: opened read-only; cannot append")
        if not pending:
            return []
        chained = extend(*self._head, pending)
        try:
            with self._env_open().begin(write=True, db=self._records) as txn:
                for rec, value in chained:
                    if not txn.put(SEQ.pack(rec.seq), value, append=True):
                        raise JournalError(f"record {rec.seq}: seq already present")
        except lmdb.Error as exc:
            raise _write_error(self._data, self._map_size, len(pending), exc) from exc
        last = chained[-1][0]
        self._head = (last.seq, last.hash)
        return [rec for rec, _ in chained]

    def values(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        env = self._env_open()
        try:
            with env.begin(db=self._records) as txn:
                cur = txn.cursor()
                if not cur.set_range(SEQ.pack(start)):
                    return
                if stop is None:
                    yield from cur.iternext()
                    return
                last = SEQ.pack(stop)  # big-endian: byte order is seq order
                for key, value in cur.iternext():
                    if key > last:
                        return
                    yield key, value
        except lmdb.Error as exc:
            raise JournalError(f"{self._data}: cannot read records ({exc})") from exc

    def chunks(
        self, start: int = 0, stop: int | None = None, size: int = 2048
    ) -> Iterator[tuple[Sequence[int], list[bytes]]]:
        """Values only (no key objects) in the common case: a chunk whose first and last keys
        are as far apart as it is long has no gap, so its seqs are a range. A chunk with a gap
        (compaction drops seqs) is read again with its keys."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1 record, got {size}")
        env, to_int = self._env_open(), int.from_bytes
        try:
            with env.begin(db=self._records) as txn:
                cur = txn.cursor()
                if not cur.set_range(SEQ.pack(start)):
                    return
                while True:
                    first = to_int(cur.key())
                    if stop is not None and first > stop:
                        return
                    want = size if stop is None else min(size, stop - first + 1)
                    # iternext yields the current record first and stays on the last it gave
                    values = list(islice(cur.iternext(keys=False), want))
                    ended = len(values) < want
                    if ended:
                        cur.last()
                    last = to_int(cur.key())
                    if last - first + 1 == len(values):
                        yield range(first, last + 1), values
                    else:
                        cur.set_range(SEQ.pack(first))
                        pairs = [(to_int(k), v) for k, v in islice(cur.iternext(), want)]
                        kept = [(s, v) for s, v in pairs if stop is None or s <= stop]
                        yield [s for s, _ in kept], [v for _, v in kept]
                        if len(kept) < len(pairs):
                            return
                        ended = len(pairs) < want
                    if ended or not cur.next():
                        return
        except lmdb.Error as exc:
            raise JournalError(f"{self._data}: cannot read records ({exc})") from exc

    def records(self, start: int = 0, stop: int | None = None) -> Iterator[Record]:
        for key, value in self.values(start, stop):
            yield unpack(SEQ.unpack(key)[0], value)

    def raw_values(self) -> Iterator[bytes]:
        """Stored values straight from the cursor: the floor the benches compare against."""
        with self._env_open().begin(db=self._records) as txn:
            for _, value in txn.cursor():
                yield value

    def put_snapshot(self, snapshot: Snapshot) -> None:
        try:
            with self._env_open().begin(write=True, db=self._snapshots) as txn:
                txn.put(SEQ.pack(snapshot.seq), _SNAPSHOT_CODEC[0].encode(snapshot))
                keys = [k for k, _ in txn.cursor()]
                for key in keys[:-KEEP_SNAPSHOTS]:
                    txn.delete(key)
        except lmdb.Error as exc:
            raise _write_error(self._data, self._map_size, 0, exc) from exc

    def latest_snapshot(self) -> Snapshot | None:
        with self._env_open().begin(db=self._snapshots) as txn:
            cur = txn.cursor()
            if not cur.last():
                return None
            try:
                return _SNAPSHOT_CODEC[1].decode(cur.value())
            except msgspec.DecodeError:
                return None  # a snapshot is a cache: an unreadable one means fold from the start

    def replace_prefix(self, upto: int, records: Sequence[Record]) -> None:
        if self._lock_fd is None:
            raise JournalError(f"{self.directory}: opened read-only; cannot compact")
        if any(r.seq > upto for r in records):
            raise JournalError(f"replace_prefix: records must have seq <= {upto}")
        try:
            with self._env_open().begin(write=True) as txn:
                for db in (self._records, self._snapshots):
                    cur = txn.cursor(db=db)
                    while cur.first() and SEQ.unpack(cur.key())[0] <= upto:
                        cur.delete()
                for rec in records:
                    txn.put(SEQ.pack(rec.seq), pack(rec), db=self._records)
        except lmdb.Error as exc:
            raise _write_error(self._data, self._map_size, len(records), exc) from exc
        self._head = self._read_head()

    def stats(self) -> Stats:
        with self._env_open().begin(db=self._records) as txn:
            cur = txn.cursor()
            first = SEQ.unpack(cur.key())[0] if cur.first() else None
            count = txn.stat(self._records)["entries"]
        info, stat = self._env_open().info(), self._env_open().stat()
        snap = self.latest_snapshot()
        return Stats(
            records=count,
            first_seq=first,
            head_seq=self._head[0],
            head_hash=self._head[1].hex(),
            snapshot_seq=snap.seq if snap else None,
            bytes_used=(info["last_pgno"] + 1) * stat["psize"],
            bytes_capacity=info["map_size"],
        )

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        self._release_lock()

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _take_writer_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"{path.parent}: another process (pid {holder}) is writing this journal; "
            "one writer at a time"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _write_error(data: Path, map_size: int, batch: int, exc: Any) -> JournalError:
    if isinstance(exc, lmdb.MapFullError):
        return JournalError(
            f"{data}: journal is full (map size {map_size} bytes); the batch of {batch} "
            "was not appended and everything before it is intact"
        )
    full = f"{data}: disk is full; the batch of {batch} was not appended and the journal is intact"
    if (
        isinstance(exc, lmdb.DiskError)
        or getattr(exc, "errno", None) == errno.ENOSPC
        or os.strerror(errno.ENOSPC) in str(exc)
    ):
        return JournalError(full)
    # LMDB 0.9 reports a short write as EIO (mdb_page_flush: "short write, filesystem full?"),
    # and a filesystem filling mid-write makes one: about a third of real disk-full failures
    # arrive so (tests/journal/test_journal_disk_full.py). EIO with no room left where the journal
    # lives is disk full; the 64 KiB margin (a commit needs several 4 KiB pages) allows for
    # filesystems that report free space loosely (UBIFS, btrfs).
    if str(exc).endswith(os.strerror(errno.EIO)):
        try:
            fs = os.statvfs(data.parent)
        except OSError:
            fs = None
        if fs is not None and fs.f_bavail * fs.f_frsize < 64 * 1024:
            return JournalError(f"{full} (a write was cut short: {exc})")
    return JournalError(f"{data}: write failed ({exc}); the batch of {batch} was not appended")


__all__ = ["DEFAULT_MAP_SIZE", "LmdbStore"]
