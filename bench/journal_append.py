"""Durable journal appends vs raw LMDB put+commit of the same bytes with the same sync settings.

Prints rates and ratios (targets: single >= 0.8, batch of 100 reported); asserts nothing.
    .venv/bin/python bench/journal_append.py [--singles 300] [--batches 50] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from journal.lmdb import LmdbStore
from journal.record import SEQ, Pending, extend
from schema.codec import encode
from schema.events import HealthProbed

EVENT = HealthProbed(target="wan", ok=True, latency_ms=3.25, detail="x" * 260)


def pending() -> Pending:
    tag, version, payload = encode(EVENT)
    return Pending(time.time(), tag, version, payload)


def raw_env(directory: Path) -> tuple[lmdb.Environment, object]:
    env = lmdb.open(str(directory), map_size=1 << 30, max_dbs=2, sync=True, metasync=True)
    return env, env.open_db(b"records")


def raw_run(directory: Path, txns: int, per_txn: int) -> float:
    """The floor: the same packed values (hashes included), put and committed by hand."""
    values = [v for _, v in extend(0, bytes(32), [pending()] * (txns * per_txn))]
    env, db = raw_env(directory)
    seq = 0
    start = time.perf_counter()
    for _ in range(txns):
        with env.begin(write=True, db=db) as txn:
            for _ in range(per_txn):
                seq += 1
                txn.put(SEQ.pack(seq), values[seq - 1], append=True)
    elapsed = time.perf_counter() - start
    env.close()
    return txns * per_txn / elapsed


def journal_run(directory: Path, txns: int, per_txn: int) -> float:
    store = LmdbStore(directory)
    batch = [pending()] * per_txn
    start = time.perf_counter()
    for _ in range(txns):
        store.append(batch)
    elapsed = time.perf_counter() - start
    store.close()
    return txns * per_txn / elapsed


def compare(name: str, txns: int, per_txn: int, target: float | None, rounds: int) -> None:
    """Paired rounds, alternating which side goes first; the disk is shared, so pair ratios."""
    raws: list[float] = []
    ours: list[float] = []
    ratios: list[float] = []
    for i in range(rounds):
        runs: list[tuple[list[float], Callable[[Path, int, int], float]]] = [
            (raws, raw_run),
            (ours, journal_run),
        ]
        for out, fn in runs if i % 2 == 0 else runs[::-1]:
            with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
                out.append(fn(Path(d), txns, per_txn))
        ratios.append(ours[-1] / raws[-1])
    raw, mine = statistics.median(raws), statistics.median(ours)
    goal = f" (target >= {target})" if target else ""
    print(
        f"{name}: journal {mine:,.0f}/s, raw lmdb {raw:,.0f}/s, "
        f"median paired ratio {statistics.median(ratios):.2f}{goal}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--singles", type=int, default=300, help="appends per round")
    parser.add_argument("--batches", type=int, default=50, help="batches of 100 per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print(f"event payload {len(encode(EVENT)[2])} bytes; {args.rounds} alternating paired rounds")
    compare("durable append, 1 per txn", args.singles, 1, 0.8, args.rounds)
    compare("durable append, 100 per txn", args.batches, 100, None, args.rounds)


if __name__ == "__main__":
    main()
