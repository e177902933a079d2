"""Records and the hash chain: the journal's only notion of data.

A record is (seq, time, tag, version, payload, prev_hash, hash). `hash` is SHA-256 over the
big-endian seq, prev_hash and the packed body (time, version, tag, payload), so a record commits
to its content and to its predecessor. Seqs strictly increase; the first record's prev_hash is
`GENESIS`. The journal never interprets payloads: that is schema/codec.py's job.

Stored value: hash | prev_hash | body | CRC-32 of all before it, little-endian. Appended that
way, the CRC-32 of the whole value is a constant (CRC_RESIDUE), so checking a record is one call
on the stored bytes: a cheap first check that names bit rot as such. Folds may rely on it plus
the links alone (`rehash=False`) when re-hashing (most of a fold's cost) is not wanted.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from typing import Final

import msgspec

GENESIS: Final = bytes(32)
HASH_BYTES: Final = 32
SEQ: Final = struct.Struct(">Q")  # keys: big-endian so LMDB's byte order is seq order
CRC_BYTES: Final = 4
CRC_RESIDUE: Final = 0x2144DF1C  # crc32(data + crc32(data) as 4 little-endian bytes), any data
BODY_HEAD: Final = struct.Struct(">dHB")  # time (s), version, tag length
HASH_AT: Final = 0  # offsets into a stored value
PREV_AT: Final = HASH_AT + HASH_BYTES
BODY_AT: Final = PREV_AT + HASH_BYTES
TAG_AT: Final = BODY_AT + BODY_HEAD.size


class JournalError(Exception):
    """The journal cannot do what was asked: corrupt, full, locked, or misused. Says which."""


class Record(msgspec.Struct, frozen=True, gc=False):
    seq: int
    time: float
    tag: str
    version: int
    payload: bytes
    prev_hash: bytes
    hash: bytes


class Pending(msgspec.Struct, frozen=True, gc=False):
    """A record to append: the store assigns seq and the chain hashes."""

    time: float
    tag: str
    version: int
    payload: bytes


def body_of(time: float, tag: str, version: int, payload: bytes) -> bytes:
    tag_bytes = tag.encode()
    if not tag_bytes or len(tag_bytes) > 255:
        raise JournalError(f"record tag {tag!r} must be 1-255 bytes")
    if not 0 <= version <= 0xFFFF:
        raise JournalError(f"record version {version} out of range 0-65535")
    return BODY_HEAD.pack(time, version, len(tag_bytes)) + tag_bytes + payload


def chain_hash(seq: int, prev_hash: bytes, body: bytes) -> bytes:
    return hashlib.sha256(SEQ.pack(seq) + prev_hash + body).digest()


def _stored(hash_: bytes, prev_hash: bytes, body: bytes) -> bytes:
    value = hash_ + prev_hash + body
    return value + zlib.crc32(value).to_bytes(CRC_BYTES, "little")


def pack(record: Record) -> bytes:
    """The stored value of a record."""
    body = body_of(record.time, record.tag, record.version, record.payload)
    return _stored(record.hash, record.prev_hash, body)


def checksum_ok(value: bytes) -> bool:
    return len(value) >= TAG_AT + CRC_BYTES and zlib.crc32(value) == CRC_RESIDUE


def unpack(seq: int, value: bytes | memoryview) -> Record:
    """A record from its stored value; JournalError if the value cannot be one."""
    value = bytes(value)
    if not checksum_ok(value):
        raise JournalError(f"record {seq}: stored bytes fail their checksum (corrupted)")
    time, version, tag_len = BODY_HEAD.unpack_from(value, BODY_AT)
    if len(value) < TAG_AT + tag_len + CRC_BYTES:
        raise JournalError(f"record {seq}: stored value is truncated inside its tag")
    try:
        tag = value[TAG_AT : TAG_AT + tag_len].decode()
    except UnicodeDecodeError as exc:
        raise JournalError(f"record {seq}: tag is not UTF-8 (garbled record)") from exc
    return Record(
        seq,
        time,
        tag,
        version,
        value[TAG_AT + tag_len : -CRC_BYTES],
        value[PREV_AT:BODY_AT],
        value[HASH_AT:PREV_AT],
    )


def problem(record: Record, expected_prev: Sequence[bytes]) -> str | None:
    """Why a record does not verify (its own hash, or its link to the previous one), or None."""
    body = body_of(record.time, record.tag, record.version, record.payload)
    if chain_hash(record.seq, record.prev_hash, body) != record.hash:
        return f"record {record.seq}: content does not match its hash (corrupted or edited)"
    if record.prev_hash not in expected_prev:
        return f"record {record.seq}: does not chain to the record before it"
    return None


def extend(
    last_seq: int, last_hash: bytes, pending: Sequence[Pending]
) -> list[tuple[Record, bytes]]:
    """Chain new records after (last_seq, last_hash); each with its stored value."""
    out: list[tuple[Record, bytes]] = []
    seq, prev = last_seq, last_hash
    for p in pending:
        seq += 1
        body = body_of(p.time, p.tag, p.version, p.payload)
        h = chain_hash(seq, prev, body)
        out.append(
            (Record(seq, p.time, p.tag, p.version, p.payload, prev, h), _stored(h, prev, body))
        )
        prev = h
    return out


def rechain(records: Sequence[Record], first_prev: bytes) -> list[Record]:
    """The same records (same seqs and content) with fresh links, starting from `first_prev`."""
    out: list[Record] = []
    prev = first_prev
    for r in records:
        h = chain_hash(r.seq, prev, body_of(r.time, r.tag, r.version, r.payload))
        out.append(Record(r.seq, r.time, r.tag, r.version, r.payload, prev, h))
        prev = h
    return out


__all__ = [
    "BODY_AT",
    "BODY_HEAD",
    "CRC_BYTES",
    "CRC_RESIDUE",
    "GENESIS",
    "HASH_AT",
    "HASH_BYTES",
    "PREV_AT",
    "SEQ",
    "TAG_AT",
    "JournalError",
    "Pending",
    "Record",
    "body_of",
    "chain_hash",
    "checksum_ok",
    "extend",
    "pack",
    "problem",
    "rechain",
    "unpack",
]
