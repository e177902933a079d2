"""The dataplane: makes a validated Config the kernel's state (netlink, then nftables).

One `apply` per revision: gather facts, compute desired network state and the firewall ruleset
(pure core), diff the network against what the kernel holds, apply the ops, then install the
ruleset in one nft transaction. Any failure raises `ApplyError(step, reason)` naming the config
path and the kernel's words; the caller reverts by applying the previous revision the same way.
`plan` computes the same without writing; `drift` reports what the kernel no longer matches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

from oxwrtd.core import net
from oxwrtd.core.diag import Inventory, QdiscRow
from oxwrtd.core.firewall import FirewallFacts, compile_firewall
from oxwrtd.core.fw_script import LastCompile, Ruleset
from oxwrtd.core.net_diff import Scope, diff, scope
from oxwrtd.core.net_ops import AnyOp, ApplyFailed, Op
from oxwrtd.shell.nft import NftApplyError, NftBackend, utc_offset_minutes
from schema.config import Config, Wan


class ApplyError(Exception):
    """Applying a revision failed at `step` ("network", "firewall", ...) for `reason`."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class NetlinkBackend(Protocol):
    """What `Netlink` (kernel) and `FakeNetlink` both provide."""

    def observe(self, scope: Scope) -> net.NetState: ...
    def apply(self, ops: Sequence[Op]) -> None: ...
    def present_links(self) -> frozenset[str]: ...
    def inventory(self) -> Inventory: ...
    def qdiscs(self) -> list[QdiscRow]: ...


class Dataplane:
    def __init__(self, netlink: NetlinkBackend, nft: NftBackend) -> None:
        self.netlink = netlink
        self.nft = nft
        self._owned_links: frozenset[str] = frozenset()  # links the last applied revision named
        self._compile = LastCompile()
        self.firewall_rules = 0  # rules of the last installed ruleset, for status
        self.firewall_text = ""  # and its script, for `diag firewall`

    # ------------------------------------------------------------------ facts

    def facts(
        self, config: Config, leases: Mapping[str, net.Lease], now: float
    ) -> tuple[net.NetFacts, FirewallFacts]:
        net_facts = net.NetFacts(present_links=self.netlink.present_links(), leases=dict(leases))
        wan_addresses = tuple(
            sorted(
                {_host(lease.address) for lease in leases.values()}
                | {w.address for w in config.networks if isinstance(w, Wan) and w.address}
            )
        )
        veths = {s.name: f"veth-{s.name}"[:15] for s in config.services if s.net_mode == "isolated"}
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        try:
            offset = utc_offset_minutes(config.timezone, when)
        except ValueError as exc:
            raise ApplyError("firewall", f"timezone: {exc}") from exc
        fw_facts = FirewallFacts(
            wan_addresses=wan_addresses, service_veths=veths, utc_offset_minutes=offset
        )
        return net_facts, fw_facts

    # ------------------------------------------------------------------ compute

    def _compute(
        self, config: Config, leases: Mapping[str, net.Lease], now: float
    ) -> tuple[net.NetState, list[AnyOp], Ruleset]:
        net_facts, fw_facts = self.facts(config, leases, now)
        try:
            want = net.desired(config, net_facts)
        except net.NetConfigError as exc:
            raise ApplyError("network", str(exc)) from exc
        try:
            ruleset = self._compile(compile_firewall, config, fw_facts)
        except ValueError as exc:
            raise ApplyError("firewall", str(exc)) from exc
        observed = self.netlink.observe(scope(want, self._owned_links))
        return want, diff(want, observed), ruleset

    def plan(self, config: Config, leases: Mapping[str, net.Lease], now: float) -> list[str]:
        """What `apply` would change, one line each, without changing anything."""
        _, ops, ruleset = self._compute(config, leases, now)
        lines = [f"network: {op.describe()}" for op in ops]
        installed = self.nft.installed_digest(ruleset.table)
        if installed != ruleset.digest:
            rules = sum(1 for line in ruleset.text.splitlines() if line.strip())
            lines.append(f"firewall: replace {ruleset.table} ({rules} lines, one transaction)")
        return lines or ["nothing to change"]

    # ------------------------------------------------------------------ act

    def apply(self, config: Config, leases: Mapping[str, net.Lease], now: float) -> list[str]:
        """Make `config` the kernel's state; the lines say what changed."""
        want, ops, ruleset = self._compute(config, leases, now)
        try:
            self.netlink.apply(ops)
        except ApplyFailed as exc:
            raise ApplyError("network", str(exc)) from exc
        self._owned_links = frozenset(want.links)
        try:
            outcome = self.nft.apply(ruleset)
        except NftApplyError as exc:
            raise ApplyError("firewall", str(exc)) from exc
        self.firewall_rules, self.firewall_text = ruleset.rules, ruleset.text
        lines = [f"network: {len(ops)} change(s)"] if ops else []
        if outcome.changed:
            lines.append(f"firewall: installed {ruleset.table} revision {ruleset.digest[:12]}")
        return lines

    def drift(self, config: Config, leases: Mapping[str, net.Lease], now: float) -> list[str]:
        """What differs between the kernel and `config`; empty when they agree."""
        _, ops, ruleset = self._compute(config, leases, now)
        found = [f"network: {op.describe()}" for op in ops]
        if self.nft.drifted(ruleset):
            found.append(f"firewall: {ruleset.table} differs from revision {ruleset.digest[:12]}")
        return found

    def repair(self, config: Config, leases: Mapping[str, net.Lease], now: float) -> None:
        _, ops, ruleset = self._compute(config, leases, now)
        self.netlink.apply(ops)
        self.nft.apply(ruleset, force=True)
        self.firewall_rules, self.firewall_text = ruleset.rules, ruleset.text


def _host(address: str) -> str:
    return address.split("/", 1)[0]


__all__ = ["ApplyError", "Dataplane"]
