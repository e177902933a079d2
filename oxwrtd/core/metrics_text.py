"""Metrics: the router's figures as a snapshot of numbers, and its Prometheus text exposition.

Owns the metric names, their HELP/TYPE and the text format (version 0.0.4). Invariants:
- the output is deterministic: families in the order of `FAMILIES`, samples sorted by labels;
- every family is announced by one HELP and one TYPE line before its samples;
- label values are escaped (`\\`, `"`, newline) and label names checked, so no input can forge a
  line; a snapshot naming an unknown family is a bug and raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal, NamedTuple

from oxwrtd.core.blocklist_parse import ListStatus
from oxwrtd.core.state import State

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]  # (name, value) pairs
Samples = dict[Labels, float]
Snapshot = dict[str, float | Samples]  # family name -> one value, or labelled values


class Family(NamedTuple):
    kind: Literal["gauge", "counter"]
    help: str


FAMILIES: Final[dict[str, Family]] = {
    "oxwrt_uptime_seconds": Family("gauge", "Seconds since oxwrtd started."),
    "oxwrt_boots_total": Family("counter", "Boots recorded in the journal."),
    "oxwrt_journal_seq": Family("gauge", "Sequence number of the last journal record folded."),
    "oxwrt_revision_running": Family("gauge", "Id of the running config revision (0: none)."),
    "oxwrt_revision_candidate": Family("gauge", "Id of the candidate revision (0: none)."),
    "oxwrt_confirm_pending": Family("gauge", "1 while a revision waits for confirm."),
    "oxwrt_revisions": Family(
        "gauge", "Config revisions in the history by outcome (applied, failed, reverted)."
    ),
    "oxwrt_drift_corrections_total": Family(
        "counter", "Times the kernel was found to differ from the running revision and repaired."
    ),
    "oxwrt_anomalies": Family("gauge", "Journal facts that contradicted the state (kept)."),
    "oxwrt_service_state": Family("gauge", "1 for the state each supervised service is in."),
    "oxwrt_service_restarts_total": Family("counter", "Times a service was started again."),
    "oxwrt_service_exits_total": Family("counter", "Times a service exited."),
    "oxwrt_lease_info": Family("gauge", "1 per interface holding a DHCP lease, with its address."),
    "oxwrt_lease_acquired_timestamp_seconds": Family("gauge", "When the lease was acquired."),
    "oxwrt_lease_expiry_seconds": Family("gauge", "Seconds until the lease expires."),
    "oxwrt_probe_ok": Family("gauge", "1 when the last health probe of the target succeeded."),
    "oxwrt_blocklist_entries": Family("gauge", "Prefixes installed for the blocklist."),
    "oxwrt_blocklist_rejected_lines": Family(
        "gauge", "Lines of the last fetched list that were not an address or prefix."
    ),
    "oxwrt_blocklist_fetches_total": Family("counter", "Successful fetches of the blocklist."),
    "oxwrt_blocklist_fetch_failures_total": Family("counter", "Failed fetches of the blocklist."),
    "oxwrt_blocklist_last_success_timestamp_seconds": Family(
        "gauge", "When the blocklist was last fetched successfully."
    ),
}

_LABEL: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_OUTCOMES: Final = ("applied", "failed", "reverted")
_SERVICE_STATES: Final = ("running", "exited", "gave_up")


def snapshot(
    state: State, *, now: float, started: float, blocklists: Iterable[ListStatus] = ()
) -> Snapshot:
    """The figures of `state` at `now`; `started` is when the daemon started."""
    out: Snapshot = {
        "oxwrt_uptime_seconds": max(0.0, now - started),
        "oxwrt_boots_total": state.boots,
        "oxwrt_journal_seq": state.seq,
        "oxwrt_revision_running": state.running or 0,
        "oxwrt_revision_candidate": state.candidate or 0,
        "oxwrt_confirm_pending": 1 if state.pending_confirm else 0,
        "oxwrt_drift_corrections_total": state.drift,
        "oxwrt_anomalies": len(state.anomalies),
    }
    outcomes = dict.fromkeys(_OUTCOMES, 0)
    for rev in state.revisions.values():
        if rev.status in outcomes:
            outcomes[rev.status] += 1
    out["oxwrt_revisions"] = {(("outcome", k),): v for k, v in outcomes.items()}
    states: Samples = {}
    restarts: Samples = {}
    exits: Samples = {}
    for name, row in state.services.items():
        for st in _SERVICE_STATES:
            states[("service", name), ("state", st)] = 1 if row.state == st else 0
        restarts[(("service", name),)] = max(0, row.starts - 1)
        exits[(("service", name),)] = row.exits
    out |= {
        "oxwrt_service_state": states,
        "oxwrt_service_restarts_total": restarts,
        "oxwrt_service_exits_total": exits,
    }
    info: Samples = {}
    acquired: Samples = {}
    expiry: Samples = {}
    for iface, lease in state.leases.items():
        info[("interface", iface), ("address", lease.address)] = 1
        acquired[(("interface", iface),)] = lease.at
        if lease.expires is not None:
            expiry[(("interface", iface),)] = lease.expires - now
    out |= {
        "oxwrt_lease_info": info,
        "oxwrt_lease_acquired_timestamp_seconds": acquired,
        "oxwrt_lease_expiry_seconds": expiry,
        "oxwrt_probe_ok": {(("target", t),): 1 if p.ok else 0 for t, p in state.probes.items()},
    }
    families: dict[str, Samples] = {
        name: {}
        for name in FAMILIES
        if name.startswith("oxwrt_blocklist_")  # announced even with no lists
    }
    for bl in blocklists:
        key: Labels = (("list", bl.name),)
        families["oxwrt_blocklist_entries"][key] = bl.entries
        families["oxwrt_blocklist_rejected_lines"][key] = bl.rejected.count
        families["oxwrt_blocklist_fetches_total"][key] = bl.fetches
        families["oxwrt_blocklist_fetch_failures_total"][key] = bl.failures
        if bl.last_success is not None:
            families["oxwrt_blocklist_last_success_timestamp_seconds"][key] = bl.last_success
    out |= families
    return out


def render(snap: Mapping[str, float | Mapping[Labels, float]]) -> str:
    """The Prometheus text exposition of `snap`, families in `FAMILIES` order."""
    unknown = sorted(set(snap) - set(FAMILIES))
    if unknown:
        raise ValueError(f"metrics snapshot names unknown families: {', '.join(unknown)}")
    lines: list[str] = []
    for name, family in FAMILIES.items():
        if name not in snap:
            continue
        lines.append(f"# HELP {name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {name} {family.kind}")
        value = snap[name]
        if isinstance(value, Mapping):
            for labels in sorted(value):
                lines.append(f"{name}{_labels(labels)} {_number(value[labels])}")
        else:
            lines.append(f"{name} {_number(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    parts = []
    for key, value in labels:
        if not _LABEL.match(key) or key.startswith("__"):
            raise ValueError(f"metric label name {key!r} is not a valid Prometheus label name")
        parts.append(f'{key}="{escape_label_value(value)}"')
    return "{" + ",".join(parts) + "}"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        raise TypeError("metric values are numbers, not booleans")
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


__all__ = [
    "CONTENT_TYPE",
    "FAMILIES",
    "Family",
    "Labels",
    "Samples",
    "Snapshot",
    "escape_label_value",
    "render",
    "snapshot",
]
