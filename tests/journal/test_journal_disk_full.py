"""Disk full: a real filesystem filling up fails an append clearly and the journal stays whole.

The writer runs as a child in a private mount namespace over a small tmpfs: the mount exists
only while the child lives, so the host's mount table never sees it, even if the child crashes.
The map is far larger than the filesystem, so the filesystem fills first: this is not map-full
(that one is in test_journal_lmdb.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest
from journal_samples import pending, samples

from journal.lmdb import LmdbStore
from journal.record import GENESIS, SEQ, JournalError, Pending, pack, unpack
from journal.verify import verify

REPO: Final = Path(__file__).resolve().parents[2]
HERE: Final = Path(__file__).resolve().parent

TMPFS_BYTES: Final = 512 * 1024  # room for the env and ~1750 records; fills in under a second
FILLER_BYTES: Final = 64 * 1024  # written before the journal, deleted later to free space
MAP_SIZE: Final = 64 << 20  # 128 times the filesystem: the map can never be what fills

# The child imports this module and prints the outcome as one JSON line.
CHILD: Final = (
    "import json, sys; from pathlib import Path; "
    "from test_journal_disk_full import fill_then_recover; "
    "print(json.dumps(fill_then_recover(int(sys.argv[1]), Path(sys.argv[2]))))"
)


def _batch(first_seq: int, size: int) -> list[Pending]:
    """Every event type in turn (signed ones too, so verify checks signatures), distinct times."""
    every = samples()
    events = [every[(first_seq + i) % len(every)] for i in range(size)]
    return pending(events, t0=1_700_000_000.0 + first_seq)


def _append_until_refused(store: LmdbStore, size: int, acked: dict[int, bytes]) -> JournalError:
    # Ends on disk full, or on map full if the filesystem somehow never fills (the test fails).
    while True:
        try:
            records = store.append(_batch(len(acked) + 1, size))
        except JournalError as exc:
            return exc
        acked.update((rec.seq, pack(rec)) for rec in records)  # returned: acknowledged


def _head_of(acked: dict[int, bytes]) -> list[object]:
    if not acked:
        return [0, GENESIS.hex()]
    last = max(acked)
    return [last, unpack(last, acked[last]).hash.hex()]


def _survey(store: LmdbStore, acked: dict[int, bytes]) -> dict[str, object]:
    """What the store holds, compared byte for byte with what append acknowledged."""
    stored = {SEQ.unpack(key)[0]: bytes(value) for key, value in store.values()}
    report = verify(store)
    seq, hash_ = store.head()
    return {
        "missing_or_changed": sorted(s for s, v in acked.items() if stored.get(s) != v),
        "unacknowledged": sorted(stored.keys() - acked.keys()),
        "head": [seq, hash_.hex()],
        "verify_ok": report.ok,
        "verify_problem": report.problem,
    }


def fill_then_recover(size: int, mount: Path) -> dict[str, object]:
    """Run in the child, on the small tmpfs: fill it, reopen twice, free space, append again."""
    filler = mount / "filler"
    filler.write_bytes(bytes(FILLER_BYTES))
    journal = mount / "journal"
    acked: dict[int, bytes] = {}
    with LmdbStore(journal, map_size=MAP_SIZE) as store:
        refused = _append_until_refused(store, size, acked)
        head_after_failure = [store.head()[0], store.head()[1].hex()]
    with LmdbStore(journal, map_size=MAP_SIZE) as store:
        reopened = _survey(store, acked)
    with LmdbStore(journal, readonly=True, map_size=MAP_SIZE) as store:
        read_only = _survey(store, acked)
    last_before_freeing = _head_of(acked)
    filler.unlink()
    with LmdbStore(journal, map_size=MAP_SIZE) as store:
        appended = store.append(_batch(len(acked) + 1, size))
        acked.update((rec.seq, pack(rec)) for rec in appended)
    with LmdbStore(journal, readonly=True, map_size=MAP_SIZE) as store:
        after_freeing = _survey(store, acked)
    return {
        "error": str(refused),
        "cause": repr(refused.__cause__),
        "acked": len(acked) - len(appended),
        "last_acked": last_before_freeing,
        "head_after_failure": head_after_failure,
        "reopened": reopened,
        "read_only": read_only,
        "appended_after_freeing": [rec.seq for rec in appended],
        "last_after_freeing": _head_of(acked),
        "after_freeing": after_freeing,
    }


def _private_mount(command: list[str], mount: Path) -> list[str]:
    """`command` (with the mount point as its last argument) over a fresh tmpfs at `mount`."""
    script = 'mount -t tmpfs -o size="$1" oxwrt-disk-full "$2" && shift 2 && exec "$@"'
    return [
        *("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"),
        *(str(TMPFS_BYTES), str(mount), *command, str(mount)),
    ]


@pytest.fixture
def mount_point(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs in a private mount namespace")
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs unshare and mount (util-linux)")
    mount = tmp_path / "fs"
    mount.mkdir()
    probe = subprocess.run(
        _private_mount(["true"], mount), capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace: {probe.stderr.strip()}")
    return mount


# The filesystem refuses a commit in one of two ways, and both must read as disk full: ENOSPC
# when no block is left at all, or a short write (LMDB says EIO) when a commit needs several new
# pages and fewer remain. With these sizes the fill ends the same way every run: batches of 7
# add about a page per commit; batches of 48 add several at once.
ENDINGS: Final = [
    pytest.param(7, "No space left on device", id="enospc"),
    pytest.param(48, "Input/output error", id="short-write"),
]


@pytest.mark.lab
@pytest.mark.parametrize(("size", "ending"), ENDINGS)
def test_disk_full_refuses_the_batch_clearly_and_keeps_every_acknowledged_record(
    mount_point, size, ending
):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)])}
    child = subprocess.run(
        _private_mount([sys.executable, "-c", CHILD, str(size)], mount_point),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])

    # The refusal says disk full (not map full), names the file, and came from the filesystem.
    assert ending in result["cause"], (
        f"the fill ended with {result['cause']}, not {ending!r}: this case no longer covers "
        "what it is named for; pick another batch size"
    )
    assert "disk is full" in result["error"], result["error"]
    assert "journal is full" not in result["error"]
    assert str(mount_point / "journal" / "data.mdb") in result["error"]

    acked = result["acked"]
    assert acked >= 10 * size, "the filesystem should hold many batches before it fills"
    assert acked % size == 0
    assert result["head_after_failure"] == result["last_acked"] == [acked, result["last_acked"][1]]

    # Reopened read-write and read-only: every acknowledged record byte for byte, nothing of the
    # refused batch, the head where the last acknowledged append left it, the chain intact.
    intact = {
        "missing_or_changed": [],
        "unacknowledged": [],
        "head": result["last_acked"],
        "verify_ok": True,
        "verify_problem": None,
    }
    assert result["reopened"] == intact
    assert result["read_only"] == intact

    # Once space is freed the same journal takes the next batch, chained after the old head.
    assert result["appended_after_freeing"] == list(range(acked + 1, acked + size + 1))
    assert result["after_freeing"] == {**intact, "head": result["last_after_freeing"]}
    assert result["last_after_freeing"][0] == acked + size
