"""Retention: compact machine chatter, keep config revisions to their own depth, leave a checkpoint.

Compacting up to seq U rewrites the prefix [first..U']: U' is the last record at or before U that
is dropped. Kept records keep their seqs and content and are re-chained from GENESIS; a
Checkpoint takes seq U', carries the original hash of record U' (`bridge`, so the untouched tail
still verifies) and the state folded through U' (so folding the compacted journal gives the
same state). Dropped: chatter (schema.events.CHATTER_TAGS), older checkpoints, and config
records of revisions older than the newest `config_depth` ones in the prefix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import msgspec

from journal.record import GENESIS, Record, body_of, chain_hash, rechain
from journal.store import Store
from journal.verify import checked
from schema.codec import decode, encode
from schema.events import CHATTER_TAGS, CHECKPOINT_TAG, Checkpoint, revision_of

StateAt = Callable[[int], tuple[bytes, int]]  # seq -> (state folded through seq, state version)


class Compaction(msgspec.Struct, frozen=True):
    upto: int | None  # seq of the checkpoint, None when nothing was dropped
    kept: int
    dropped: int
    dropped_by_tag: dict[str, int]


def compact(store: Store, upto: int, config_depth: int, state_at: StateAt) -> Compaction:
    if config_depth < 1:
        raise ValueError(f"config_depth must be >= 1, got {config_depth}")
    prefix = list(checked(store.records(0, upto)))
    revisions = [revision_of(decode(r.tag, r.version, r.payload)) for r in prefix]
    newest = sorted({rev for rev in revisions if rev is not None})[-config_depth:]
    keep_revs = set(newest)
    dropped_flags = [
        r.tag in CHATTER_TAGS
        or r.tag == CHECKPOINT_TAG
        or (rev is not None and rev not in keep_revs)
        for r, rev in zip(prefix, revisions, strict=True)
    ]
    if not any(dropped_flags):
        return Compaction(None, len(prefix), 0, {})
    last = max(i for i, d in enumerate(dropped_flags) if d)
    region, flags = prefix[: last + 1], dropped_flags[: last + 1]
    boundary = region[-1]
    counts = Counter(r.tag for r, d in zip(region, flags, strict=True) if d)
    kept = rechain([r for r, d in zip(region[:-1], flags[:-1], strict=True) if not d], GENESIS)
    state, version = state_at(boundary.seq)
    tag, ver, payload = encode(
        Checkpoint(
            upto=boundary.seq,
            bridge=boundary.hash,
            dropped=sum(counts.values()),
            dropped_by_tag=dict(sorted(counts.items())),
            state=state,
            state_version=version,
        )
    )
    prev = kept[-1].hash if kept else GENESIS
    h = chain_hash(boundary.seq, prev, body_of(boundary.time, tag, ver, payload))
    checkpoint = Record(boundary.seq, boundary.time, tag, ver, payload, prev, h)
    store.replace_prefix(boundary.seq, [*kept, checkpoint])
    return Compaction(boundary.seq, len(kept), sum(counts.values()), dict(counts))


__all__ = ["Compaction", "StateAt", "compact"]
