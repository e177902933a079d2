"""fold(state, facts) -> state: the only way state changes, pure and total.

A fact is (seq, time, event) as read from the journal. fold never mutates its input (it works on
a shallow copy of the containers), never raises on a journaled fact (a fact that contradicts the
state, e.g. applying an unknown revision, is kept in `anomalies`), and is associative over the
fact stream: fold(fold(s, a), b) == fold(s, a + b), so snapshot + tail equals replaying all.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from oxwrtd.core.state import (
    ANOMALY_DEPTH,
    AuditEntry,
    Lease,
    PendingConfirm,
    Probation,
    Probe,
    Revision,
    ServiceRow,
    State,
    decode_state,
)
from schema.events import (
    ApplyFailed,
    AutoReverted,
    Booted,
    Checkpoint,
    ConfigApplied,
    ConfigProposed,
    Confirmed,
    ConfirmExpired,
    ConfirmRequested,
    DriftDetected,
    Event,
    HealthProbed,
    LeaseAcquired,
    LeaseLost,
    ProbationEnded,
    ProbationStarted,
    RolledBack,
    ServiceExited,
    ServiceGaveUp,
    ServiceRemoved,
    ServiceStarted,
    Signed,
    Stopped,
)

Fact = tuple[int, float, Event]
_replace = msgspec.structs.replace
_SETTINGS: Final = ("ring_depth", "audit_depth")


def fold(state: State, facts: Iterable[Fact]) -> State:
    s = _thaw(state)
    handlers = _HANDLERS
    seq = s.seq
    for seq, time, event in facts:
        handlers[type(event)](s, seq, time, event)
    s.seq = seq
    return s


def _thaw(state: State) -> State:
    return _replace(
        state,
        revisions=dict(state.revisions),
        ring=list(state.ring),
        audit=list(state.audit),
        services=dict(state.services),
        probes=dict(state.probes),
        leases=dict(state.leases),
        anomalies=list(state.anomalies),
    )


def _anomaly(s: State, seq: int, what: str) -> None:
    s.anomalies.append(f"record {seq}: {what}")
    del s.anomalies[:-ANOMALY_DEPTH]


def _audit(s: State, entry: AuditEntry) -> None:
    s.audit.append(entry)
    del s.audit[: -s.audit_depth]


def _signed_fields(by: Signed | None) -> dict[str, Any]:
    if by is None:
        return {}
    return {"author": by.name, "fingerprint": by.fingerprint, "signature": by.signature}


def _change_summary(before: Revision | None, after: ConfigProposed) -> str:
    if before is None:
        return f"first revision: {after.public_toml.count(chr(10))} lines, " + (
            f"{len(after.sealed_secrets)} secret(s)"
        )
    added = removed = 0
    matcher = difflib.SequenceMatcher(
        a=before.public_toml.splitlines(), b=after.public_toml.splitlines(), autojunk=False
    )
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op != "equal":
            removed += a1 - a0
            added += b1 - b0
    old, new = before.sealed_secrets, after.sealed_secrets
    secrets = sorted(
        p
        for p in set(old) | set(new)
        if p not in old or p not in new or old[p].digest != new[p].digest
    )
    text = f"from revision {before.id}: +{added} -{removed} lines"
    return text + (f"; secrets changed: {', '.join(secrets)}" if secrets else "")


def _trim_history(s: State) -> None:
    """Keep the ring, running, candidate and the newest ring_depth revisions."""
    if len(s.revisions) <= 2 * s.ring_depth:
        return
    keep = set(s.ring) | {s.running, s.candidate} | set(sorted(s.revisions)[-s.ring_depth :])
    s.revisions = {i: r for i, r in s.revisions.items() if i in keep}


def _to_ring(s: State, revision: int) -> None:
    if revision in s.ring:
        s.ring.remove(revision)
    s.ring.append(revision)
    del s.ring[: -s.ring_depth]


def _proposed(s: State, seq: int, time: float, e: ConfigProposed) -> None:
    if e.revision in s.revisions:
        _anomaly(s, seq, f"revision {e.revision} proposed twice; kept the first")
        return
    base = e.base_revision if e.base_revision is not None else s.running
    before = s.revisions.get(base) if base is not None else None
    signed = _signed_fields(e.by)
    s.revisions[e.revision] = Revision(
        id=e.revision,
        base=e.base_revision,
        public_toml=e.public_toml,
        sealed_secrets=e.sealed_secrets,
        comment=e.comment,
        source=e.source,
        author=signed.get("author"),
        fingerprint=signed.get("fingerprint"),
        proposed_seq=seq,
        proposed_at=time,
    )
    s.candidate = e.revision
    s.next_revision = max(s.next_revision, e.revision + 1)
    _audit(
        s,
        AuditEntry(
            seq=seq,
            time=time,
            action="propose",
            revision=e.revision,
            comment=e.comment,
            summary=_change_summary(before, e),
            **signed,
        ),
    )
    _trim_history(s)


def _set_status(s: State, seq: int, revision: int, **changes: Any) -> bool:
    rev = s.revisions.get(revision)
    if rev is None:
        _anomaly(s, seq, f"revision {revision} is not in the history")
        return False
    s.revisions[revision] = _replace(rev, **changes)
    return True


def _applied(s: State, seq: int, time: float, e: ConfigApplied) -> None:
    if _set_status(s, seq, e.revision, status="applied", applied_at=time):
        s.running = e.revision
        _to_ring(s, e.revision)
    if s.candidate == e.revision:
        s.candidate = None


def _failed(s: State, seq: int, time: float, e: ApplyFailed) -> None:
    _set_status(s, seq, e.revision, status="failed", failure=e.reason)
    if s.candidate == e.revision:
        s.candidate = None


def _go_back(s: State, seq: int, from_rev: int, to_rev: int) -> bool:
    if to_rev not in s.revisions:
        _anomaly(s, seq, f"went back to revision {to_rev}, which is not in the history")
        return False
    if from_rev in s.revisions:
        _set_status(s, seq, from_rev, status="reverted")
    s.running = to_rev
    _to_ring(s, to_rev)
    if s.candidate == from_rev:
        s.candidate = None
    if s.pending_confirm is not None and s.pending_confirm.revision == from_rev:
        s.pending_confirm = None
    return True


def _auto_reverted(s: State, seq: int, time: float, e: AutoReverted) -> None:
    _go_back(s, seq, e.from_revision, e.to_revision)
    s.probation = None


def _rolled_back(s: State, seq: int, time: float, e: RolledBack) -> None:
    s.probation = None  # an operator chose: the rollback's own window starts when it applies
    if _go_back(s, seq, e.from_revision, e.to_revision):
        _audit(
            s,
            AuditEntry(
                seq=seq,
                time=time,
                action="rollback",
                revision=e.to_revision,
                comment=e.comment,
                summary=f"rolled back from revision {e.from_revision} to {e.to_revision}",
                **_signed_fields(e.by),
            ),
        )


def _confirm_requested(s: State, seq: int, time: float, e: ConfirmRequested) -> None:
    s.pending_confirm = PendingConfirm(revision=e.revision, deadline=e.deadline, requested_at=time)


def _confirmed(s: State, seq: int, time: float, e: Confirmed) -> None:
    if s.pending_confirm is None or s.pending_confirm.revision != e.revision:
        _anomaly(s, seq, f"confirmed revision {e.revision}, which was not pending")
        return
    s.pending_confirm = None
    _audit(
        s,
        AuditEntry(
            seq=seq,
            time=time,
            action="confirm",
            revision=e.revision,
            summary=f"confirmed revision {e.revision}",
            **_signed_fields(e.by),
        ),
    )


def _confirm_expired(s: State, seq: int, time: float, e: ConfirmExpired) -> None:
    if s.pending_confirm is not None and s.pending_confirm.revision == e.revision:
        s.pending_confirm = None


def _service_started(s: State, seq: int, time: float, e: ServiceStarted) -> None:
    row = s.services.get(e.name)
    if row is None:
        s.services[e.name] = ServiceRow(
            name=e.name, state="running", pid=e.pid, starts=1, since=time
        )
    else:  # keep the last exit's code and signal: they explain the restart
        s.services[e.name] = _replace(
            row, state="running", pid=e.pid, starts=row.starts + 1, since=time
        )


def _service_exited(s: State, seq: int, time: float, e: ServiceExited) -> None:
    row = s.services.get(e.name)
    s.services[e.name] = ServiceRow(
        name=e.name,
        state="exited",
        pid=None,
        starts=row.starts if row else 0,
        exits=(row.exits if row else 0) + 1,
        last_code=e.code,
        last_signal=e.signal,
        since=time,
    )


def _service_gave_up(s: State, seq: int, time: float, e: ServiceGaveUp) -> None:
    row = s.services.get(e.name)
    base = row or ServiceRow(name=e.name, state="gave_up", since=time)
    s.services[e.name] = _replace(base, state="gave_up", pid=None, since=time)


def _service_removed(s: State, seq: int, time: float, e: ServiceRemoved) -> None:
    s.services.pop(e.name, None)


def _probed(s: State, seq: int, time: float, e: HealthProbed) -> None:
    prev = s.probes.get(e.target)
    failures = 0 if e.ok else (prev.failures + 1 if prev else 1)
    s.probes[e.target] = Probe(
        target=e.target,
        ok=e.ok,
        at=time,
        latency_ms=e.latency_ms,
        failures=failures,
        detail=e.detail,
    )


def _lease(s: State, seq: int, time: float, e: LeaseAcquired) -> None:
    s.leases[e.interface] = Lease(
        interface=e.interface,
        address=e.address,
        at=time,
        gateway=e.gateway,
        dns=list(e.dns),
        expires=e.expires,
    )


def _lease_lost(s: State, seq: int, time: float, e: LeaseLost) -> None:
    s.leases.pop(e.interface, None)


def _booted(s: State, seq: int, time: float, e: Booted) -> None:
    s.boots += 1
    s.software = e.software
    if s.probation is not None and not s.stopped_cleanly:
        s.probation = _replace(s.probation, restarts=s.probation.restarts + 1)
    s.stopped_cleanly = False


def _stopped(s: State, seq: int, time: float, e: Stopped) -> None:
    s.stopped_cleanly = True


def _probation_started(s: State, seq: int, time: float, e: ProbationStarted) -> None:
    s.probation = Probation(revision=e.revision, fallback=e.fallback, since=time)


def _probation_ended(s: State, seq: int, time: float, e: ProbationEnded) -> None:
    if s.probation is not None and s.probation.revision == e.revision:
        s.probation = None


def _drift(s: State, seq: int, time: float, e: DriftDetected) -> None:
    s.drift += 1


def _checkpoint(s: State, seq: int, time: float, e: Checkpoint) -> None:
    """Compaction folded everything up to `upto` into `e.state`: take it wholesale."""
    carried = decode_state(e.state, e.state_version)
    if carried is None:
        _anomaly(s, seq, f"checkpoint state version {e.state_version} unreadable; folded without")
        return
    carried = _thaw(carried)
    for name in State.__struct_fields__:
        if name not in _SETTINGS:
            setattr(s, name, getattr(carried, name))


_HANDLERS: Final[dict[type, Callable[[State, int, float, Any], None]]] = {
    ConfigProposed: _proposed,
    ConfigApplied: _applied,
    ApplyFailed: _failed,
    AutoReverted: _auto_reverted,
    RolledBack: _rolled_back,
    ConfirmRequested: _confirm_requested,
    Confirmed: _confirmed,
    ConfirmExpired: _confirm_expired,
    ServiceStarted: _service_started,
    ServiceExited: _service_exited,
    ServiceGaveUp: _service_gave_up,
    ServiceRemoved: _service_removed,
    HealthProbed: _probed,
    LeaseAcquired: _lease,
    LeaseLost: _lease_lost,
    Booted: _booted,
    Stopped: _stopped,
    DriftDetected: _drift,
    ProbationStarted: _probation_started,
    ProbationEnded: _probation_ended,
    Checkpoint: _checkpoint,
}

__all__ = ["Fact", "fold"]
