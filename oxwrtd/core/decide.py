"""decide(state, request, now) -> Decision: the config transaction as a pure function.

Owns every rule of push, reload, dry-run, auto-revert, rollback, commit-confirmed, the health
gate and drift reports. It returns the events to journal (past-tense facts), the effects the shell
must carry out (apply a revision, compute a plan) and the reply, or a rejection with a precise
reason; it never touches the kernel.
Invariants:
- validation happens here, so push, SIGHUP, boot and rollback get the same checks;
- an event that changes what runs is journaled before the shell acts on it, except
  ConfigApplied, which is a fact only once the kernel accepted the revision: so a crash at any
  point leaves the journal naming one revision the router converges to on the next boot;
- every failed apply names a fallback, and reverting never recurses: a failed revert is reported,
  and a revert's health is recorded, never gated (core/health.py sets no `revert_to` for it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from oxwrtd.core import render_chrony, render_hostapd
from oxwrtd.core.state import Probation, Revision, State
from schema.config import Config
from schema.errors import ConfigIssue, render
from schema.events import (
    ApplyFailed,
    AutoReverted,
    Booted,
    ConfigApplied,
    ConfigProposed,
    Confirmed,
    ConfirmExpired,
    ConfirmRequested,
    DriftDetected,
    Event,
    HealthProbed,
    ProbationEnded,
    ProbationStarted,
    RolledBack,
    SealedLeaf,
    Signed,
    Stopped,
)
from schema.load import load_text

MAX_CONFIRM_WINDOW_S: Final = 24 * 3600.0  # a forgotten confirm must not pin a revision for days
MIN_CONFIRM_WINDOW_S: Final = 5.0  # shorter cannot survive one apply plus the operator's reply
RESTARTS_TO_REVERT: Final = 2  # boots inside one health window that condemn its revision


class _Request(msgspec.Struct, frozen=True, kw_only=True):
    pass


class Propose(_Request, frozen=True, kw_only=True):
    """A new config pair. `secrets_toml` is clear text used only to validate; the journal gets
    `sealed` (sealed by the shell with the device key, which decide never sees)."""

    public_toml: str
    secrets_toml: str | None = None
    sealed: dict[str, SealedLeaf] = {}
    comment: str = ""
    base_revision: int | None = None
    source: Literal["rpc", "sighup", "boot", "replay"] = "rpc"
    by: Signed | None = None


class Reload(_Request, frozen=True, kw_only=True):
    dry_run: bool = False
    confirm_within: float | None = None  # seconds


class ApplyOutcome(_Request, frozen=True, kw_only=True):
    """What the shell reports after carrying out `Apply`. `gated`: its health window began, so
    a failure inside it (or restarts before it ends) goes back to `apply.fallback`."""

    apply: Apply
    ok: bool
    reason: str = ""
    step: str = ""
    gated: bool = False


class Confirm(_Request, frozen=True, kw_only=True):
    by: Signed | None = None


class Rollback(_Request, frozen=True, kw_only=True):
    to: int | None = None  # a revision id; None = the one that ran before the running one
    comment: str = ""
    by: Signed | None = None


class Tick(_Request, frozen=True, kw_only=True):
    """The runtime's timer fired (it re-arms at `next_deadline`)."""


class Boot(_Request, frozen=True, kw_only=True):
    software: str


class Stop(_Request, frozen=True, kw_only=True):
    """The daemon is shutting down in order: its next boot is not a crash."""

    reason: str = ""


class Observed(_Request, frozen=True, kw_only=True):
    """Facts from the world (service exits, WAN leases) to journal; `reapply` when a fact
    changes what the running revision means for the kernel (a new WAN address or gateway)."""

    events: list[Event]
    reapply: bool = False


class HealthReport(_Request, frozen=True, kw_only=True):
    """One round of health probes against `revision` (core/health.py builds it). `revert_to` is
    set when the round fell inside the health window of a reload or rollback and a probe failed
    often enough: the revision is then undone. `reason` names the probes that tripped."""

    revision: int
    results: list[HealthProbed]
    revert_to: int | None = None
    reason: str = ""
    settled: bool = False  # the last round of a gated window, and it did not trip


class DriftReport(_Request, frozen=True, kw_only=True):
    """What the kernel held that `revision` does not describe, one finding per line
    ("network: ...", "firewall: ..."), and whether re-applying it repaired that."""

    revision: int
    findings: list[str]
    repaired: bool
    error: str = ""


Request = (
    Propose
    | Reload
    | ApplyOutcome
    | Confirm
    | Rollback
    | Tick
    | Boot
    | Stop
    | Observed
    | HealthReport
    | DriftReport
)


