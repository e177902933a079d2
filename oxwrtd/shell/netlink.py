"""The netlink adapter: observe owned network state, apply ops (the only module importing pyroute2).

Link ops go one request at a time through pyroute2's IPRoute (few, ordered, each needs the last).
Addresses and routes, the bulk, go through one raw rtnetlink socket with the sans-IO codec in
`oxwrtd.core.net_rtnl`: requests are sent in chunks, every one acked, and dumps are parsed
without a per-message library round trip (pyroute2 0.9 runs an event loop per message: ~0.5 ms).
Extended acks are on, so a refusal carries the kernel's own explanation.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import msgspec
from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from oxwrtd.core import net_rtnl as rtnl
from oxwrtd.core.diag import AddrRow, Inventory, LinkRow, QdiscRow, route_row
from oxwrtd.core.net import (
    HOSTNAME_SYSCTL,
    OXWRT_ALIAS,
    ROUTE_PROTO_OXWRT,
    Addr,
    Link,
    NetState,
    PortVlan,
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
from oxwrtd.shell.sysctl import Sysctl

SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks carry only the header of the refused message, not all of it
NETLINK_EXT_ACK = 11  # the kernel explains a refusal in an NLMSGERR_ATTR_MSG
NETLINK_GET_STRICT_CHK = 12  # dumps honour the filters in the request (route protocol)
IFF_UP = 0x1
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
LOCAL_TABLE = 255  # the kernel's own local and broadcast routes: not worth listing
BATCH = 256  # requests per send; their acks fit the receive buffer many times over
RCVBUF = 1 << 20


class Netlink:
    """observe(scope) -> NetState with owned objects only; apply(ops) raises ApplyFailed.

    `netns` names a namespace under /run/netns (the lab); None is the current one. `writes` counts
    every state-changing netlink message sent, so idempotence is checked by counting.
    """

    def __init__(self, netns_name: str | None = None, sysctl: Sysctl | None = None) -> None:
        self.sysctl = sysctl or Sysctl()
        self.writes = 0
        self._ipr = IPRoute(netns=netns_name) if netns_name else IPRoute()
        self._sock = netns.create_socket(
            netns_name, socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE
        )
        self._sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        self._sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()
        self._ipr.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # ---------------------------------------------------------------- observe

    def observe(self, scope: Scope) -> NetState:
        raw_links = list(self._ipr.get_links())
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in raw_links}
        state = NetState()
        owned: dict[int, str] = {}
        for m in raw_links:
            name = names[m["index"]]
            if name in scope.links or m.get_attr("IFLA_IFALIAS") == OXWRT_ALIAS:
                owned[m["index"]] = name
                state.links[name] = _link(m, names)
        if any(link.master for link in state.links.values()):
            for port, vlans in self._port_vlans(owned).items():
                link = state.links[port]
                if link.master:
                    state.links[port] = _with_vlans(link, vlans)
        for message in self._dump(rtnl.dump_addrs_request(self._next_seq())):
            decoded = rtnl.decode_addr(message)
            if decoded is None:
                continue
            index, cidr, configured = decoded
            name = owned.get(index)
            if name is not None and name != "lo" and configured:
                state.addrs.add(Addr(name, cidr))
        for version in (4, 6):
            for message in self._dump(rtnl.dump_routes_request(self._next_seq(), version)):
                route_of = rtnl.decode_route(message)
                if route_of is None or route_of[0] != ROUTE_PROTO_OXWRT:
                    continue
                route = route_of[1]
                link = names.get(int(route.link), "")
                route = msgspec.structs.replace(route, link=link)
                state.routes[route.key] = route
        wanted = scope.sysctls - {HOSTNAME_SYSCTL}
        state.sysctls = self.sysctl.read(wanted)
        if HOSTNAME_SYSCTL in scope.sysctls:
            state.hostname = self.sysctl.read([HOSTNAME_SYSCTL]).get(HOSTNAME_SYSCTL)
        return state

    def inventory(self) -> Inventory:
        """Every link, address and route of the namespace, owned or not (for `diag`)."""
        raw_links = list(self._ipr.get_links())
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in raw_links}
        links = []
        for m in raw_links:
            info = m.get_attr("IFLA_LINKINFO")
            kind = (info.get_attr("IFLA_INFO_KIND") if info else None) or (
                "loopback" if m["index"] == 1 else "device"
            )
            links.append(
                LinkRow(
                    index=m["index"],
                    name=names[m["index"]],
                    kind=kind,
                    operstate=str(m.get_attr("IFLA_OPERSTATE") or "").lower(),
                    mtu=int(m.get_attr("IFLA_MTU") or 0),
                    mac=str(m.get_attr("IFLA_ADDRESS") or ""),
                    master=names.get(m.get_attr("IFLA_MASTER") or 0, ""),
                )
            )
        addrs = []
        for message in self._dump(rtnl.dump_addrs_request(self._next_seq())):
            decoded = rtnl.decode_addr(message)
            if decoded is not None:
                addrs.append(AddrRow(link=names.get(decoded[0], str(decoded[0])), cidr=decoded[1]))
        routes = []
        for version in (4, 6):
            request = rtnl.dump_routes_request(self._next_seq(), version, protocol=0)
            for message in self._dump(request):
                route_of = rtnl.decode_route(message)
                if route_of is not None and route_of[1].table != LOCAL_TABLE:
                    route = route_of[1]
                    routes.append(route_row(route, route_of[0], names.get(int(route.link), "")))
        return Inventory(links=links, addrs=addrs, routes=routes)

    def qdiscs(self) -> list[QdiscRow]:
        """Every queueing discipline of the namespace (for `diag qdisc`)."""
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in self._ipr.get_links()}
        return [
            QdiscRow(
                link=names.get(m["index"], str(m["index"])),
                kind=str(m.get_attr("TCA_KIND") or ""),
                handle=int(m["handle"]),
                parent=int(m["parent"]),
            )
            for m in self._ipr.get_qdiscs()
        ]

    def _port_vlans(self, owned: dict[int, str]) -> dict[str, tuple[PortVlan, ...]]:
        ports: dict[str, tuple[PortVlan, ...]] = {}
        for m in self._ipr.get_vlans():
            name = owned.get(m["index"])
            spec = m.get_attr("IFLA_AF_SPEC")
            if name is None or spec is None:
                continue
            vlans = []
            for info in spec.get_attrs("IFLA_BRIDGE_VLAN_INFO"):
                flags = info["flags"]
                pvid = bool(flags & BRIDGE_VLAN_INFO_PVID)
                vlans.append(PortVlan(info["vid"], pvid, bool(flags & BRIDGE_VLAN_INFO_UNTAGGED)))
            ports[name] = tuple(sorted(vlans))
        return ports

    # ---------------------------------------------------------------- apply

    def apply(self, ops: Sequence[Op]) -> None:
        progress = Progress()
        index = self._index()
        batch: list[tuple[Op, bytes]] = []
        for op in ops:
            if not progress.runnable(op):
                continue
            if isinstance(op, AddAddr | DelAddr | AddRoute | DelRoute):
                try:
                    batch.append((op, self._encode(op, index)))
                except KernelRefusal as e:
                    progress.failed(op, str(e))
                continue
            self._flush(batch, progress)
            batch = []
            try:
                self._one(op, index)
            except NetlinkError as e:
                progress.failed(op, _netlink_message(e))
            except KernelRefusal as e:
                progress.failed(op, str(e))
            except OSError as e:  # sysctl and hostname writes under /proc/sys
                progress.failed(op, e.strerror or str(e))
            if isinstance(op, AddLink | DelLink):
                index = self._index()
        self._flush(batch, progress)
        progress.finish()

    def present_links(self) -> frozenset[str]:
        """Every link name in the namespace: `NetFacts.present_links` for `desired`."""
        return frozenset(self._index())

    def _index(self) -> dict[str, int]:
        return {m.get_attr("IFLA_IFNAME"): m["index"] for m in self._ipr.get_links()}

    def _one(self, op: Op, index: dict[str, int]) -> None:
        def idx(name: str) -> int:
            if name not in index:
                raise KernelRefusal(errno.ENODEV)
            return index[name]

        ipr = self._ipr
        match op:
            case AddLink(kind="bridge"):
                self._write(ipr.link, "add", ifname=op.name, kind="bridge")
                self._mark_created(op.name)
            case AddLink(kind="vlan"):
                parent = idx(op.vlan_parent or "")
                self._write(
                    ipr.link, "add", ifname=op.name, kind="vlan", link=parent, vlan_id=op.vlan_id
                )
                self._mark_created(op.name)
            case DelLink():
                self._write(ipr.link, "del", index=idx(op.name))
            case SetLinkUp():
                self._write(ipr.link, "set", index=idx(op.name), state="up" if op.up else "down")
            case SetMac():
                i = idx(op.name)
                was_up = bool(ipr.get_links(i)[0]["flags"] & IFF_UP)
                # many drivers refuse a MAC change while up (the reference goes down first too)
                if was_up:
                    self._write(ipr.link, "set", index=i, state="down")
                try:
                    self._write(ipr.link, "set", index=i, address=op.mac)
                finally:  # a refused MAC must not leave the uplink down
                    if was_up:
                        self._write(ipr.link, "set", index=i, state="up")
            case SetMaster():
                master = 0 if op.master is None else idx(op.master)
                self._write(ipr.link, "set", index=idx(op.name), master=master)
            case SetVlanFiltering():
                on = int(op.on)
                self._write(
                    ipr.link, "set", index=idx(op.name), kind="bridge", br_vlan_filtering=on
                )
            case AddPortVlan():
                flags = (BRIDGE_VLAN_INFO_PVID if op.vlan.pvid else 0) | (
                    BRIDGE_VLAN_INFO_UNTAGGED if op.vlan.untagged else 0
                )
                info = {"vid": op.vlan.vid, "flags": flags}
                self._write(ipr.vlan_filter, "add", index=idx(op.link), vlan_info=info)
            case DelPortVlan():
                info = {"vid": op.vid}
                self._write(ipr.vlan_filter, "del", index=idx(op.link), vlan_info=info)
            case SetSysctl():
                self.writes += 1
                self.sysctl.write(op.name, op.value)
            case SetHostname():
                self.writes += 1
                self.sysctl.write(HOSTNAME_SYSCTL, op.name)
            case _:
                raise TypeError(f"not a link, sysctl or hostname op: {op!r}")

    def _write(self, call: Any, *args: Any, **kwargs: Any) -> None:
        self.writes += 1
        call(*args, **kwargs)

    def _mark_created(self, name: str) -> None:
        # `ifalias` is not taken on create; a second write marks the link as oxwrt's for good.
        (index,) = self._ipr.link_lookup(ifname=name)
        self._write(self._ipr.link, "set", index=index, ifalias=OXWRT_ALIAS)

    def _encode(self, op: Op, index: dict[str, int]) -> bytes:
        seq = self._next_seq()
        match op:
            case AddAddr(addr=addr) | DelAddr(addr=addr):
                if addr.link not in index:
                    raise KernelRefusal(errno.ENODEV)
                return rtnl.encode_addr(addr, index[addr.link], seq, delete=isinstance(op, DelAddr))
            case AddRoute(route=route) | DelRoute(route=route):
                if route.link not in index:
                    raise KernelRefusal(errno.ENODEV)
                return rtnl.encode_route(
                    route,
                    index[route.link],
                    seq,
                    delete=isinstance(op, DelRoute),
                    replace=isinstance(op, AddRoute) and op.replace,
                )
        raise TypeError(f"not an address or route op: {op!r}")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _flush(self, batch: list[tuple[Op, bytes]], progress: Progress) -> None:
        """Send in chunks; only the last request of a chunk asks for an ack, and the kernel
        answers in order, so that ack (or that request's error) closes the chunk."""
        for start in range(0, len(batch), BATCH):
            chunk = batch[start : start + BATCH]
            by_seq = {struct.unpack_from("=I", data, 8)[0]: op for op, data in chunk}
            last = struct.unpack_from("=I", chunk[-1][1], 8)[0]
            self._sock.sendall(b"".join(rtnl.quiet(d) for _, d in chunk[:-1]) + chunk[-1][1])
            self.writes += len(chunk)
            closed = False
            while not closed:
                for kind, flags, seq, message in rtnl.messages(self._sock.recv(RCVBUF)):
                    if kind != rtnl.NLMSG_ERROR or seq not in by_seq:
                        continue
                    closed = closed or seq == last
                    code, text = rtnl.ack(message, flags)
                    if code:
                        why = os.strerror(code) + (f" ({text})" if text else "")
                        progress.failed(by_seq[seq], why)

    def _dump(self, request: bytes) -> Iterator[bytes]:
        """The messages of one dump on the raw socket; a refused dump raises OSError."""
        (seq,) = struct.unpack_from("=I", request, 8)
        self._sock.sendall(request)
        while True:
            for kind, flags, got, message in rtnl.messages(self._sock.recv(RCVBUF)):
                if got != seq:
                    continue
                if kind == rtnl.NLMSG_DONE:
                    return
                if kind == rtnl.NLMSG_ERROR:
                    code, text = rtnl.ack(message, flags)
                    if code:
                        raise OSError(code, os.strerror(code) + (f" ({text})" if text else ""))
                    return
                yield message


class KernelRefusal(Exception):
    """A refusal known before asking the kernel (no such link), worded as the kernel would."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))


def _netlink_message(e: NetlinkError) -> str:
    text = os.strerror(e.code)
    extra = str(e.args[1]) if len(e.args) > 1 else ""
    return text if not extra or extra == text else f"{text} ({extra})"


def _link(m: Any, names: dict[int, str]) -> Link:
    info = m.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
    vlan_id = vlan_parent = None
    filtering = False
    if kind == "vlan" and data is not None:
        vlan_id = data.get_attr("IFLA_VLAN_ID")
        vlan_parent = names.get(m.get_attr("IFLA_LINK"))
    if kind == "bridge" and data is not None:
        filtering = bool(data.get_attr("IFLA_BR_VLAN_FILTERING"))
    master = m.get_attr("IFLA_MASTER")
    return Link(
        name=m.get_attr("IFLA_IFNAME"),
        kind=kind if kind in ("bridge", "vlan") else "device",
        up=bool(m["flags"] & IFF_UP),
        master=names.get(master) if master else None,
        vlan_parent=vlan_parent,
        vlan_id=vlan_id,
        vlan_filtering=filtering,
        mac=m.get_attr("IFLA_ADDRESS"),
        created=m.get_attr("IFLA_IFALIAS") == OXWRT_ALIAS,
    )


def _with_vlans(link: Link, vlans: tuple[PortVlan, ...]) -> Link:
    return msgspec.structs.replace(link, port_vlans=vlans)


__all__ = ["KernelRefusal", "Netlink"]
