"""An in-memory kernel for the network ops: the verified fake of `oxwrtd.shell.netlink.Netlink`.

It models what the contract suite checks against the real kernel: links (bridges, VLANs, devices
made out of band), masters and port VLANs, addresses, routes with their protocol id, sysctls and
the hostname, refusing what the kernel refuses with the kernel's own strerror text.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence

import msgspec

from oxwrtd.core.diag import AddrRow, Inventory, LinkRow, QdiscRow, route_row
from oxwrtd.core.net import (
    DEFAULT_PVID,
    OXWRT_ALIAS,
    ROUTE_PROTO_OXWRT,
    Addr,
    Link,
    NetState,
    PortVlan,
    Route,
)
from oxwrtd.core.net_diff import Scope
from oxwrtd.core.net_ops import (
    AddAddr,
    AddLink,
    AddPortVlan,
    AddRoute,
    DelAddr,
    DelLink,
    DelPortVlan,
    DelRoute,
    Op,
    Progress,
    SetHostname,
    SetLinkUp,
    SetMac,
    SetMaster,
    SetSysctl,
    SetVlanFiltering,
)

IFNAMSIZ = 15  # longest interface name the kernel takes


class KernelError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))


class FakeLink(msgspec.Struct, kw_only=True):
    name: str
    kind: str  # "bridge", "vlan", or a device kind such as "veth"
    up: bool = False
    master: str | None = None
    mac: str = "02:00:00:00:00:01"
    alias: str | None = None
    vlan_parent: str | None = None
    vlan_id: int | None = None
    vlan_filtering: bool = False
    port_vlans: dict[int, PortVlan] = {}


class FakeNetlink:
    """Same surface as `Netlink`: observe(scope) -> NetState, apply(ops); counts `writes`."""

    def __init__(
        self, *, link_kinds: Iterable[str] = ("bridge", "vlan"), bridge_vlans: bool = True
    ) -> None:
        self.link_kinds = frozenset(link_kinds)  # kinds this "kernel" can create
        self.bridge_vlans = bridge_vlans  # CONFIG_BRIDGE_VLAN_FILTERING (the lab host lacks it)
        self.links: dict[str, FakeLink] = {"lo": FakeLink(name="lo", kind="loopback", up=True)}
        self.addrs: set[Addr] = {Addr("lo", "127.0.0.1/8")}
        self.routes: dict[tuple[int, int, str, int], tuple[Route, int]] = {}
        self.sysctls: dict[str, str] = {"net/ipv4/ip_forward": "0"}
        self.sysctls["net/ipv6/conf/all/forwarding"] = "0"
        self.hostname = "localhost"
        self.writes = 0
        self._macs = 0

    # ---------------------------------------------------------------- out-of-band changes

    def add_device(self, name: str, *, up: bool = False, kind: str = "veth") -> None:
        """A link made by someone else (a NIC, a veth from the lab, hostapd's bridge)."""
        self._macs += 1
        self.links[name] = FakeLink(
            name=name, kind=kind, up=up, mac=f"02:00:00:00:01:{self._macs:02x}"
        )
        self.sysctls[f"net/ipv6/conf/{name}/accept_ra"] = "1"

    def add_route(self, route: Route, proto: int) -> None:
        self.routes[route.key] = (route, proto)

    # ---------------------------------------------------------------- the adapter surface

    def present_links(self) -> frozenset[str]:
        return frozenset(self.links)

    def observe(self, scope: Scope) -> NetState:
        state = NetState(hostname=self.hostname)
        for name, fl in self.links.items():
            if name in scope.links or fl.alias == OXWRT_ALIAS:
                state.links[name] = _as_link(fl)
        state.addrs = {
            a
            for a in self.addrs
            if a.link in state.links and a.link != "lo" and not _kernel_owned(a)
        }
        state.routes = {k: r for k, (r, proto) in self.routes.items() if proto == ROUTE_PROTO_OXWRT}
        state.sysctls = {k: v for k, v in self.sysctls.items() if k in scope.sysctls}
        return state

    def qdiscs(self) -> list[QdiscRow]:
        """What a kernel gives a link that is up: noqueue on lo and bridges, pfifo_fast else
        (a link that is down has none listed)."""
        return [
            QdiscRow(
                link=name,
                kind="noqueue" if fl.kind in {"loopback", "bridge"} else "pfifo_fast",
                handle=0,
                parent=0xFFFFFFFF,
            )
            for name, fl in self.links.items()
            if fl.up
        ]

    def inventory(self) -> Inventory:
        names = list(self.links)
        links = [
            LinkRow(
                index=i,
                name=fl.name,
                kind=fl.kind,
                operstate="up" if fl.up else "down",
                mtu=65536 if fl.kind == "loopback" else 1500,
                mac=fl.mac,
                master=fl.master or "",
            )
            for i, fl in enumerate(self.links.values(), start=1)
        ]
        addrs = [AddrRow(link=a.link, cidr=a.cidr) for a in sorted(self.addrs)]
        routes = [
            route_row(r, proto, r.link if r.link in names else "")
            for r, proto in sorted(self.routes.values())
        ]
        return Inventory(links=links, addrs=addrs, routes=routes)

    def apply(self, ops: Sequence[Op]) -> None:
        progress = Progress()
        for op in ops:
            if not progress.runnable(op):
                continue
            self.writes += 1
            try:
                self._do(op)
            except KernelError as e:
                progress.failed(op, str(e))
        progress.finish()

    # ---------------------------------------------------------------- the kernel's rules

    def _link(self, name: str) -> FakeLink:
        link = self.links.get(name)
        if link is None:
            raise KernelError(errno.ENODEV)
        return link

    def _do(self, op: Op) -> None:
        match op:
            case AddLink():
                self._add_link(op)
            case DelLink():
                self._del_link(op.name)
            case SetLinkUp():
                self._link(op.name).up = op.up
                if not op.up:
                    self._drop_routes(lambda r: r.link == op.name and r.version == 4)
            case SetMac():
                if int(op.mac.split(":")[0], 16) & 1:
                    raise KernelError(errno.EADDRNOTAVAIL)
                self._link(op.name).mac = op.mac
            case SetMaster():
                self._set_master(op)
            case SetVlanFiltering():
                link = self._link(op.name)
                if link.kind != "bridge" or not self.bridge_vlans:
                    raise KernelError(errno.EOPNOTSUPP)
                link.vlan_filtering = op.on
            case AddPortVlan():
                self._port(op.link).port_vlans[op.vlan.vid] = op.vlan
            case DelPortVlan():
                if self._port(op.link).port_vlans.pop(op.vid, None) is None:
                    raise KernelError(errno.ENOENT)
            case AddAddr():
                self._link(op.addr.link)
                if op.addr in self.addrs:
                    raise KernelError(errno.EEXIST)
                self.addrs.add(op.addr)
            case DelAddr():
                if op.addr not in self.addrs:
                    raise KernelError(errno.EADDRNOTAVAIL)
                self.addrs.discard(op.addr)
                self._drop_routes(lambda r: r.link == op.addr.link and not self._reachable(r))
            case AddRoute():
                self._add_route(op)
            case DelRoute():
                if self.routes.pop(op.route.key, None) is None:
                    raise KernelError(errno.ESRCH)
            case SetSysctl():
                if op.name not in self.sysctls:
                    raise KernelError(errno.ENOENT)
                self.sysctls[op.name] = op.value
            case SetHostname():
                if len(op.name.encode()) > 64:
                    raise KernelError(errno.EINVAL)
                self.hostname = op.name
            case _:
                raise TypeError(f"unknown op {op!r}")

    def _add_link(self, op: AddLink) -> None:
        if op.name in self.links:
            raise KernelError(errno.EEXIST)
        if len(op.name) > IFNAMSIZ:
            raise KernelError(errno.EINVAL)
        if op.kind not in self.link_kinds:
            raise KernelError(errno.EOPNOTSUPP)
        if op.kind == "vlan":
            self._link(op.vlan_parent or "")
        self.add_device(op.name, kind=op.kind)
        link = self.links[op.name]
        link.alias, link.vlan_parent, link.vlan_id = OXWRT_ALIAS, op.vlan_parent, op.vlan_id

    def _del_link(self, name: str) -> None:
        self._link(name)
        del self.links[name]
        self.sysctls = {k: v for k, v in self.sysctls.items() if f"/conf/{name}/" not in k}
        self.addrs = {a for a in self.addrs if a.link != name}
        self._drop_routes(lambda r: r.link == name)
        for other in list(self.links.values()):
            if other.master == name:
                other.master, other.port_vlans = None, {}
            if other.vlan_parent == name and other.name in self.links:
                self._del_link(other.name)  # the kernel deletes VLANs with their parent

    def _set_master(self, op: SetMaster) -> None:
        link = self._link(op.name)
        if op.master is None:
            link.master, link.port_vlans = None, {}
            return
        master = self._link(op.master)
        if master.kind != "bridge":
            raise KernelError(errno.EOPNOTSUPP)
        if master.name == link.name:
            raise KernelError(errno.ELOOP)
        if link.master != op.master:
            link.master = op.master
            default = {DEFAULT_PVID: PortVlan(DEFAULT_PVID, pvid=True, untagged=True)}
            link.port_vlans = default if self.bridge_vlans else {}

    def _port(self, name: str) -> FakeLink:
        link = self._link(name)
        if link.master is None or not self.bridge_vlans:
            raise KernelError(errno.EOPNOTSUPP)
        return link

    def _add_route(self, op: AddRoute) -> None:
        route = op.route
        link = self._link(route.link)
        try:
            ipaddress.ip_network(route.dest)
        except ValueError:
            raise KernelError(errno.EINVAL) from None
        if not link.up:
            raise KernelError(errno.ENETDOWN)
        if not self._reachable(route):
            raise KernelError(errno.ENETUNREACH)
        if route.key in self.routes and not op.replace:
            raise KernelError(errno.EEXIST)
        self.routes[route.key] = (route, ROUTE_PROTO_OXWRT)

    def _reachable(self, route: Route) -> bool:
        """An IPv4 gateway must lie in a subnet of an address on the route's link."""
        if route.gateway is None or route.version == 6:
            return True
        gateway = ipaddress.ip_address(route.gateway)
        return any(
            gateway in ipaddress.ip_interface(a.cidr).network
            for a in self.addrs
            if a.link == route.link and a.version == 4
        )

    def _drop_routes(self, doomed: Callable[[Route], bool]) -> None:
        self.routes = {k: (r, p) for k, (r, p) in self.routes.items() if not doomed(r)}


def _kernel_owned(addr: Addr) -> bool:
    return addr.version == 6 and ipaddress.ip_interface(addr.cidr).is_link_local


def _as_link(fl: FakeLink) -> Link:
    kind = fl.kind if fl.kind in ("bridge", "vlan") else "device"
    return Link(
        name=fl.name,
        kind=kind,  # type: ignore[arg-type]
        up=fl.up,
        master=fl.master,
        vlan_parent=fl.vlan_parent,
        vlan_id=fl.vlan_id,
        vlan_filtering=fl.vlan_filtering,
        mac=fl.mac,
        created=fl.alias == OXWRT_ALIAS,
        port_vlans=tuple(sorted(fl.port_vlans.values())) if fl.master else None,
    )


__all__ = ["FakeNetlink", "KernelError"]
