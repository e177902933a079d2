"""Reading the journal back with every record checked: the hot loop of boot and replay.

Records come from the store in chunks. A chunk is checked by C-level passes over all its values
at once (checksums, links, with `rehash` the SHA-256 of each record, current-version headers),
decoded, and handed on as a lazy zip of (seq, time, event): the fold's loop lets go of each
tuple before asking for the next, so zip reuses it and no per-fact tuple is built. A per-record
generator loop costs about 1.4x as much (bench/journal_fold.py prints both).

Anything unusual in a chunk (a bad record, an older event version, a checkpoint and the bridge
after it) sends the whole chunk through the per-record path, which checks one record at a time
and names the first problem. Both paths give the same facts and the same errors for any
journal: tests/journal/test_journal_scan.py checks that on random journals with random damage.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain, repeat
from operator import add, eq, getitem, itemgetter, methodcaller
from typing import Final, cast

import msgspec

from journal.record import (
    BODY_AT,
    BODY_HEAD,
    CRC_BYTES,
    CRC_RESIDUE,
    GENESIS,
    HASH_AT,
    PREV_AT,
    SEQ,
    TAG_AT,
    JournalError,
    checksum_ok,
    problem,
    unpack,
)
from journal.store import Store
from journal.verify import links_after
from schema.codec import CodecError, decode, decoder
from schema.events import CHECKPOINT_TAG, TYPES_BY_TAG, VERSIONS, Event

Fact = tuple[int, float, Event]

CHUNK: Final = 2048  # records per chunk: big enough to amortise the passes, small in memory

# Stored header bytes (version, tag length, tag) of each event type at its current version;
# checkpoints are left out on purpose: they always take the per-record path, which reads the
# bridge.
_CURRENT_HEADER: Final = {
    cls: struct.pack(">HB", VERSIONS[t], len(t.encode())) + t.encode()
    for t, cls in TYPES_BY_TAG.items()
    if t != CHECKPOINT_TAG
}
_HEADER_AT: Final = BODY_AT + 8  # after the time
_HASH: Final = slice(HASH_AT, PREV_AT)
_PREV: Final = slice(PREV_AT, BODY_AT)
_HASHED: Final = slice(PREV_AT, -CRC_BYTES)  # a record's hash covers its seq and these bytes
_TIME: Final = struct.Struct(">d")
_cut = cast("Callable[[bytes, slice], bytes]", getitem)  # getitem's overloads defeat map's typing


class _Links:
    """What the next record may chain to: the last hash, and a checkpoint's bridge after one."""

    __slots__ = ("bridge", "link")

    def __init__(self, after: tuple[bytes, ...]) -> None:
        self.link = after[0]
        self.bridge = after[1] if len(after) > 1 else None


def checked_facts(
    store: Store,
    start: int = 0,
    after: tuple[bytes, ...] = (GENESIS,),
    *,
    stop: int | None = None,
    rehash: bool = True,
    chunk: int = CHUNK,
) -> Iterator[Fact]:
    """Facts from `start` (through `stop`), each record checked: checksum, link and, with
    `rehash`, its SHA-256. Stops with JournalError at the first bad one, after yielding every
    fact before it.

    `rehash=False` keeps the checksum and links (bit rot, lost or reordered records) and skips
    the hash (deliberate edits with a fixed-up checksum, which a forger would re-hash anyway),
    most of the cost; `oxwrtd journal verify` checks everything.
    """
    return chain.from_iterable(
        _chunks_of_facts(store, start, after, stop=stop, rehash=rehash, size=chunk)
    )


def _chunks_of_facts(
    store: Store,
    start: int,
    after: tuple[bytes, ...],
    *,
    stop: int | None,
    rehash: bool,
    size: int,
) -> Iterator[Iterable[Fact]]:
    # chain.from_iterable drains each chunk before asking for the next, so the per-record path
    # has moved `links` on by the time the next chunk is checked against it
    links = _Links(after)
    for seqs, values in store.chunks(start, stop, size):
        fast = _checked_chunk(seqs, values, links, rehash)
        yield _one_by_one(seqs, values, links, rehash) if fast is None else fast


def _checked_chunk(
    seqs: Sequence[int], values: list[bytes], links: _Links, rehash: bool
) -> Iterable[Fact] | None:
    """The chunk's facts if every record is sound and current, else None (take the slow path).
    Only `links.link` is tried: a record chaining to a checkpoint's bridge goes the slow way."""
    if not all(map(eq, map(zlib.crc32, values), repeat(CRC_RESIDUE))):
        return None
    hashes = list(map(_cut, values, repeat(_HASH)))
    prevs = list(map(_cut, values, repeat(_PREV)))
    if prevs[0] != links.link or hashes[:-1] != prevs[1:]:
        return None
    if rehash:
        hashed = map(add, map(SEQ.pack, seqs), map(_cut, values, repeat(_HASHED)))
        if list(map(methodcaller("digest"), map(hashlib.sha256, hashed))) != hashes:
            return None
    dec = decoder()
    try:
        events = [dec.decode(v[TAG_AT + v[TAG_AT - 1] : -CRC_BYTES]) for v in values]
    except (msgspec.DecodeError, msgspec.ValidationError, IndexError):
        return None
    # each header must be its event's current (version, tag), else it needs upcasting
    headers = map(_CURRENT_HEADER.get, map(type, events), repeat(b"-"))
    if not all(map(bytes.startswith, values, headers, repeat(_HEADER_AT))):
        return None
    times = map(itemgetter(0), map(_TIME.unpack_from, values, repeat(BODY_AT)))
    links.link, links.bridge = hashes[-1], None
    return zip(seqs, list(times), events, strict=True)


def _one_by_one(
    seqs: Sequence[int], values: list[bytes], links: _Links, rehash: bool
) -> Iterator[Fact]:
    """The per-record path: checks and decodes one record at a time, names the first problem,
    upcasts older versions and follows checkpoints."""
    head, sha256 = BODY_HEAD.unpack_from, hashlib.sha256
    for seq, value in zip(seqs, values, strict=True):
        link, bridge = links.link, links.bridge
        if (
            zlib.crc32(value) != CRC_RESIDUE
            or not (
                value.startswith(link, PREV_AT) or (bridge and value.startswith(bridge, PREV_AT))
            )
            or (rehash and sha256(SEQ.pack(seq) + value[_HASHED]).digest() != value[_HASH])
        ):
            raise JournalError(f"{_why_bad(seq, value, link, bridge)}; refusing to go past it")
        rec = unpack(seq, value)
        try:
            event = decode(rec.tag, rec.version, rec.payload)
        except CodecError as exc:
            raise JournalError(f"record {seq}: {exc}; refusing to fold past it") from exc
        nxt = links_after(rec)
        links.link, links.bridge = nxt[0], (nxt[1] if len(nxt) > 1 else None)
        yield seq, head(value, BODY_AT)[0], event


def _why_bad(seq: int, value: bytes, link: bytes, bridge: bytes | None) -> str:
    if not checksum_ok(value):
        return f"record {seq}: stored bytes fail their checksum (corrupted)"
    return problem(unpack(seq, value), (link, bridge or link)) or f"record {seq}: malformed"


__all__ = ["CHUNK", "Fact", "checked_facts"]
