"""Journal events: the past-tense facts the router's state is folded from.

Schema evolution rules (written before the first event shipped, see STYLE.md item 8):
- every event has an explicit, stable tag (`config.proposed`); a tag is never reused or renamed;
- every event has a version in `VERSIONS`; a change of shape bumps it, the old shape gets an
  upcaster in `schema/upcast.py`, and its golden bytes stay in tests/golden/events/ forever;
- new fields get defaults, so old payloads still decode; unknown fields are skipped, so an older
  daemon can read a newer journal (tolerant where software talks);
- secrets never appear in clear: config revisions carry `SealedLeaf`s (schema/seal.py).
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey


class _Part(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A value nested inside an event."""


class SealedLeaf(_Part, kw_only=True, frozen=True):
    """One secret leaf sealed with the device key (schema/seal.py).

    `digest` is a keyed hash of the clear value: equal digests mean an unchanged secret, and it
    reveals nothing without the device key.
    """

    box: bytes
    digest: bytes


class Signed(_Part, kw_only=True, frozen=True):
    """Who asked for a change, and their ed25519 signature over the exact request bytes.

    `request` must itself be free of clear secrets (the client signs digests of secret leaves),
    because it is stored verbatim so that anyone can re-check the signature offline.
    """

    name: str
    public_key: bytes
    request: bytes
    signature: bytes

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key)


