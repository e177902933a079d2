"""LMDB reliability: durability across SIGKILL, corruption named, one writer, reopen."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from journal_samples import pending, samples

from journal.lmdb import LmdbStore
from journal.record import JournalError
from journal.verify import verify
from oxwrtd.journal_tool import load
from schema.events import HealthProbed

REPO = Path(__file__).resolve().parents[2]

# The writer prints each seq after append() returns: printed means acknowledged.
WRITER = textwrap.dedent(
    """
    import random, sys
    from journal.lmdb import LmdbStore
    from journal.record import Pending
    from schema.codec import encode
    from schema.events import HealthProbed
    store = LmdbStore(sys.argv[1])
    print("ready", flush=True)
    while True:
        batch = []
        for _ in range(random.choice((1, 1, 3, 50))):
            tag, ver, payload = encode(HealthProbed(target="wan", ok=True, detail="x" * 200))
            batch.append(Pending(0.0, tag, ver, payload))
        for rec in store.append(batch):
            print(rec.seq, flush=True)
    """
)


def spawn_writer(directory: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigkill_at_random_points_never_loses_an_acknowledged_append(tmp_path):
    rng = random.Random(3)
    acked: set[int] = set()
    for _ in range(12):
        child = spawn_writer(tmp_path)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr and child.stderr.read()
        time.sleep(rng.uniform(0.0, 0.08))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        acked.update(int(line) for line in out.split() if line.isdigit())
        with LmdbStore(tmp_path, readonly=True) as store:
            report = verify(store)
            assert report.ok, report.problem
            seqs = [r.seq for r in store.records()]
            assert seqs == list(range(1, len(seqs) + 1)), "a partial batch or a gap"
            assert acked <= set(seqs), f"lost acknowledged {sorted(acked - set(seqs))[:5]}"
    assert len(acked) > 50


def test_freed_process_memory_never_reaches_the_data_file(tmp_path):
    """LMDB builds new pages in malloc'd buffers; unless told to zero them (meminit), the unused
    part of a page carries whatever the heap held before: a secret from a push a moment ago.
    Found by test_signed_secrets failing once in 60 runs; this makes it happen every time."""
    marker = b"secret-in-freed-heap-"
    store = LmdbStore(tmp_path / "j")
    for _ in range(20):
        junk = [marker * (4000 // len(marker)) + bytes([i]) for i in range(200)]
        del junk  # back to malloc's free lists, where LMDB's next pages come from
        store.append(pending([HealthProbed(target="wan", ok=True)] * 30))
    store.close()
    assert marker not in (tmp_path / "j" / "data.mdb").read_bytes()


def test_a_second_writer_is_refused_clearly(tmp_path):
    with (
        LmdbStore(tmp_path),
        pytest.raises(JournalError, match=r"another process \(pid \d+\) is writing"),
    ):
        LmdbStore(tmp_path)


def test_a_writer_in_another_process_blocks_this_one(tmp_path):
    child = spawn_writer(tmp_path)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(JournalError, match=f"pid {child.pid}"):
            LmdbStore(tmp_path)
        assert child.stdout.readline().strip().isdigit()
        with LmdbStore(tmp_path, readonly=True) as reader:  # readers run beside the writer
            assert verify(reader).ok
    finally:
        child.kill()
        child.communicate()
    LmdbStore(tmp_path).close()  # the lock dies with its holder


def test_reopen_continues_the_chain(tmp_path):
    with LmdbStore(tmp_path) as store:
        first = store.append(pending(samples()[:4]))
    with LmdbStore(tmp_path) as store:
        assert store.head() == (4, first[-1].hash)
        more = store.append(pending(samples()[4:]))
        assert more[0].prev_hash == first[-1].hash
        assert verify(store).ok


def test_readonly_store_refuses_writes_and_missing_journal_is_named(tmp_path):
    with pytest.raises(JournalError, match="no journal here"):
        LmdbStore(tmp_path / "nothing", readonly=True)
    LmdbStore(tmp_path).close()
    with (
        LmdbStore(tmp_path, readonly=True) as store,
        pytest.raises(JournalError, match="read-only"),
    ):
        store.append(pending(samples()[:1]))


def _journal_with_marker(directory: Path, marked: int) -> None:
    events = [
        HealthProbed(target="wan", ok=True, detail=("MARKER" if i == marked else "plain") * 8)
        for i in range(1, 21)
    ]
    with LmdbStore(directory) as store:
        store.append(pending(events))


def test_a_flipped_byte_in_the_data_file_is_named_and_fold_refuses_to_pass_it(tmp_path):
    _journal_with_marker(tmp_path, marked=13)
    data = tmp_path / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(b"MARKER")
    while at != -1:  # every copy: LMDB may keep a stale page holding it too
        raw[at] ^= 0x01
        at = raw.find(b"MARKER", at + 1)
    data.write_bytes(bytes(raw))
    with LmdbStore(tmp_path, readonly=True) as store:
        report = verify(store)
        assert (report.ok, report.first_bad, report.records) == (False, 13, 12)
        for rehash in (True, False):
            with pytest.raises(JournalError, match=r"record 13: .*checksum.*refusing to go past"):
                load(store, rehash=rehash)


def test_a_truncated_data_file_is_refused_at_open(tmp_path):
    _journal_with_marker(tmp_path, marked=1)
    data = tmp_path / "data.mdb"
    size = data.stat().st_size
    with data.open("r+b") as f:
        f.truncate(size - 4096)
    with pytest.raises(JournalError, match=r"data\.mdb: data file is truncated"):
        LmdbStore(tmp_path, readonly=True)
    with pytest.raises(JournalError, match=r"data\.mdb: data file is truncated"):
        LmdbStore(tmp_path)


def test_a_garbled_data_file_is_refused_at_open(tmp_path):
    _journal_with_marker(tmp_path, marked=1)
    data = tmp_path / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[: 2 * 4096] = random.Random(1).randbytes(2 * 4096)
    data.write_bytes(bytes(raw))
    with pytest.raises(JournalError, match=r"data\.mdb: cannot open journal"):
        LmdbStore(tmp_path, readonly=True)


def test_map_full_leaves_the_journal_reopenable_with_every_acknowledged_record(tmp_path):
    acked = 0
    with LmdbStore(tmp_path, map_size=64 * 1024) as store:
        with pytest.raises(JournalError, match="journal is full"):
            while True:
                acked += len(store.append(pending([samples()[0]] * 5)))
        assert store.head()[0] == acked
    with LmdbStore(tmp_path, readonly=True, map_size=64 * 1024) as store:
        assert verify(store).ok
        assert len(list(store.records())) == acked