class Apply(msgspec.Struct, frozen=True, kw_only=True):
    """Effect: make `revision` the kernel's state. On failure, go back to `fallback` (None: this
    is already a revert, so report instead of recursing)."""

    revision: int
    fallback: int | None
    # "resume": a boot inside a reload's or rollback's health window, which is gated again
    why: Literal["reload", "revert", "rollback", "boot", "resume", "fact"]
    confirm_within: float | None = None


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """Effect: compute what applying `revision` would change, without changing anything."""

    revision: int


Effect = Apply | Plan


RejectCode = Literal[
    "invalid", "stale", "nothing", "unknown-revision", "not-pending", "bad-request"
]


class Rejected(msgspec.Struct, frozen=True, kw_only=True):
    code: RejectCode
    message: str
    details: list[str] = []


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    events: list[Event] = []
    effects: list[Effect] = []
    reply: str = ""
    rejected: Rejected | None = None


def decide(state: State, request: Request, now: float) -> Decision:
    handler = _HANDLERS[type(request)]
    return handler(state, request, now)


def next_deadline(state: State) -> float | None:
    return state.pending_confirm.deadline if state.pending_confirm else None


def head(state: State) -> int | None:
    """The revision a new push must be based on: the candidate if any, else the running one."""
    return state.candidate if state.candidate is not None else state.running


def previous_good(state: State, revision: int | None) -> int | None:
    """The newest revision in the rollback ring other than `revision`."""
    return next((r for r in reversed(state.ring) if r != revision), None)


# ---------------------------------------------------------------------------- handlers


def _propose(state: State, req: Propose, now: float) -> Decision:
    current = head(state)
    if req.base_revision is not None and req.base_revision != current:
        return _reject(
            "stale",
            f"push is based on revision {req.base_revision} but the head is {current}; "
            "fetch the current config, re-apply your edit and push again",
        )
    loaded = load_text(req.public_toml, req.secrets_toml)
    issues = [str(i) for i in loaded.issues]
    if loaded.config is not None and not issues:
        issues = [str(i) for i in render_problems(loaded.config, loaded.raw)]
    if issues:
        return _reject(
            "invalid", f"config has {len(issues)} problem(s); nothing was changed", issues
        )
    if current is not None and _same_as(state.revisions.get(current), req):
        return Decision(reply=f"no change: identical to revision {current}")
    revision = state.next_revision
    event = ConfigProposed(
        revision=revision,
        base_revision=req.base_revision if req.base_revision is not None else current,
        public_toml=req.public_toml,
        sealed_secrets=dict(req.sealed),
        comment=req.comment,
        source=req.source,
        by=req.by,
    )
    if req.source in {"boot", "sighup"}:  # the runtime applies a local edit at once
        return Decision(events=[event], reply=f"revision {revision} proposed from the files")
    return Decision(events=[event], reply=f"revision {revision} proposed; run reload to apply it")


def render_problems(config: Config, raw: Mapping[str, Any]) -> list[ConfigIssue]:
    """What the daemon configs rendered from a valid config would refuse (hostapd, chrony):
    checked at propose time so a revision that cannot be rendered is never accepted."""
    found = render_hostapd.check(config) + render_chrony.check(config)
    return [render(issue, raw) for issue in found]


def _same_as(rev: Revision | None, req: Propose) -> bool:
    if rev is None or rev.public_toml != req.public_toml:
        return False
    return {p: s.digest for p, s in rev.sealed_secrets.items()} == {
        p: s.digest for p, s in req.sealed.items()
    }


def _reload(state: State, req: Reload, now: float) -> Decision:
    target = head(state)
    if target is None:
        return _reject("nothing", "no revision to apply: push a config first")
    if req.dry_run:
        return Decision(effects=[Plan(revision=target)])
    window = req.confirm_within
    if window is not None and not MIN_CONFIRM_WINDOW_S <= window <= MAX_CONFIRM_WINDOW_S:
        return _reject(
            "bad-request",
            f"confirm window must be between {MIN_CONFIRM_WINDOW_S:g} s and "
            f"{MAX_CONFIRM_WINDOW_S:g} s, got {window:g} s",
        )
    if state.pending_confirm is not None and target != state.pending_confirm.revision:
        return _reject(
            "bad-request",
            f"revision {state.pending_confirm.revision} is waiting for confirm; "
            "confirm it or let it expire before applying another",
        )
    apply = Apply(
        revision=target,
        fallback=previous_good(state, target) if target != state.running else state.running,
        why="reload",
        confirm_within=window,
    )
    return Decision(effects=[apply], reply=f"applying revision {target}")


