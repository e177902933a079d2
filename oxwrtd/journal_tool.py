"""`oxwrtd journal verify|export|stats|replay DIR`: the offline journal tools.

verify  walk the hash chain and signatures; exit 0 if whole, 1 naming the first bad seq
export  JSON lines from --since SEQ, secrets shown only as digests (and never in clear)
stats   record counts by tag, bytes used, head, snapshot position
replay  fold (from the latest snapshot unless --no-snapshot) and print the state summary
The journal is opened read-only, so these run beside a live daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from journal.lmdb import LmdbStore
from journal.record import JournalError, Record
from journal.snapshots import boot, checked_facts
from journal.store import Store
from journal.verify import verify
from oxwrtd.core.fold import fold
from oxwrtd.core.state import (
    STATE_VERSION,
    State,
    decode_state,
    encode_state,
    initial,
    summary,
)
from schema.codec import CodecError, decode
from schema.events import SealedLeaf


def load(
    store: Store,
    *,
    use_snapshot: bool = True,
    ring_depth: int | None = None,
    rehash: bool = True,
) -> State:
    """The router state from a journal: latest snapshot plus the verified tail."""
    start = initial() if ring_depth is None else initial(ring_depth=ring_depth)

    def from_snapshot(snap: Any) -> State | None:
        if not use_snapshot:
            return None
        state = decode_state(snap.state, snap.version)
        if state is not None and ring_depth is not None:
            state.ring_depth = ring_depth
        return state

    return boot(store, start, fold, from_snapshot, rehash=rehash)[0]


def state_through(store: Store, seq: int) -> tuple[bytes, int]:
    """The state folded through record `seq`, encoded: what compaction's checkpoint carries."""
    state = fold(initial(), checked_facts(store, stop=seq))
    return encode_state(state), STATE_VERSION


def redacted(value: Any) -> Any:
    """JSON-ready view of an event: sealed secrets become digests, bytes become hex."""
    if isinstance(value, SealedLeaf):
        return {"sealed": True, "digest": value.digest.hex()}
    if isinstance(value, msgspec.Struct):
        out = {"type": value.__struct_config__.tag} if value.__struct_config__.tag else {}
        for name in value.__struct_fields__:
            out[name] = redacted(getattr(value, name))
        if "state" in out and isinstance(value.state, bytes):  # checkpoints: size only
            out["state"] = f"<{len(value.state)} bytes>"
        return out
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def _verify(store: Store, out: Any, anchors: dict[int, bytes]) -> int:
    report = verify(store, anchors=anchors)
    if report.ok:
        print(
            f"ok: {report.records} records, seq {report.first_seq}..{report.head_seq}, "
            f"{report.signed} signatures valid"
            + (f", {report.anchored} anchor(s) matched" if anchors else ""),
            file=out,
        )
        return 0
    print(f"BAD at seq {report.first_bad}: {report.problem}", file=out)
    print(f"{report.records} records before it verified", file=out)
    return 1


def export_lines(records: Iterable[Record]) -> Iterator[str]:
    """The journal as JSON lines, secrets as digests (also the backup's journal.jsonl)."""
    for rec in records:
        try:
            event: Any = redacted(decode(rec.tag, rec.version, rec.payload))
        except CodecError as exc:
            event = {"undecodable": str(exc)}
        line = {
            "seq": rec.seq,
            "time": rec.time,
            "tag": rec.tag,
            "version": rec.version,
            "hash": rec.hash.hex(),
            "event": event,
        }
        yield json.dumps(line, sort_keys=True)


def _export(store: Store, since: int, out: Any) -> int:
    for line in export_lines(store.records(since)):
        print(line, file=out)
    return 0


def _stats(store: Store, out: Any) -> int:
    stats = store.stats()
    by_tag = Counter(rec.tag for rec in store.records())
    doc = msgspec.to_builtins(stats) | {"by_tag": dict(sorted(by_tag.items()))}
    print(json.dumps(doc, indent=2), file=out)
    return 0


def _anchor(text: str) -> tuple[int, bytes]:
    seq, sep, digest = text.partition(":")
    try:
        anchor = int(seq), bytes.fromhex(digest)
    except ValueError:
        anchor = (0, b"")
    if not sep or anchor[0] < 1 or len(anchor[1]) != 32:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want SEQ:HASH, a record number and its 64-hex-digit hash"
        )
    return anchor


def main(argv: Sequence[str], out: Any = None) -> int:
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="oxwrtd journal", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("verify", "export", "stats", "replay"):
        p = sub.add_parser(name)
        p.add_argument("dir", type=Path, help="journal directory (holds data.mdb)")
        if name == "verify":
            p.add_argument(
                "--expect",
                action="append",
                default=[],
                type=_anchor,
                metavar="SEQ:HASH",
                help="a record hash remembered elsewhere (oxctl status shows the head's); "
                "fails if this journal's history does not lead to it",
            )
        if name == "export":
            p.add_argument("--since", type=int, default=0, metavar="SEQ")
        if name == "replay":
            p.add_argument("--no-snapshot", action="store_true", help="fold from the first record")
    args = parser.parse_args(list(argv))
    try:
        store = LmdbStore(args.dir, readonly=True)
    except JournalError as exc:
        print(f"oxwrtd journal {args.command}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "verify":
            return _verify(store, out, dict(args.expect))
        if args.command == "export":
            return _export(store, args.since, out)
        if args.command == "stats":
            return _stats(store, out)
        state = load(store, use_snapshot=not args.no_snapshot)
        print(json.dumps(summary(state), indent=2), file=out)
        return 0
    except JournalError as exc:
        print(f"oxwrtd journal {args.command}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()


__all__ = ["load", "main", "redacted", "state_through"]
