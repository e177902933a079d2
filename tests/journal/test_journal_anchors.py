"""Anchors: a record hash remembered outside the device proves the history was not rewritten.

The chain alone cannot: whoever edits the file can re-hash every record after the edit, and the
forged journal verifies. Against an anchor taken before the forgery, it does not."""

from __future__ import annotations

from journal_samples import pending

from journal.lmdb import LmdbStore
from journal.memory import MemoryStore
from journal.record import Record, body_of, chain_hash
from journal.retention import compact
from journal.snapshots import facts
from journal.verify import checked, verify
from oxwrtd.__main__ import main
from oxwrtd.core.fold import fold
from oxwrtd.core.state import STATE_VERSION, encode_state, initial
from schema import events as ev
from schema.codec import encode

HISTORY = [
    ev.ConfigProposed(revision=1, public_toml='hostname = "a"\n'),
    ev.ConfigApplied(revision=1),
    ev.ConfigProposed(revision=2, public_toml='hostname = "b"\n', comment="by alice"),
    ev.ConfigApplied(revision=2),
    *[ev.HealthProbed(target="wan", ok=True) for _ in range(6)],
]


def forged(store: MemoryStore, seq: int, event: ev.Event) -> MemoryStore:
    """The same journal with record `seq` replaced and every later record re-hashed: what an
    attacker with the file would write. It is a perfectly consistent chain."""
    records = list(store.records())
    out, prev = [], records[0].prev_hash
    for r in records:
        tag, version, payload = encode(event) if r.seq == seq else (r.tag, r.version, r.payload)
        h = chain_hash(r.seq, prev, body_of(r.time, tag, version, payload))
        out.append(Record(r.seq, r.time, tag, version, payload, prev, h))
        prev = h
    copy = MemoryStore()
    copy.replace_prefix(records[-1].seq, out)
    return copy


def original() -> MemoryStore:
    store = MemoryStore()
    store.append(pending(HISTORY))
    return store


def test_a_rewritten_history_verifies_alone_but_not_against_an_anchor():
    store = original()
    head_seq, head = store.head()
    fake = forged(store, 3, ev.ConfigProposed(revision=2, public_toml='hostname = "evil"\n'))
    assert verify(fake).ok  # the chain is consistent: re-hashing hides the edit
    report = verify(fake, anchors={head_seq: head})
    assert not report.ok
    assert report.first_bad == head_seq
    assert "not the one that was anchored" in (report.problem or "")
    good = verify(store, anchors={head_seq: head, 2: next(store.records(2, 2)).hash})
    assert good.ok and good.anchored == 2


def test_an_anchor_older_than_the_edit_still_matches_and_a_newer_one_does_not():
    store = original()
    anchors = {r.seq: r.hash for r in store.records()}
    fake = forged(store, 5, ev.HealthProbed(target="wan", ok=False))
    assert verify(fake, anchors={4: anchors[4]}).ok  # history up to 4 is untouched
    assert verify(fake, anchors={5: anchors[5]}).first_bad == 5


def test_an_anchor_survives_compaction_at_the_checkpoint_that_replaced_it():
    store = original()
    at_8 = next(store.records(8, 8)).hash

    def state_at(seq: int) -> tuple[bytes, int]:
        return encode_state(fold(initial(), facts(checked(store.records(0, seq))))), STATE_VERSION

    compact(store, 8, config_depth=1, state_at=state_at)
    assert next(store.records(8, 8)).tag == "journal.checkpoint"
    assert verify(store, anchors={8: at_8}).ok
    gone = verify(store, anchors={7: b"\x07" * 32})
    assert not gone.ok and "compacted away" in (gone.problem or "")


def test_the_tool_takes_anchors_and_refuses_malformed_ones(tmp_path, capsys):
    with LmdbStore(tmp_path) as store:
        store.append(pending(HISTORY))
        seq, head = store.head()
    assert main(["journal", "verify", str(tmp_path), "--expect", f"{seq}:{head.hex()}"]) == 0
    assert "1 anchor(s) matched" in capsys.readouterr().out
    wrong = f"{seq}:{bytes(32).hex()}"
    assert main(["journal", "verify", str(tmp_path), "--expect", wrong]) == 1
    assert f"BAD at seq {seq}" in capsys.readouterr().out
    for bad in ("10", "x:ab", f"0:{head.hex()}", "3:abcd"):
        try:
            code = main(["journal", "verify", str(tmp_path), "--expect", bad])
        except SystemExit as exc:
            code = exc.code
        assert code == 2
        assert "want SEQ:HASH" in capsys.readouterr().err
