"""Desired network state: what links, addresses, routes, sysctls and hostname a config asks for.

Owns the `NetState` model (shared by desired and observed state) and `desired(config, facts)`.
Invariants:
- a link oxwrt creates (bridge, VLAN) is `created=True`; a `device` link exists out of band
  (veth, NIC, Wi-Fi) and is only configured, never created or deleted;
- every desired object has an origin: the config path that asked for it (`NetState.origins`);
- routes carry `ROUTE_PROTO_OXWRT`; addresses and routes are keyed so equal keys mean the same
  kernel object (v4/v6 address + prefix on a link; table + destination + metric for routes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Final, Literal

import msgspec

from schema.config import Config, Lan, Simple, Wan
from schema.errors import Path, format_path

# Routing protocol id stamped on every route oxwrt installs (the reference uses 155 too; iproute2's
# rt_protos leaves 155 unassigned). Only routes with this id are ever observed, changed or deleted.
ROUTE_PROTO_OXWRT: Final = 155
# IFLA_IFALIAS written on links oxwrt creates, so a later revision (or a restarted daemon) knows it
# may delete them; the kernel keeps it across daemon restarts, unlike an in-memory list.
OXWRT_ALIAS: Final = "oxwrt"
MAIN_TABLE: Final = 254
IPV6_DEFAULT_PREFIX: Final = 64  # reference: `ipv6_prefix` unset means /64
IP_FORWARD: Final = "net/ipv4/ip_forward"
IPV6_FORWARDING: Final = "net/ipv6/conf/all/forwarding"
HOSTNAME_SYSCTL: Final = "kernel/hostname"
# VLAN the kernel gives a port when it joins a bridge (bridge default_pvid), pvid + untagged.
DEFAULT_PVID: Final = 1

LinkKind = Literal["bridge", "vlan", "device"]


class PortVlan(msgspec.Struct, frozen=True, order=True, gc=False):
    """One VLAN on a bridge port (`bridge vlan add vid V dev PORT [pvid untagged]`)."""

    vid: int
    pvid: bool = False
    untagged: bool = False


class Link(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    name: str
    kind: LinkKind
    up: bool = True
    master: str | None = None
    vlan_parent: str | None = None
    vlan_id: int | None = None
    vlan_filtering: bool = False  # bridges only
    mac: str | None = None  # desired: None = leave the kernel's; observed: the current address
    created: bool = False  # made by oxwrt (carries OXWRT_ALIAS)
    port_vlans: tuple[PortVlan, ...] | None = None  # None = VLANs of this port are not managed


class Addr(msgspec.Struct, frozen=True, order=True, gc=False):
    link: str
    cidr: str  # normalised interface form, e.g. "192.168.1.1/24", "fd00::1/64"

    @property
    def version(self) -> int:
        return 6 if ":" in self.cidr else 4


class Route(msgspec.Struct, frozen=True, order=True, gc=False, kw_only=True):
    dest: str  # "address/prefix", address canonical, host bits as configured (kernel judges)
    link: str
    gateway: str | None = None
    metric: int = 0
    table: int = MAIN_TABLE

    @property
    def key(self) -> tuple[int, int, str, int]:
        return (self.version, self.table, self.dest, self.metric)

    @property
    def version(self) -> int:
        return 6 if ":" in self.dest else 4


class NetState(msgspec.Struct, kw_only=True):
    links: dict[str, Link] = {}
    addrs: set[Addr] = msgspec.field(default_factory=set)
    routes: dict[tuple[int, int, str, int], Route] = {}
    sysctls: dict[str, str] = {}
    hostname: str | None = None
    # Where each desired object came from, rendered for people (`networks[1] (name "lan").bridge`).
    # Keys: ("link", name) / ("addr", Addr) / ("route", key) / ("sysctl", name) / ("hostname",).
    origins: dict[object, str] = {}

    def origin(self, key: object) -> str:
        return self.origins.get(key, "")


class Lease(msgspec.Struct, frozen=True):
    """An IPv4 lease a WAN holds (from the DHCP client, or synthesised for a static WAN)."""

    address: str
    prefix: int
    gateway: str | None = None


class NetFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Runtime facts `desired` depends on: nothing here comes from the config."""

    present_links: frozenset[str] = frozenset()  # links the kernel has right now
    leases: dict[str, Lease] = {}  # WAN name -> acquired lease
    active_wan: str | None = None  # chosen by failover; None = best-priority WAN with a gateway
    delegated_prefix: str | None = (
        None  # DHCPv6-PD prefix on the primary WAN, e.g. "2001:db8:1::/56"
    )


