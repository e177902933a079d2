"""The journal as the runtime uses it: append events durably, keep the folded state current.

Ties a journal Store to the event codec, the fold and snapshots. Holds: `state` is always the fold
of every record in the store (boot = latest snapshot + tail); an append is durable before `state`
changes, so nothing is ever acted on that the journal does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from journal import snapshots
from journal.record import Pending
from journal.store import Snapshot, Store
from oxwrtd.core.fold import fold
from oxwrtd.core.state import STATE_VERSION, State, decode_state, encode_state, initial
from schema.codec import encode
from schema.events import Event


def _load(snapshot: Snapshot) -> State | None:
    return decode_state(snapshot.state, snapshot.version)


class EventLog:
    def __init__(
        self,
        store: Store,
        *,
        snapshot_every: int = snapshots.DEFAULT_EVERY,
        ring_depth: int | None = None,
    ) -> None:
        self.store = store
        self.snapshot_every = snapshot_every
        start = initial() if ring_depth is None else initial(ring_depth=ring_depth)
        self.state, self.snapshot_seq = snapshots.boot(store, start, fold, _load)

    def append(self, events: Sequence[Event], now: float) -> State:
        """Journal `events` in one durable transaction, then fold them."""
        if not events:
            return self.state
        pending = [Pending(now, *encode(e)) for e in events]
        records = self.store.append(pending)
        self.state = fold(
            self.state, [(r.seq, r.time, e) for r, e in zip(records, events, strict=True)]
        )
        if snapshots.due(self.store, self.snapshot_every):
            snapshots.take(self.store, self.state.seq, encode_state(self.state), STATE_VERSION)
            self.snapshot_seq = self.state.seq
        return self.state

    def close(self) -> None:
        self.store.close()


__all__ = ["EventLog"]
