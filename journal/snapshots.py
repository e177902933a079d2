"""Boot = latest snapshot + tail; snapshots every N records. Generic over the folded state.

The journal does not know the state's shape: the caller passes `fold` and the state codec
(oxwrtd/core/state.py). A snapshot records the hash of the record it was taken at, so the tail
must chain to exactly that record; a snapshot that does not match (compacted away, other state
version, unreadable) is ignored and boot folds from the start instead: snapshots are caches.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Final, TypeVar

import msgspec

from journal.record import (
    BODY_AT,
    BODY_HEAD,
    CRC_BYTES,
    CRC_RESIDUE,
    GENESIS,
    HASH_AT,
    PREV_AT,
    TAG_AT,
    JournalError,
    Record,
    checksum_ok,
    problem,
    unpack,
)
from journal.store import Snapshot, Store
from journal.verify import links_after
from schema.codec import CodecError, decode, decoder
from schema.events import CHECKPOINT_TAG, TYPES_BY_TAG, VERSIONS, Event

S = TypeVar("S")
Fact = tuple[int, float, Event]
Fold = Callable[[S, Iterable[Fact]], S]

DEFAULT_EVERY: Final = 50_000  # PERFORMANCE.md: snapshot every 50-100k events


def facts(records: Iterable[Record]) -> Iterator[Fact]:
    """Decode records into (seq, time, event); an undecodable record stops the fold, named."""
    for r in records:
        try:
            yield r.seq, r.time, decode(r.tag, r.version, r.payload)
        except CodecError as exc:
            raise JournalError(f"record {r.seq}: {exc}; refusing to fold past it") from exc


# Stored header bytes (version, tag length, tag) of each event type at its current version;
# checkpoints are left out on purpose: they always take the slow path, which reads the bridge.
_CURRENT_HEADER: Final = {
    cls: struct.pack(">HB", VERSIONS[t], len(t.encode())) + t.encode()
    for t, cls in TYPES_BY_TAG.items()
    if t != CHECKPOINT_TAG
}


def checked_facts(
    store: Store,
    start: int = 0,
    after: tuple[bytes, ...] = (GENESIS,),
    *,
    stop: int | None = None,
    rehash: bool = True,
) -> Iterator[Fact]:
    """Facts from `start` (through `stop`), each record checked: checksum, link and, with
    `rehash`, its SHA-256. Stops with JournalError at the first bad one.

    The hot loop of boot and replay: it decodes current-version payloads with the shared decoder
    straight from the stored value; anything unusual (a bad record, an old version, a checkpoint)
    takes the slow, fully checked path, which names the problem. `rehash=False` keeps the
    checksum and links (bit rot, lost or reordered records) and skips the hash (deliberate edits
    with a fixed-up checksum), which is most of the cost; `oxwrtd journal verify` checks all.
    """
    dec = decoder()
    header_of = _CURRENT_HEADER
    crc32, head, sha256, to_int = zlib.crc32, BODY_HEAD.unpack_from, hashlib.sha256, int.from_bytes
    link, bridge = after[0], (after[1] if len(after) > 1 else None)
    for key, value in store.values(start, stop):
        if (
            crc32(value) != CRC_RESIDUE
            or not (
                value.startswith(link, PREV_AT) or (bridge and value.startswith(bridge, PREV_AT))
            )
            or (rehash and sha256(key + value[PREV_AT:-CRC_BYTES]).digest() != value[:PREV_AT])
        ):
            why = _why_bad(to_int(key), value, link, bridge)
            raise JournalError(f"{why}; refusing to go past it")
        seq = to_int(key)
        time, _, tag_len = head(value, BODY_AT)
        try:
            event = dec.decode(value[TAG_AT + tag_len : -CRC_BYTES])
            # the header must be this event's current (version, tag): else the slow path
            fast = value.startswith(header_of.get(type(event), b"-"), BODY_AT + 8)
        except (msgspec.DecodeError, msgspec.ValidationError):
            fast = False
        if fast:
            link, bridge = value[HASH_AT:PREV_AT], None
        else:  # an older version, a checkpoint (bridge), or a bad payload, named
            rec = unpack(seq, value)
            try:
                event = decode(rec.tag, rec.version, rec.payload)
            except CodecError as exc:
                raise JournalError(f"record {seq}: {exc}; refusing to fold past it") from exc
            nxt = links_after(rec)
            link, bridge = nxt[0], (nxt[1] if len(nxt) > 1 else None)
        yield seq, time, event


def _why_bad(seq: int, value: bytes, link: bytes, bridge: bytes | None) -> str:
    if not checksum_ok(value):
        return f"record {seq}: stored bytes fail their checksum (corrupted)"
    return problem(unpack(seq, value), (link, bridge or link)) or f"record {seq}: malformed"


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