class NetConfigError(ValueError):
    """A value the kernel could not be asked for at all (e.g. a malformed MAC), with its path."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


def desired(config: Config, facts: NetFacts) -> NetState:
    raw = msgspec.to_builtins(config)
    state = NetState(hostname=config.hostname)
    state.origins[("hostname",)] = "hostname"

    def where(path: Path) -> str:
        return format_path(path, raw)

    def add_link(link: Link, path: Path) -> None:
        state.links[link.name] = link
        state.origins[("link", link.name)] = where(path)

    def add_addr(link: str, cidr: str, path: Path) -> None:
        addr = Addr(link, str(ipaddress.ip_interface(cidr)))
        state.addrs.add(addr)
        state.origins[("addr", addr)] = where(path)

    def add_route(route: Route, path: Path) -> None:
        state.routes[route.key] = route
        state.origins[("route", route.key)] = where(path)

    def set_sysctl(name: str, value: str, path: Path) -> None:
        state.sysctls[name] = value
        state.origins[("sysctl", name)] = where(path)

    # the reference brings `lo` up first; its addresses are never oxwrt's
    add_link(Link(name="lo", kind="device"), ("networks",))
    wans: list[tuple[int, Wan]] = []
    for i, net in enumerate(config.networks):
        base: Path = ("networks", i)
        if isinstance(net, Wan):
            wans.append((i, net))
            mac = _mac(net.mac_address, where((*base, "mac_address")))
            add_link(Link(name=net.iface, kind="device", mac=mac), (*base, "iface"))
            lease = _wan_lease(net, facts)
            if lease is not None:
                field = "address" if net.mode == "static" else "iface"
                add_addr(net.iface, f"{lease.address}/{lease.prefix}", (*base, field))
            set_sysctl(f"net/ipv6/conf/{net.iface}/accept_ra", "2", (*base, "iface"))
        elif isinstance(net, Lan):
            ports = {p.iface: p for p in net.vlan_ports}
            add_link(
                Link(
                    name=net.bridge, kind="bridge", vlan_filtering=net.vlan_filtering, created=True
                ),
                (*base, "bridge"),
            )
            for m, member in enumerate(net.members):
                port = ports.get(member)
                vlans = _port_vlans(port.pvid, port.tagged) if port is not None else None
                add_link(
                    Link(name=member, kind="device", master=net.bridge, port_vlans=vlans),
                    (*base, "members", m),
                )
            add_addr(net.bridge, f"{net.address}/{net.prefix}", (*base, "address"))
            _add_v6(net, net.bridge, facts, base, add_addr)
        elif isinstance(net, Simple):
            if net.vlan is not None and net.vlan_parent is not None:
                add_link(
                    Link(
                        name=net.iface,
                        kind="vlan",
                        vlan_parent=net.vlan_parent,
                        vlan_id=net.vlan,
                        created=True,
                    ),
                    (*base, "vlan"),
                )
            elif net.iface in facts.present_links:
                # Better than the reference (§5 item 3): an out-of-band iface (a hostapd bridge, a
                # WireGuard tunnel) gets its addresses once it exists; until then that is no error.
                add_link(Link(name=net.iface, kind="device"), (*base, "iface"))
            else:
                continue
            add_addr(net.iface, f"{net.address}/{net.prefix}", (*base, "address"))
            _add_v6(net, net.iface, facts, base, add_addr)
    if wans:
        set_sysctl(IP_FORWARD, "1", ("networks",))
        set_sysctl(IPV6_FORWARDING, "1", ("networks",))
    active = _active_wan(wans, facts)
    if active is not None:
        i, wan, gateway = active
        field = "gateway" if wan.mode == "static" else "iface"
        add_route(Route(dest="0.0.0.0/0", link=wan.iface, gateway=gateway), ("networks", i, field))
    for key, routes in (("routes", config.routes), ("routes6", config.routes6)):
        for i, r in enumerate(routes):
            route = Route(
                dest=f"{_ip(r.dest)}/{r.prefix}",
                link=r.iface,
                gateway=_ip(r.gateway) if r.gateway else None,
                # the kernel stores an IPv6 metric of 0 as 1024 (IP6_RT_PRIO_USER): ask for that
                metric=r.metric or (1024 if key == "routes6" else 0),
            )
            add_route(route, (key, i))
    return state


def _ip(text: str) -> str:
    """Canonical spelling of an address, host bits kept: the kernel refuses a misaligned route."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text  # schema validation names it; the kernel refuses it with the route's path