def _outcome(state: State, req: ApplyOutcome, now: float) -> Decision:
    a = req.apply
    if req.ok:
        events: list[Event] = [ConfigApplied(revision=a.revision)]
        if req.gated and a.fallback is not None and a.why != "resume":
            events.append(ProbationStarted(revision=a.revision, fallback=a.fallback))
        if a.confirm_within is not None:
            events.append(ConfirmRequested(revision=a.revision, deadline=now + a.confirm_within))
        reply = f"revision {a.revision} applied"
        if a.confirm_within is not None:
            reply += f"; run confirm within {a.confirm_within:g} s or it reverts by itself"
        return Decision(events=events, reply=reply)
    failed = ApplyFailed(revision=a.revision, reason=req.reason, step=req.step)
    if a.fallback is None or a.fallback == a.revision:
        return Decision(
            events=[failed],
            reply=f"applying revision {a.revision} failed at {req.step or 'apply'}: {req.reason}; "
            "no earlier revision to revert to: operator intervention needed",
        )
    revert = AutoReverted(
        from_revision=a.revision,
        to_revision=a.fallback,
        reason=f"{req.step or 'apply'}: {req.reason}",
    )
    back = Apply(revision=a.fallback, fallback=None, why="revert")
    return Decision(
        events=[failed, revert],
        effects=[back],
        reply=f"applying revision {a.revision} failed at {req.step or 'apply'}: {req.reason}; "
        f"reverting to revision {a.fallback}",
    )


def _confirm(state: State, req: Confirm, now: float) -> Decision:
    pending = state.pending_confirm
    if pending is None:
        return _reject("not-pending", "nothing is waiting for confirm")
    if now >= pending.deadline:
        return _reject(
            "not-pending", f"the confirm window of revision {pending.revision} has already closed"
        )
    return Decision(
        events=[Confirmed(revision=pending.revision, by=req.by)],
        reply=f"revision {pending.revision} confirmed",
    )


def _rollback(state: State, req: Rollback, now: float) -> Decision:
    running = state.running
    target = req.to if req.to is not None else previous_good(state, running)
    if target is None:
        return _reject("nothing", "no earlier revision to roll back to")
    rev = state.revisions.get(target)
    if rev is None:
        known = ", ".join(str(r) for r in sorted(state.revisions)) or "none"
        return _reject("unknown-revision", f"no revision {target} (known: {known})")
    if rev.status == "failed" and target not in state.ring:
        return _reject("bad-request", f"revision {target} never applied successfully")
    event = RolledBack(
        from_revision=running if running is not None else target,
        to_revision=target,
        comment=req.comment,
        by=req.by,
    )
    apply = Apply(revision=target, fallback=running, why="rollback")
    return Decision(events=[event], effects=[apply], reply=f"rolling back to revision {target}")


def _tick(state: State, req: Tick, now: float) -> Decision:
    pending = state.pending_confirm
    if pending is None or now < pending.deadline:
        return Decision()
    return _expire(state, pending.revision, "confirm window expired")


def _expire(state: State, revision: int, why: str) -> Decision:
    back = previous_good(state, revision)
    events: list[Event] = [ConfirmExpired(revision=revision)]
    if back is None:
        return Decision(events=events, reply=f"revision {revision} unconfirmed; nothing earlier")
    events.append(AutoReverted(from_revision=revision, to_revision=back, reason=why))
    return Decision(
        events=events,
        effects=[Apply(revision=back, fallback=None, why="revert")],
        reply=f"revision {revision} was not confirmed in time: reverting to revision {back}",
    )


def _boot(state: State, req: Boot, now: float) -> Decision:
    events: list[Event] = [Booted(software=req.software)]
    pending = state.pending_confirm
    if pending is not None and now >= pending.deadline:
        # The window closed while the router was down (power cut, crash): revert now.
        expired = _expire(state, pending.revision, "confirm window expired while down")
        return Decision(
            events=events + expired.events, effects=expired.effects, reply=expired.reply
        )
    if state.running is None:
        return Decision(events=events, reply="no revision has ever been applied")
    probation = state.probation
    if probation is not None and probation.revision == state.running:
        return _boot_on_probation(state, probation, events)
    apply = Apply(revision=state.running, fallback=previous_good(state, state.running), why="boot")
    return Decision(events=events, effects=[apply], reply=f"booting revision {state.running}")


