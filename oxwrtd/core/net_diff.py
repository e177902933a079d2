"""The ordered difference between desired and observed network state.

Owns `diff(desired, observed) -> list[Op]` and `scope(...)`, which tells an adapter what to observe.
Invariants:
- only owned objects are touched: links the config names or oxwrt created; addresses on those
  links (never `lo`'s); routes carrying ROUTE_PROTO_OXWRT; the sysctls and hostname desired names;
- parents before children on create (bridge before its members, VLAN parent before the VLAN),
  children before parents on delete (routes, addresses, VLANs, then bridges);
- diff(d, o) applied to o gives d on owned objects, so diff(d, apply(o)) is empty: no flaps.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from oxwrtd.core.net import DEFAULT_PVID, HOSTNAME_SYSCTL, Link, NetState, PortVlan
from oxwrtd.core.net_ops import (
    AddAddr,
    AddLink,
    AddPortVlan,
    AddRoute,
    AnyOp,
    DelAddr,
    DelLink,
    DelPortVlan,
    DelRoute,
    SetHostname,
    SetLinkUp,
    SetMac,
    SetMaster,
    SetSysctl,
    SetVlanFiltering,
)


class Scope(msgspec.Struct, frozen=True):
    """What to observe: links by name (plus any link oxwrt created), and these sysctls."""

    links: frozenset[str]
    sysctls: frozenset[str]


def scope(desired: NetState, previous: Iterable[str] = ()) -> Scope:
    """Names to observe: the desired links plus `previous` (links an earlier revision configured),
    so an out-of-band link dropped from the config is released from oxwrt's bridge and loses
    the addresses oxwrt gave it."""
    sysctls = set(desired.sysctls)
    if desired.hostname is not None:
        sysctls.add(HOSTNAME_SYSCTL)
    return Scope(frozenset(desired.links) | frozenset(previous), frozenset(sysctls))


def _needs_recreate(want: Link, have: Link) -> bool:
    return have.created and (
        want.kind != have.kind
        or (
            want.kind == "vlan"
            and (want.vlan_parent, want.vlan_id) != (have.vlan_parent, have.vlan_id)
        )
    )


def diff(desired: NetState, observed: NetState) -> list[AnyOp]:
    want, have = desired.links, observed.links
    origin = desired.origin
    recreate = {n for n, link in want.items() if n in have and _needs_recreate(link, have[n])}
    removed = {n for n, link in have.items() if n not in want and link.created}
    gone = removed | recreate  # links deleted by this plan: their addresses and routes go with them
    # the kernel deletes a VLAN with its parent: a wanted VLAN on a doomed parent is recreated
    orphans = {n for n in want if n in have and have[n].vlan_parent in gone and have[n].created}
    recreate |= orphans
    gone |= orphans
    ops: list[AnyOp] = []

    if desired.hostname is not None and desired.hostname != observed.hostname:
        ops.append(SetHostname(name=desired.hostname, where=origin(("hostname",))))

    for key, route in sorted(observed.routes.items()):
        if key not in desired.routes and route.link not in gone:
            ops.append(DelRoute(route=route))
    for addr in sorted(observed.addrs - desired.addrs):
        if addr.link not in gone:
            ops.append(DelAddr(addr=addr))

    for name, link in sorted(have.items()):
        leaving = name not in want and not link.created
        if leaving and link.master is not None and link.master in have and link.master not in gone:
            ops.append(SetMaster(name=name, master=None))
    # children before parents: VLANs, then bridges
    for name in sorted(gone, key=lambda n: (have[n].kind != "vlan", n)):
        ops.append(DelLink(name=name, where=origin(("link", name))))

    creating = [
        ln for n, ln in want.items() if ln.kind != "device" and (n not in have or n in recreate)
    ]
    for link in sorted(creating, key=lambda ln: (ln.kind == "vlan", ln.name)):  # parents first
        ops.append(
            AddLink(
                name=link.name,
                kind="vlan" if link.kind == "vlan" else "bridge",
                vlan_parent=link.vlan_parent,
                vlan_id=link.vlan_id,
                where=origin(("link", link.name)),
            )
        )
    fresh = {ln.name: _fresh(ln) for ln in creating}

    def current(name: str) -> Link | None:
        if name in fresh:
            return fresh[name]
        link = have.get(name)
        if link is not None and link.master in gone:
            # the kernel releases the ports of a bridge it deletes
            return msgspec.structs.replace(link, master=None, port_vlans=None)
        return link

    ordered = sorted(
        want.values(), key=lambda ln: (ln.kind == "vlan", ln.kind != "bridge", ln.name)
    )
    for link in ordered:
        now, where = current(link.name), origin(("link", link.name))
        if link.mac is not None and (now is None or now.mac != link.mac):
            ops.append(SetMac(name=link.name, mac=link.mac, where=where))
        if link.kind == "bridge" and (now is None or now.vlan_filtering != link.vlan_filtering):
            ops.append(SetVlanFiltering(name=link.name, on=link.vlan_filtering, where=where))
    joined: set[str] = set()  # ports that join a bridge now: the kernel gives them DEFAULT_PVID
    for link in ordered:
        now = current(link.name)
        if now is None and link.master is None:
            continue  # an absent device: its SetLinkUp reports it
        if now is None or now.master != link.master:
            ops.append(
                SetMaster(name=link.name, master=link.master, where=origin(("link", link.name)))
            )
            joined.add(link.name)
    for name, value in sorted(desired.sysctls.items()):
        if observed.sysctls.get(name) != value:
            ops.append(SetSysctl(name=name, value=value, where=origin(("sysctl", name))))
    for link in ordered:
        now = current(link.name)
        if now is None or now.up != link.up:
            ops.append(SetLinkUp(name=link.name, up=link.up, where=origin(("link", link.name))))
    for link in ordered:
        if link.port_vlans is None:
            continue
        now = current(link.name)
        if link.name in joined or now is None:
            had = {DEFAULT_PVID: PortVlan(DEFAULT_PVID, pvid=True, untagged=True)}
        else:
            had = {v.vid: v for v in (now.port_vlans or ())}
        wanted = {v.vid: v for v in link.port_vlans}
        where = origin(("link", link.name))
        for vid in sorted(had.keys() - wanted.keys()):
            ops.append(DelPortVlan(link=link.name, vid=vid, where=where))
        for vid, vlan in sorted(wanted.items()):
            if had.get(vid) != vlan:  # flags changed: re-adding a VID overwrites its flags
                ops.append(AddPortVlan(link=link.name, vlan=vlan, where=where))

    for addr in sorted(desired.addrs):
        if addr not in observed.addrs or addr.link in gone:
            ops.append(AddAddr(addr=addr, where=origin(("addr", addr))))
    for key, route in sorted(desired.routes.items()):
        old = observed.routes.get(key)
        if old is not None and old.link in gone:
            old = None
        if old != route:
            ops.append(AddRoute(route=route, replace=old is not None, where=origin(("route", key))))
    return ops


def _fresh(link: Link) -> Link:
    """What the kernel holds right after AddLink: down, no master, filtering off, default VLAN."""
    return Link(
        name=link.name,
        kind=link.kind,
        up=False,
        vlan_parent=link.vlan_parent,
        vlan_id=link.vlan_id,
        created=True,
    )


__all__ = ["Scope", "diff", "scope"]