def key_fingerprint(public_key: bytes) -> str:
    """Short, stable name of a public key: `sha256:` and the first 16 bytes in hex."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()[:32]


class _Event(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    gc=False,
    tag_field="t",
    forbid_unknown_fields=False,
):
    """Base of every event; the tag is set per class and never changes."""


class ConfigProposed(_Event, tag="config.proposed", kw_only=True, frozen=True):
    """A new revision was accepted as the candidate (pushed, or edited locally then SIGHUP)."""

    revision: int
    base_revision: int | None = None
    public_toml: str
    sealed_secrets: dict[str, SealedLeaf] = {}
    comment: str = ""
    source: Literal["rpc", "sighup", "boot", "replay"] = "rpc"
    by: Signed | None = None


class ConfigApplied(_Event, tag="config.applied", kw_only=True, frozen=True):
    revision: int


class ApplyFailed(_Event, tag="config.apply_failed", kw_only=True, frozen=True):
    revision: int
    reason: str
    step: str = ""


class AutoReverted(_Event, tag="config.auto_reverted", kw_only=True, frozen=True):
    """The daemon went back to `to_revision` without being asked (failed apply, missed confirm)."""

    from_revision: int
    to_revision: int
    reason: str


class RolledBack(_Event, tag="config.rolled_back", kw_only=True, frozen=True):
    """An operator asked to go back to an earlier revision."""

    from_revision: int
    to_revision: int
    comment: str = ""
    by: Signed | None = None


class ConfirmRequested(_Event, tag="confirm.requested", kw_only=True, frozen=True):
    """The revision stays only if confirmed before `deadline` (seconds, the journal's clock)."""

    revision: int
    deadline: float


class Confirmed(_Event, tag="confirm.confirmed", kw_only=True, frozen=True):
    revision: int
    by: Signed | None = None


class ConfirmExpired(_Event, tag="confirm.expired", kw_only=True, frozen=True):
    revision: int


class ServiceStarted(_Event, tag="service.started", kw_only=True, frozen=True):
    name: str
    pid: int
    generation: int = 0


class ServiceExited(_Event, tag="service.exited", kw_only=True, frozen=True):
    name: str
    pid: int
    code: int | None = None
    signal: int | None = None


class ServiceGaveUp(_Event, tag="service.gave_up", kw_only=True, frozen=True):
    name: str
    restarts: int
    reason: str = ""


class ServiceRemoved(_Event, tag="service.removed", kw_only=True, frozen=True):
    """A reload dropped the service from the config and its last process is gone (or it was
    found in the state at boot, no longer configured): it leaves the service table."""

    name: str


class HealthProbed(_Event, tag="health.probed", kw_only=True, frozen=True):
    target: str
    ok: bool
    latency_ms: float | None = None
    detail: str = ""


class LeaseAcquired(_Event, tag="lease.acquired", kw_only=True, frozen=True):
    interface: str
    address: str
    gateway: str | None = None
    dns: list[str] = []
    expires: float | None = None


class LeaseLost(_Event, tag="lease.lost", kw_only=True, frozen=True):
    """A WAN's DHCP client holds no address any more (expiry, NAK, link restart)."""

    interface: str
    reason: str = ""


class Booted(_Event, tag="daemon.booted", kw_only=True, frozen=True):
    software: str
    boot_id: str = ""


class Stopped(_Event, tag="daemon.stopped", kw_only=True, frozen=True):
    """The daemon shut down in order (SIGTERM, a reboot it was asked for). A boot without one
    before it followed a crash, a kill or a hang: that is what a health probation counts."""

    reason: str = ""


class DriftDetected(_Event, tag="daemon.drift_detected", kw_only=True, frozen=True):
    """Observed kernel state differed from desired state and was corrected."""

    kind: str
    detail: str = ""


class ProbationStarted(_Event, tag="health.probation_started", kw_only=True, frozen=True):
    """A reload or rollback applied `revision` and its health window began: a failure inside it
    goes back to `fallback`. Journaled, so a restart inside the window resumes the gate."""

    revision: int
    fallback: int


class ProbationEnded(_Event, tag="health.probation_ended", kw_only=True, frozen=True):
    """`revision` passed its health window: restarts no longer count against it."""

    revision: int


class Checkpoint(_Event, tag="journal.checkpoint", kw_only=True, frozen=True):
    """Left by compaction in place of dropped records up to `upto`.

    `bridge` is the original hash of record `upto`, so the first record after the checkpoint,
    which was chained to that hash, still verifies. `state` is the folded state at `upto`
    (core-encoded, `state_version`), so folding the compacted journal gives the same state.
    """

    upto: int
    bridge: bytes
    dropped: int
    dropped_by_tag: dict[str, int] = {}
    state: bytes = b""
    state_version: int = 0


Event = (
    ConfigProposed
    | ConfigApplied
    | ApplyFailed
    | AutoReverted
    | RolledBack
    | ConfirmRequested
    | Confirmed
    | ConfirmExpired
    | ServiceStarted
    | ServiceExited
    | ServiceGaveUp
    | ServiceRemoved
    | HealthProbed
    | LeaseAcquired
    | LeaseLost
    | Booted
    | Stopped
    | DriftDetected
    | ProbationStarted
    | ProbationEnded
    | Checkpoint
)

EVENT_TYPES: Final[tuple[type[_Event], ...]] = (
    ConfigProposed,
    ConfigApplied,
    ApplyFailed,
    AutoReverted,
    RolledBack,
    ConfirmRequested,
    Confirmed,
    ConfirmExpired,
    ServiceStarted,
    ServiceExited,
    ServiceGaveUp,
    ServiceRemoved,
    HealthProbed,
    LeaseAcquired,
    LeaseLost,
    Booted,
    Stopped,
    DriftDetected,
    ProbationStarted,
    ProbationEnded,
    Checkpoint,
)


def tag_of(cls: type[_Event]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


TYPES_BY_TAG: Final[dict[str, type[_Event]]] = {tag_of(c): c for c in EVENT_TYPES}

# Current version of each event's shape. Bump it (and add an upcaster and golden bytes) whenever
# a field is removed, renamed or changes meaning; adding a field with a default needs no bump.
VERSIONS: Final[dict[str, int]] = dict.fromkeys(TYPES_BY_TAG, 1)

# Machine chatter: retention may compact these; config revisions are kept to their own depth.
CHATTER_TAGS: Final[frozenset[str]] = frozenset(
    tag_of(c)
    for c in (
        ServiceStarted,
        ServiceExited,
        ServiceGaveUp,
        ServiceRemoved,
        HealthProbed,
        LeaseAcquired,
        LeaseLost,
        DriftDetected,
    )
)
CHECKPOINT_TAG: Final = tag_of(Checkpoint)


def revision_of(event: Event) -> int | None:
    """The config revision an event is about, for retention by revision depth."""
    if isinstance(event, AutoReverted | RolledBack):
        return event.to_revision
    if isinstance(
        event,
        ConfigProposed
        | ConfigApplied
        | ApplyFailed
        | ConfirmRequested
        | Confirmed
        | ConfirmExpired
        | ProbationStarted
        | ProbationEnded,
    ):
        return event.revision
    return None


def withheld(signed: Signed) -> bool:
    """The signed request was not stored because it carried secrets in clear."""
    return not signed.request


def signer_of(event: Event) -> Signed | None:
    """The signature a mutating event carries, if any."""
    if isinstance(event, ConfigProposed | RolledBack | Confirmed):
        return event.by
    return None


def signature_problem(signed: Signed) -> str | None:
    """None if `signed.signature` is a valid ed25519 signature of `signed.request`, else why not.

    An empty `request` means the request carried secrets in clear (a config push with its
    secrets file), so it was not stored: the author is recorded, the signature is not checkable
    offline. `withheld` tells such records apart in reports."""
    if withheld(signed):
        return None
    try:
        VerifyKey(signed.public_key).verify(signed.request, signed.signature)
    except BadSignatureError:
        return f"signature by {signed.name!r} ({signed.fingerprint}) does not match the request"
    except (ValueError, TypeError) as exc:
        return f"signature by {signed.name!r}: malformed key or signature ({exc})"
    return None


__all__ = [
    "CHATTER_TAGS",
    "CHECKPOINT_TAG",
    "EVENT_TYPES",
    "TYPES_BY_TAG",
    "VERSIONS",
    "ApplyFailed",
    "AutoReverted",
    "Booted",
    "Checkpoint",
    "ConfigApplied",
    "ConfigProposed",
    "ConfirmExpired",
    "ConfirmRequested",
    "Confirmed",
    "DriftDetected",
    "Event",
    "HealthProbed",
    "LeaseAcquired",
    "LeaseLost",
    "ProbationEnded",
    "ProbationStarted",
    "RolledBack",
    "SealedLeaf",
    "ServiceExited",
    "ServiceGaveUp",
    "ServiceRemoved",
    "ServiceStarted",
    "Signed",
    "Stopped",
    "key_fingerprint",
    "revision_of",
    "signature_problem",
    "signer_of",
    "tag_of",
    "withheld",
]
