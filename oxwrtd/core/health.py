"""The health gate and the drift schedule: which probes run, when, and what a round means.

Owns the `Watch` of one applied revision (its probe rounds, the window inside which a failure
reverts, consecutive failures per probe) and turns a round of results into a `HealthReport`.
Holds: only a reload or rollback is gated; a revert or a boot is probed and reported, never
reverted, so reverting cannot recurse; a round counts as inside the window by when it was due, not
by how long its probes took; `revert_to` is set only when some probe failed `failures_to_revert`
rounds in a row since the apply. Pure: time comes in as `now`, deadlines come out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from oxwrtd.core.decide import HealthReport
from oxwrtd.core.state import Lease
from schema.config import Config, Health, Lan, Simple, Wan
from schema.events import HealthProbed

ProbeKind = Literal["kernel", "control", "services", "wan-gateway", "dns", "ping"]
# Apply.why values a failed probe may undo ("resume": a restart inside a gated window)
GATED: Final = frozenset({"reload", "rollback", "resume"})


class ProbeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One probe resolved against a config: what the shell runs. `target` is the entry of
    [health].probes, the name its result is journaled under. A non-empty `problem` means it
    cannot run as things stand (no WAN lease yet): it fails with that detail."""

    target: str
    kind: ProbeKind
    address: str = ""  # ping / wan-gateway: whom to ping; dns: the resolver
    port: int = 0  # dns: the resolver's port
    iface: str = ""  # wan-gateway: the link to ping through
    name: str = ""  # dns: the name to resolve
    expect: tuple[str, ...] = ()  # services: names that must run; control: addresses to listen on
    problem: str = ""


class Watch(msgspec.Struct, frozen=True, kw_only=True):
    """The probe schedule of the running revision since it was applied."""

    revision: int
    fallback: int | None  # where a failure inside the window reverts to; None: report only
    window_end: float
    due: float | None  # when the next round runs; None: nothing more to run
    interval_s: float
    monitor_s: float
    failures_to_revert: int
    failures: dict[str, int] = {}  # consecutive failed rounds per probe target


def watch(
    health: Health, revision: int, why: str, fallback: int | None, now: float
) -> Watch | None:
    """The watch that starts when `revision` was applied for `why`; None when nothing is probed."""
    if not health.probes:
        return None
    gated = why in GATED and fallback is not None and fallback != revision
    return Watch(
        revision=revision,
        fallback=fallback if gated else None,
        window_end=now + health.window_s,
        due=now + health.interval_s,
        interval_s=float(health.interval_s),
        monitor_s=float(health.monitor_s),
        failures_to_revert=max(1, health.failures_to_revert),
    )


def in_window(w: Watch) -> bool:
    return w.due is not None and w.due <= w.window_end


def report(w: Watch, results: Sequence[HealthProbed]) -> tuple[Watch, HealthReport]:
    """Fold one round (the one due at `w.due`) into the watch; the request for decide."""
    failures = {r.target: 0 if r.ok else w.failures.get(r.target, 0) + 1 for r in results}
    gate = w.fallback is not None and in_window(w)
    tripped = [t for t, n in failures.items() if n >= w.failures_to_revert]
    after = msgspec.structs.replace(w, failures=failures, due=_next_due(w))
    settled = gate and not tripped and not in_window(after)  # the window's last round passed
    request = HealthReport(
        revision=w.revision,
        results=list(results),
        revert_to=w.fallback if gate and tripped else None,
        reason=_reason(results, tripped, failures),
        settled=settled,
    )
    return (msgspec.structs.replace(after, fallback=None) if settled else after), request


def _next_due(w: Watch) -> float | None:
    if w.due is None:
        return None
    following = w.due + w.interval_s
    if following <= w.window_end:
        return following
    return w.due + w.monitor_s if w.monitor_s else None


def _reason(
    results: Sequence[HealthProbed], tripped: Sequence[str], failures: Mapping[str, int]
) -> str:
    by_target = {r.target: r for r in results}
    return "; ".join(
        f"{t} failed {failures[t]} round(s) in a row: {by_target[t].detail or 'no detail'}"
        for t in tripped
    )


# ---------------------------------------------------------------- what to probe


def specs(config: Config, leases: Mapping[str, Lease]) -> list[ProbeSpec]:
    """Each [health].probes entry resolved against `config` and the journal's WAN leases."""
    return [_spec(config, leases, target) for target in config.health.probes]


def _spec(config: Config, leases: Mapping[str, Lease], target: str) -> ProbeSpec:
    kind, _, arg = target.partition(":")
    if kind == "ping":
        return ProbeSpec(target=target, kind="ping", address=arg)
    if kind == "dns":
        return _dns_spec(config, target, arg)
    if kind == "wan-gateway":
        return _gateway_spec(config, leases, target)
    if kind == "services":
        return ProbeSpec(
            target=target, kind="services", expect=tuple(s.name for s in config.services)
        )
    if kind == "kernel":
        return ProbeSpec(target=target, kind="kernel")
    if kind == "control":
        return ProbeSpec(target=target, kind="control", expect=tuple(config.control.listen))
    # validation refuses anything else; a journaled config from a newer release might not
    return ProbeSpec(target=target, kind="kernel", problem=f"unknown probe {target!r}")


def _gateway_spec(config: Config, leases: Mapping[str, Lease], target: str) -> ProbeSpec:
    """The active WAN is the highest-priority one with a gateway: static, or from its lease."""
    waiting = []
    for wan in config.wans_by_priority():
        gateway = wan.gateway if wan.mode == "static" else _lease_gateway(leases, wan)
        if gateway:
            return ProbeSpec(target=target, kind="wan-gateway", address=gateway, iface=wan.iface)
        waiting.append(f"{wan.name} ({wan.iface})")
    problem = "no WAN has a gateway yet: " + (", ".join(waiting) or "no WAN configured")
    return ProbeSpec(target=target, kind="wan-gateway", problem=problem)


def _lease_gateway(leases: Mapping[str, Lease], wan: Wan) -> str | None:
    lease = leases.get(wan.iface)
    return lease.gateway if lease is not None else None


def resolver(config: Config) -> tuple[str, int] | None:
    """Where the router's own resolver answers: the first address [dns] listens on (0.0.0.0
    means every LAN/simple address, and the resolver never listens on a WAN), and its port."""
    dns = config.dns
    if dns is None:
        return None
    lan_addresses = [n.address for n in config.networks if isinstance(n, Lan | Simple)]
    for addr in dns.listen_v4:
        if addr != "0.0.0.0":
            return addr, dns.listen_port
        if lan_addresses:
            return lan_addresses[0], dns.listen_port
    return None


def _dns_spec(config: Config, target: str, name: str) -> ProbeSpec:
    where = resolver(config)
    if where is None:
        return ProbeSpec(
            target=target, kind="dns", name=name, problem="the router runs no resolver ([dns])"
        )
    return ProbeSpec(target=target, kind="dns", name=name, address=where[0], port=where[1])


# ---------------------------------------------------------------- drift


def next_drift_check(health: Health, now: float) -> float | None:
    return now + health.drift_check_s if health.drift_check_s else None


__all__ = [
    "GATED",
    "ProbeKind",
    "ProbeSpec",
    "Watch",
    "in_window",
    "next_drift_check",
    "report",
    "resolver",
    "specs",
    "watch",
]