def _wan_lease(wan: Wan, facts: NetFacts) -> Lease | None:
    if wan.mode == "static" and wan.address is not None and wan.prefix is not None:
        return Lease(wan.address, wan.prefix, wan.gateway)
    return facts.leases.get(wan.name)


def _active_wan(wans: list[tuple[int, Wan]], facts: NetFacts) -> tuple[int, Wan, str] | None:
    by_priority = sorted(wans, key=lambda iw: iw[1].priority)
    if facts.active_wan is not None:
        by_priority = [iw for iw in by_priority if iw[1].name == facts.active_wan]
    for i, wan in by_priority:
        lease = _wan_lease(wan, facts)
        if lease is not None and lease.gateway:
            return i, wan, lease.gateway
    return None


def _add_v6(
    net: Lan | Simple,
    link: str,
    facts: NetFacts,
    base: Path,
    add_addr: Callable[[str, str, Path], None],
) -> None:
    if net.ipv6_address is not None:
        prefix = net.ipv6_prefix if net.ipv6_prefix is not None else IPV6_DEFAULT_PREFIX
        add_addr(link, f"{net.ipv6_address}/{prefix}", (*base, "ipv6_address"))
    if net.ipv6_subnet_id is not None and facts.delegated_prefix is not None:
        delegated = ipaddress.IPv6Network(facts.delegated_prefix, strict=False)
        if delegated.prefixlen <= 64 and net.ipv6_subnet_id < 2 ** (64 - delegated.prefixlen):
            subnet = int(delegated.network_address) + (net.ipv6_subnet_id << 64)
            add_addr(link, f"{ipaddress.IPv6Address(subnet + 1)}/64", (*base, "ipv6_subnet_id"))


def _port_vlans(pvid: int | None, tagged: list[int]) -> tuple[PortVlan, ...]:
    vlans = {v: PortVlan(v) for v in tagged}
    if pvid is not None:
        vlans[pvid] = PortVlan(pvid, pvid=True, untagged=True)
    return tuple(sorted(vlans.values()))


def _mac(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    parts = value.replace("-", ":").lower().split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    ):
        raise NetConfigError(where, f"{value!r} is not a MAC address (six hex pairs, ':' or '-')")
    if int(parts[0], 16) & 1:
        raise NetConfigError(
            where, f"{value!r} is a multicast MAC address; an interface needs unicast"
        )
    return ":".join(parts)


__all__ = [
    "DEFAULT_PVID",
    "HOSTNAME_SYSCTL",
    "IPV6_FORWARDING",
    "IP_FORWARD",
    "MAIN_TABLE",
    "OXWRT_ALIAS",
    "ROUTE_PROTO_OXWRT",
    "Addr",
    "Lease",
    "Link",
    "NetConfigError",
    "NetFacts",
    "NetState",
    "PortVlan",
    "Route",
    "desired",
]
