"""The router's state as folded from the journal, and the views read from it.

Owns: running revision, candidate, revision history (stable ids assigned by decide in
ConfigProposed), the rollback ring as a view over that history, audit entries, the pending
confirm with its deadline, the service table, probes, leases. Holds: `seq` is the last record
folded; every revision id in `ring`, `running` and `candidate` is a key of `revisions`; the ring
and audit never exceed their depths. Pure data: no I/O, no clock; snapshots are its msgpack bytes.
"""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from schema.events import SealedLeaf

STATE_VERSION: Final = 2  # bump when State's shape changes: older snapshots are then ignored
DEFAULT_RING_DEPTH: Final = 50
DEFAULT_AUDIT_DEPTH: Final = 1000
ANOMALY_DEPTH: Final = 100

RevisionStatus = Literal["proposed", "applied", "failed", "reverted"]


class _Row(msgspec.Struct, frozen=True, kw_only=True, gc=False, omit_defaults=True):
    pass


class Revision(_Row, kw_only=True, frozen=True):
    id: int
    base: int | None
    public_toml: str
    sealed_secrets: dict[str, SealedLeaf] = {}
    comment: str = ""
    source: str = "rpc"
    author: str | None = None
    fingerprint: str | None = None
    proposed_seq: int
    proposed_at: float
    status: RevisionStatus = "proposed"
    applied_at: float | None = None
    failure: str = ""


class AuditEntry(_Row, kw_only=True, frozen=True):
    seq: int
    time: float
    action: Literal["propose", "rollback", "confirm"]
    revision: int
    author: str | None = None
    fingerprint: str | None = None
    signature: bytes = b""
    comment: str = ""
    summary: str = ""


class PendingConfirm(_Row, kw_only=True, frozen=True):
    revision: int
    deadline: float
    requested_at: float


class Probation(_Row, kw_only=True, frozen=True):
    """`revision` is inside the health window of the reload or rollback that applied it, and
    goes back to `fallback` if it fails there; `restarts` counts boots since it began that
    followed no orderly stop (a crash, a kill, a hang the watchdog ended)."""

    revision: int
    fallback: int
    since: float
    restarts: int = 0


class ServiceRow(_Row, kw_only=True, frozen=True):
    name: str
    state: Literal["running", "exited", "gave_up"]
    pid: int | None = None
    starts: int = 0
    exits: int = 0
    last_code: int | None = None
    last_signal: int | None = None
    since: float


class Probe(_Row, kw_only=True, frozen=True):
    target: str
    ok: bool
    at: float
    latency_ms: float | None = None
    failures: int = 0  # consecutive failed probes
    detail: str = ""


class Lease(_Row, kw_only=True, frozen=True):
    interface: str
    address: str
    at: float
    gateway: str | None = None
    dns: list[str] = []
    expires: float | None = None


class State(msgspec.Struct, kw_only=True, gc=False):
    """Mutable only inside `fold`, on its private copy; everyone else treats it as a value."""

    seq: int = 0
    running: int | None = None
    candidate: int | None = None
    next_revision: int = 1
    revisions: dict[int, Revision] = {}
    ring: list[int] = []  # applied revision ids, oldest first, each once
    audit: list[AuditEntry] = []
    pending_confirm: PendingConfirm | None = None
    probation: Probation | None = None
    services: dict[str, ServiceRow] = {}
    probes: dict[str, Probe] = {}
    leases: dict[str, Lease] = {}
    boots: int = 0
    stopped_cleanly: bool = False  # the last run ended with an orderly stop (not yet booted)
    software: str = ""
    drift: int = 0
    anomalies: list[str] = []
    ring_depth: int = DEFAULT_RING_DEPTH
    audit_depth: int = DEFAULT_AUDIT_DEPTH


def initial(ring_depth: int = DEFAULT_RING_DEPTH, audit_depth: int = DEFAULT_AUDIT_DEPTH) -> State:
    if ring_depth < 1 or audit_depth < 1:
        raise ValueError(
            f"ring_depth and audit_depth must be >= 1 (got {ring_depth}, {audit_depth})"
        )
    return State(ring_depth=ring_depth, audit_depth=audit_depth)


def rollback_ring(state: State, depth: int | None = None) -> list[Revision]:
    """Revisions that can be rolled back to, most recently running first (the running one first)."""
    ids = state.ring[::-1][: depth or state.ring_depth]
    return [state.revisions[i] for i in ids]


def next_deadline(state: State) -> float | None:
    """When the runtime must wake up to expire a pending confirm."""
    return state.pending_confirm.deadline if state.pending_confirm else None


def summary(state: State) -> dict[str, object]:
    """A plain summary for `oxwrtd journal replay` and status output."""
    return {
        "seq": state.seq,
        "running": state.running,
        "candidate": state.candidate,
        "revisions": len(state.revisions),
        "ring": [r.id for r in rollback_ring(state)],
        "pending_confirm": (
            {"revision": state.pending_confirm.revision, "deadline": state.pending_confirm.deadline}
            if state.pending_confirm
            else None
        ),
        "probation": (
            {
                "revision": state.probation.revision,
                "fallback": state.probation.fallback,
                "restarts": state.probation.restarts,
            }
            if state.probation
            else None
        ),
        "audit_entries": len(state.audit),
        "services": {n: r.state for n, r in sorted(state.services.items())},
        "probes": {t: p.ok for t, p in sorted(state.probes.items())},
        "leases": {i: lease.address for i, lease in sorted(state.leases.items())},
        "boots": state.boots,
        "drift_corrections": state.drift,
        "anomalies": list(state.anomalies),
    }


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(State)


def encode_state(state: State) -> bytes:
    return _ENCODER.encode(state)


def decode_state(data: bytes, version: int) -> State | None:
    """The state in a snapshot, or None if it was written in another state version."""
    if version != STATE_VERSION:
        return None
    try:
        return _DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


__all__ = [
    "DEFAULT_AUDIT_DEPTH",
    "DEFAULT_RING_DEPTH",
    "STATE_VERSION",
    "AuditEntry",
    "Lease",
    "PendingConfirm",
    "Probe",
    "Revision",
    "ServiceRow",
    "State",
    "decode_state",
    "encode_state",
    "initial",
    "next_deadline",
    "rollback_ring",
    "summary",
]
