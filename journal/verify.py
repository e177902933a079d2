"""Walking the hash chain: `verify` reports the first bad seq; `checked` refuses to go past it.

The chain rule: each record's stored bytes pass their checksum, its hash matches its content,
and its prev_hash is the hash of the record before it (GENESIS for the first). After a
checkpoint left by compaction, the next record may instead link to the checkpoint's `bridge`
(the original hash of the record it replaced).
Signatures in mutating events are checked offline against the request bytes they carry.

The chain proves a journal is internally consistent, not that it is the one that was written:
whoever can edit the file can also re-hash everything after the edit. So `verify` also takes
anchors, (seq, hash) pairs remembered outside the device (`oxctl status` shows the head's): a
rewritten history changes the hash of every record from the edit on, and the anchor names it.
A record compacted away is still checkable at the checkpoint that replaced it (its `bridge`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import msgspec

from journal.record import GENESIS, SEQ, JournalError, Record, checksum_ok, problem, unpack
from journal.store import Store
from schema.codec import CodecError, decode
from schema.events import CHECKPOINT_TAG, Checkpoint, signature_problem, signer_of, withheld


class Report(msgspec.Struct, frozen=True):
    ok: bool
    records: int
    first_seq: int | None
    head_seq: int
    first_bad: int | None = None
    problem: str | None = None
    signed: int = 0
    anchored: int = 0  # anchors that matched


def links_after(record: Record) -> tuple[bytes, ...]:
    """Hashes the next record may chain to."""
    if record.tag == CHECKPOINT_TAG:
        try:
            cp = decode(record.tag, record.version, record.payload)
        except CodecError:
            return (record.hash,)
        if isinstance(cp, Checkpoint):
            return (record.hash, cp.bridge)
    return (record.hash,)


def checked(records: Iterable[Record], after: tuple[bytes, ...] = (GENESIS,)) -> Iterator[Record]:
    """Yield records only while the chain holds; JournalError names the first bad one."""
    expected = after
    for rec in records:
        why = problem(rec, expected)
        if why is not None:
            raise JournalError(f"{why}; refusing to go past it")
        yield rec
        expected = links_after(rec)


def verify(
    store: Store, *, signatures: bool = True, anchors: Mapping[int, bytes] | None = None
) -> Report:
    """Walk the whole journal; the first record that breaks the chain (or a signature), or the
    first anchor it does not match, is named."""
    count, first, last, signed = 0, None, 0, 0
    expected: tuple[bytes, ...] = (GENESIS,)
    anchors = dict(anchors or {})
    seen: dict[int, bytes] = {}  # the hash each anchored seq has here (or had, before compaction)
    try:
        for key, value in store.values():
            seq = SEQ.unpack(key)[0]
            if not checksum_ok(value):
                corrupt = f"record {seq}: stored bytes fail their checksum (corrupted)"
                return Report(False, count, first, last, seq, corrupt, signed)
            rec = unpack(seq, value)
            why = problem(rec, expected)
            if why is None and signatures:
                why, was_signed = _signature(rec)
                signed += was_signed
            if why is not None:
                return Report(False, count, first, last, rec.seq, why, signed)
            count += 1
            first = rec.seq if first is None else first
            last = rec.seq
            expected = links_after(rec)
            if rec.seq in anchors:
                # a checkpoint stands at the seq it replaced; its bridge is that record's hash
                seen[rec.seq] = expected[1] if len(expected) > 1 else rec.hash
    except JournalError as exc:
        return Report(False, count, first, last, last + 1, str(exc), signed)
    for seq, want in sorted(anchors.items()):
        why = _anchor_problem(seq, want, seen.get(seq))
        if why is not None:
            return Report(False, count, first, last, seq, why, signed, _matched(anchors, seen))
    return Report(True, count, first, last, signed=signed, anchored=len(anchors))


def _anchor_problem(seq: int, want: bytes, have: bytes | None) -> str | None:
    if have is None:
        return (
            f"anchor record {seq} is not in this journal (compacted away, or never written), "
            "so it cannot be checked; anchor a newer record"
        )
    if have != want:
        return (
            f"record {seq}: hash {have.hex()[:16]}... but the anchor says {want.hex()[:16]}...: "
            "the history up to it is not the one that was anchored (rewritten or replaced)"
        )
    return None


def _matched(anchors: Mapping[int, bytes], seen: Mapping[int, bytes]) -> int:
    return sum(1 for seq, want in anchors.items() if seen.get(seq) == want)


def _signature(rec: Record) -> tuple[str | None, int]:
    try:
        event = decode(rec.tag, rec.version, rec.payload)
    except CodecError as exc:
        return f"record {rec.seq}: {exc}", 0
    by = signer_of(event)
    if by is None:
        return None, 0
    why = signature_problem(by)
    if why:
        return f"record {rec.seq}: {why}", 0
    return None, 0 if withheld(by) else 1  # withheld: carried secrets, not checkable offline


__all__ = ["Report", "checked", "links_after", "verify"]