def _boot_on_probation(state: State, probation: Probation, events: list[Event]) -> Decision:
    """The daemon restarted before the running revision passed its health window. Once may be
    a power cut: the window starts again. Restarting again before it passes is a revision that
    keeps the router from running (a crash, a hang the watchdog ended): go back."""
    running, back = probation.revision, probation.fallback
    # this boot's Booted is folded with this decision; an orderly stop before it does not count
    restarts = probation.restarts + (0 if state.stopped_cleanly else 1)
    if restarts >= RESTARTS_TO_REVERT and back in state.revisions and back != running:
        reason = f"restarted {restarts} times before revision {running} passed its health window"
        events.append(AutoReverted(from_revision=running, to_revision=back, reason=reason))
        return Decision(
            events=events,
            effects=[Apply(revision=back, fallback=None, why="revert")],
            reply=f"the daemon {reason}; reverting to revision {back}",
        )
    resume = Apply(revision=running, fallback=back, why="resume")
    return Decision(
        events=events,
        effects=[resume],
        reply=f"booting revision {running}, still inside its health window "
        f"({restarts} unclean restart(s)); a failure or another crash goes back to revision {back}",
    )


def _stop(state: State, req: Stop, now: float) -> Decision:
    return Decision(events=[Stopped(reason=req.reason)])


def _health(state: State, req: HealthReport, now: float) -> Decision:
    if req.revision != state.running:
        # the probes measured a kernel that has changed since: they prove nothing now
        return Decision(
            reply=f"health of revision {req.revision} dropped: revision {state.running} runs now"
        )
    events: list[Event] = list(req.results)
    failed = [r for r in req.results if not r.ok]
    reply = f"health of revision {req.revision}: {len(req.results) - len(failed)}/"
    reply += f"{len(req.results)} probes ok" + "".join(
        f"; {r.target} failed: {r.detail or 'no detail'}" for r in failed
    )
    back = req.revert_to
    if back is None or not failed:
        probation = state.probation
        if req.settled and probation is not None and probation.revision == req.revision:
            events.append(ProbationEnded(revision=req.revision))
            reply += f"; revision {req.revision} passed its health window"
        return Decision(events=events, reply=reply)
    if back == req.revision or back not in state.revisions:
        return Decision(
            events=events,
            reply=f"{reply}; cannot revert to revision {back}: operator intervention needed",
        )
    events.append(
        AutoReverted(from_revision=req.revision, to_revision=back, reason=f"health: {req.reason}")
    )
    return Decision(
        events=events,
        effects=[Apply(revision=back, fallback=None, why="revert")],
        reply=f"{reply}; reverting to revision {back}",
    )


def _drift(state: State, req: DriftReport, now: float) -> Decision:
    if req.revision != state.running or not req.findings:
        return Decision()
    outcome = "repaired" if req.repaired else f"repair failed: {req.error}"
    events: list[Event] = []
    for finding in req.findings:
        kind, _, detail = finding.partition(": ")
        events.append(DriftDetected(kind=kind, detail=f"{detail} ({outcome})"))
    return Decision(
        events=events,
        reply=f"kernel drifted from revision {req.revision}: {len(req.findings)} "
        f"difference(s), {outcome}",
    )


def _observed(state: State, req: Observed, now: float) -> Decision:
    """Journal the facts; re-apply the running revision when they move the kernel's inputs.
    A fact-driven apply is not health-gated and has no fallback: the revision did not change."""
    if not req.reapply or state.running is None:
        return Decision(events=list(req.events))
    apply = Apply(revision=state.running, fallback=None, why="fact")
    return Decision(events=list(req.events), effects=[apply])


def _reject(code: RejectCode, message: str, details: list[str] | None = None) -> Decision:
    return Decision(rejected=Rejected(code=code, message=message, details=details or []))


_HANDLERS: Final[dict[type, Callable[[State, Any, float], Decision]]] = {
    Propose: _propose,
    Reload: _reload,
    ApplyOutcome: _outcome,
    Confirm: _confirm,
    Rollback: _rollback,
    Tick: _tick,
    Boot: _boot,
    Stop: _stop,
    Observed: _observed,
    HealthReport: _health,
    DriftReport: _drift,
}

__all__ = [
    "Apply",
    "ApplyOutcome",
    "Boot",
    "Confirm",
    "Decision",
    "DriftReport",
    "Effect",
    "HealthReport",
    "Observed",
    "Plan",
    "Propose",
    "Rejected",
    "Reload",
    "Request",
    "Rollback",
    "Stop",
    "Tick",
    "decide",
    "head",
    "next_deadline",
    "previous_good",
]
