"""Kernel operations (verb-object) moving observed network state toward desired; their errors.

Owns the `Op` vocabulary shared by the diff, the netlink adapter and its fake, and `ApplyFailed`.
Invariants:
- every op carries `where`, the config path that asked for it ("" when the object is being removed
  because the config no longer names it), so a kernel refusal names the operator's line;
- an op that fails on a link blocks only the later ops on that same link (`blocks`), so one bad
  network never leaves the others unconfigured (the reference stops at the first error, §5 item 27).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from oxwrtd.core.net import Addr, PortVlan, Route


class Op(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    where: str = ""

    def describe(self) -> str:
        raise NotImplementedError

    def links(self) -> tuple[str, ...]:
        """Links this op needs to exist (a failed link op blocks later ops needing it)."""
        return ()

    def blocks(self) -> str | None:
        """The link later ops cannot use if this op fails (None: failure is local)."""
        return None


class AddLink(Op, frozen=True, kw_only=True):
    name: str
    kind: Literal["bridge", "vlan"]
    vlan_parent: str | None = None
    vlan_id: int | None = None

    def describe(self) -> str:
        if self.kind == "vlan":
            return f'create VLAN link "{self.name}" (id {self.vlan_id} on "{self.vlan_parent}")'
        return f'create bridge link "{self.name}"'

    def links(self) -> tuple[str, ...]:
        return (self.vlan_parent,) if self.vlan_parent else ()

    def blocks(self) -> str | None:
        return self.name


class DelLink(Op, frozen=True, kw_only=True):
    name: str

    def describe(self) -> str:
        return f'delete link "{self.name}"'


class SetLinkUp(Op, frozen=True, kw_only=True):
    name: str
    up: bool = True

    def describe(self) -> str:
        return f'set link "{self.name}" {"up" if self.up else "down"}'

    def links(self) -> tuple[str, ...]:
        return (self.name,)

    def blocks(self) -> str | None:
        return self.name


class SetMac(Op, frozen=True, kw_only=True):
    name: str
    mac: str

    def describe(self) -> str:
        return f'set MAC address of "{self.name}" to {self.mac}'

    def links(self) -> tuple[str, ...]:
        return (self.name,)

    def blocks(self) -> str | None:
        return self.name


class SetMaster(Op, frozen=True, kw_only=True):
    name: str
    master: str | None

    def describe(self) -> str:
        if self.master is None:
            return f'release "{self.name}" from its bridge'
        return f'add "{self.name}" to bridge "{self.master}"'

    def links(self) -> tuple[str, ...]:
        return (self.name,) if self.master is None else (self.name, self.master)

    def blocks(self) -> str | None:
        return self.name


class SetVlanFiltering(Op, frozen=True, kw_only=True):
    name: str
    on: bool

    def describe(self) -> str:
        return f'turn VLAN filtering {"on" if self.on else "off"} on bridge "{self.name}"'

    def links(self) -> tuple[str, ...]:
        return (self.name,)


class AddPortVlan(Op, frozen=True, kw_only=True):
    link: str
    vlan: PortVlan

    def describe(self) -> str:
        flags = " pvid untagged" if self.vlan.pvid else (" untagged" if self.vlan.untagged else "")
        return f'add VLAN {self.vlan.vid}{flags} to bridge port "{self.link}"'

    def links(self) -> tuple[str, ...]:
        return (self.link,)


class DelPortVlan(Op, frozen=True, kw_only=True):
    link: str
    vid: int

    def describe(self) -> str:
        return f'remove VLAN {self.vid} from bridge port "{self.link}"'

    def links(self) -> tuple[str, ...]:
        return (self.link,)


class AddAddr(Op, frozen=True, kw_only=True):
    addr: Addr

    def describe(self) -> str:
        return f'add address {self.addr.cidr} to "{self.addr.link}"'

    def links(self) -> tuple[str, ...]:
        return (self.addr.link,)


class DelAddr(Op, frozen=True, kw_only=True):
    addr: Addr

    def describe(self) -> str:
        return f'delete address {self.addr.cidr} from "{self.addr.link}"'


class AddRoute(Op, frozen=True, kw_only=True):
    route: Route
    replace: bool = False  # same key, other gateway/link: replaced in place, no flap

    def describe(self) -> str:
        verb = "replace" if self.replace else "add"
        via = f" via {self.route.gateway}" if self.route.gateway else ""
        r = self.route
        return f'{verb} route {r.dest}{via} dev "{r.link}" metric {r.metric}'

    def links(self) -> tuple[str, ...]:
        return (self.route.link,)


class DelRoute(Op, frozen=True, kw_only=True):
    route: Route

    def describe(self) -> str:
        return f"delete route {self.route.dest} metric {self.route.metric}"


class SetSysctl(Op, frozen=True, kw_only=True):
    name: str
    value: str

    def describe(self) -> str:
        return f"set sysctl {self.name.replace('/', '.')} = {self.value}"


class SetHostname(Op, frozen=True, kw_only=True):
    name: str

    def describe(self) -> str:
        return f'set hostname to "{self.name}"'


AnyOp = (
    AddLink
    | DelLink
    | SetLinkUp
    | SetMac
    | SetMaster
    | SetVlanFiltering
    | AddPortVlan
    | DelPortVlan
    | AddAddr
    | DelAddr
    | AddRoute
    | DelRoute
    | SetSysctl
    | SetHostname
)


class OpFailed(msgspec.Struct, frozen=True):
    op: Op
    message: str  # the kernel's words (strerror, plus its extended-ack text when it gave one)

    def __str__(self) -> str:
        where = self.op.where or "(no longer in the config)"
        return f"{where}: kernel refused to {self.op.describe()}: {self.message}"


class ApplyFailed(Exception):
    """Some ops failed; every other op was still applied (except those on a failed link)."""

    def __init__(self, failures: list[OpFailed], skipped: list[Op]) -> None:
        self.failures = failures
        self.skipped = skipped
        lines = [str(f) for f in failures]
        if skipped:
            lines.append(f"{len(skipped)} dependent operation(s) skipped: ")
            lines[-1] += "; ".join(op.describe() for op in skipped)
        super().__init__("\n".join(lines))


class Progress:
    """Bookkeeping shared by every adapter's apply: which ops failed, which were skipped."""

    def __init__(self) -> None:
        self.failures: list[OpFailed] = []
        self.skipped: list[Op] = []
        self._dead: set[str] = set()

    def runnable(self, op: Op) -> bool:
        if any(link in self._dead for link in op.links()):
            self.skipped.append(op)
            return False
        return True

    def failed(self, op: Op, message: str) -> None:
        self.failures.append(OpFailed(op, message))
        link = op.blocks()
        if link is not None:
            self._dead.add(link)

    def finish(self) -> None:
        if self.failures:
            raise ApplyFailed(self.failures, self.skipped)


__all__ = [
    "AddAddr",
    "AddLink",
    "AddPortVlan",
    "AddRoute",
    "AnyOp",
    "ApplyFailed",
    "DelAddr",
    "DelLink",
    "DelPortVlan",
    "DelRoute",
    "Op",
    "OpFailed",
    "Progress",
    "SetHostname",
    "SetLinkUp",
    "SetMac",
    "SetMaster",
    "SetSysctl",
    "SetVlanFiltering",
]
