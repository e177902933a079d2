"""Fold speed and boot time vs raw floors measured in the same run; asserts nothing.

1. fold of N events (default 1,000,000) with the chain checked vs a raw LMDB cursor scan plus
   msgspec decode of the same payloads (target >= 0.5);
2. boot from a snapshot at the head of that journal vs folding a 1,000-event journal.
    .venv/bin/python bench/journal_fold.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from journal.lmdb import LmdbStore
from journal.record import CRC_BYTES, TAG_AT, Pending
from journal.scan import checked_facts
from journal.snapshots import take
from oxwrtd.core.fold import fold
from oxwrtd.core.state import STATE_VERSION, encode_state, initial
from oxwrtd.journal_tool import load
from schema import events as ev
from schema.codec import decoder, encode


def stream(n: int) -> list[ev.Event]:
    """Mostly machine chatter, a config push every 1,000 events: a router's real mix, with
    payloads near the 317 bytes PERFORMANCE.md's floors were measured with."""
    rng = random.Random(1)
    out: list[ev.Event] = []
    revision = 0
    detail = "probe 198.51.100.1 via wan0: icmp echo, 3 tries, " * 5
    for i in range(n):
        if i % 1000 == 0:
            revision += 1
            out.append(ev.ConfigProposed(revision=revision, public_toml=f"v = {revision}\n" * 20))
        elif i % 1000 == 1:
            out.append(ev.ConfigApplied(revision=revision))
        elif rng.random() < 0.7:
            out.append(
                ev.HealthProbed(
                    target=f"wan-{i % 4}", ok=rng.random() < 0.9, latency_ms=3.5, detail=detail
                )
            )
        elif rng.random() < 0.5:
            out.append(ev.ServiceStarted(name=f"svc{i % 8}", pid=i, generation=i))
        else:
            out.append(ev.ServiceExited(name=f"svc{i % 8}", pid=i, code=0, signal=None))
    return out


def build(directory: Path, n: int) -> LmdbStore:
    store = LmdbStore(directory, map_size=8 << 30)
    events = stream(n)
    for i in range(0, n, 10_000):
        batch = []
        for e in events[i : i + 10_000]:
            tag, version, payload = encode(e)
            batch.append(Pending(1.7e9 + i, tag, version, payload))
        store.append(batch)
    return store


def raw_scan_decode(store: LmdbStore) -> float:
    dec = decoder()
    start = time.perf_counter()
    for value in store.raw_values():
        dec.decode(value[TAG_AT + value[TAG_AT - 1] : -CRC_BYTES])
    return time.perf_counter() - start


def breakdown(store: LmdbStore, n: int, raw: float) -> None:
    """Where a fold's time goes beyond the floor, each part timed alone in the same run: reading
    and checking every record, and applying already-decoded facts to the state."""
    facts = list(checked_facts(store, rehash=False))
    reads = min(timed(lambda: deque(checked_facts(store, rehash=False), 0)) for _ in range(2))
    hashed = min(timed(lambda: deque(checked_facts(store), 0)) for _ in range(2))
    apply = min(timed(lambda: fold(initial(), facts)) for _ in range(2))
    per = 1e6 / n
    print(
        f"  per event: floor {raw * per:.2f} us; read + check + decode {reads * per:.2f} us "
        f"(+{(hashed - reads) * per:.2f} us to re-hash); apply to state {apply * per:.2f} us"
    )


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    n = parser.parse_args().events
    with (
        tempfile.TemporaryDirectory(dir="/var/tmp") as big,
        tempfile.TemporaryDirectory(dir="/var/tmp") as small,
    ):
        t0 = time.perf_counter()
        store = build(Path(big), n)
        mean = store.stats().bytes_used / n
        print(
            f"built {n:,} events in {time.perf_counter() - t0:.1f}s, {mean:.0f} bytes each on disk"
        )
        raw = min(raw_scan_decode(store) for _ in range(2))
        full = min(timed(lambda: load(store, use_snapshot=False)) for _ in range(2))
        crc = min(timed(lambda: load(store, use_snapshot=False, rehash=False)) for _ in range(2))
        print(f"raw scan + decode: {raw:.2f}s ({n / raw:,.0f}/s)")
        print(
            f"fold, every hash checked: {full:.2f}s ({n / full:,.0f}/s), "
            f"ratio {raw / full:.2f} (target >= 0.5)"
        )
        print(
            f"fold, checksums + links (rehash=False): {crc:.2f}s ({n / crc:,.0f}/s), "
            f"ratio {raw / crc:.2f}"
        )
        breakdown(store, n, raw)

        state = load(store, use_snapshot=False)
        t0 = time.perf_counter()
        snap = take(store, store.head()[0], encode_state(state), STATE_VERSION)
        print(f"snapshot: {len(snap.state):,} bytes, taken in {time.perf_counter() - t0:.3f}s")
        boot = min(timed(lambda: load(store)) for _ in range(5))
        store.close()

        few = build(Path(small), 1000)
        fold_1k = min(timed(lambda: load(few, use_snapshot=False)) for _ in range(5))
        few.close()
        print(
            f"boot from snapshot with {n:,} events: {boot * 1000:.1f} ms; "
            f"folding 1,000 events: {fold_1k * 1000:.1f} ms; ratio {boot / fold_1k:.2f}"
        )


if __name__ == "__main__":
    main()
