"""One contract for the netlink adapter and its fake: converge, idempotence (zero writes), refusals
named by config path with the kernel's words, ownership.

The kernel variant runs in a network namespace this test creates and deletes (never the machine's
own); its sysctls go to a scratch directory (/proc/sys follows the caller's namespace, which is
covered by tests/lab/test_net_apply.py running the adapter inside the namespace)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from oxwrtd.core.net import Addr, NetState, Route, desired
from oxwrtd.core.net_diff import Scope, diff, scope
from oxwrtd.core.net_ops import AddAddr, ApplyFailed, Op
from oxwrtd.shell.fake_netlink import FakeNetlink
from tests.core.test_net_desired import facts, make_config


class Adapter(Protocol):
    writes: int

    def present_links(self) -> frozenset[str]: ...
    def observe(self, scope: Scope) -> NetState: ...
    def apply(self, ops: list[Op]) -> None: ...


class World:
    """An adapter plus the out-of-band powers a test needs (making a NIC, a foreign route)."""

    def __init__(self, adapter: Adapter, ns: str | None) -> None:
        self.adapter, self.ns = adapter, ns

    def add_device(self, name: str) -> None:
        if self.ns is None:
            assert isinstance(self.adapter, FakeNetlink)
            self.adapter.add_device(name)
        else:
            ip(self.ns, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")

    def foreign_route(self) -> None:
        """172.16.0.0/12 on eth9 with protocol `static`: someone else's."""
        self.add_device("eth9")
        if self.ns is None:
            assert isinstance(self.adapter, FakeNetlink)
            fake = self.adapter
            fake.links["eth9"].up = True
            fake.addrs.add(Addr("eth9", "172.16.0.2/12"))
            fake.add_route(Route(dest="172.16.0.0/12", link="eth9", metric=5), proto=4)
        else:
            ip(self.ns, "link", "set", "eth9", "up")
            ip(self.ns, "addr", "add", "172.16.0.2/12", "dev", "eth9")
            ip(self.ns, "route", "add", "172.16.99.0/24", "dev", "eth9", "proto", "static")

    def foreign_present(self) -> bool:
        if self.ns is None:
            assert isinstance(self.adapter, FakeNetlink)
            return any(p == 4 for _, p in self.adapter.routes.values()) and (
                Addr("eth9", "172.16.0.2/12") in self.adapter.addrs
            )
        routes = ip(self.ns, "route", "show", "proto", "static")
        addrs = ip(self.ns, "addr", "show", "dev", "eth9")
        return "172.16.99.0/24" in routes and "172.16.0.2/12" in addrs

    def converge(self, want: NetState, previous: frozenset[str] = frozenset()) -> list[Op]:
        ops: list[Op] = list(diff(want, self.adapter.observe(scope(want, previous))))
        self.adapter.apply(ops)
        return ops


def ip(ns: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *argv], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(params=["fake", pytest.param("kernel", marks=pytest.mark.lab)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    # TESTBED.md: the lab kernel has bridges but neither 802.1Q links nor bridge VLAN filtering;
    # the fake mirrors that, so both variants take the same branch of the either/or tests below.
    if request.param == "fake":
        yield World(FakeNetlink(link_kinds=("bridge",), bridge_vlans=False), None)
        return
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for a network namespace")
    from oxwrtd.shell.netlink import Netlink
    from oxwrtd.shell.sysctl import Sysctl

    for key in ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "kernel/hostname"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text("0\n")
    (tmp_path / "net/ipv6/conf/wan0").mkdir(parents=True)
    (tmp_path / "net/ipv6/conf/wan0/accept_ra").write_text("1\n")
    ns = f"oxnl-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        adapter = Netlink(ns, Sysctl(tmp_path))
        try:
            yield World(adapter, ns)
        finally:
            adapter.close()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


@pytest.fixture
def cookbook_world(world: World) -> World:
    for name in ("wan0", "lan0", "guest0"):
        world.add_device(name)
    return world


def test_converges_and_a_second_apply_writes_nothing(cookbook_world: World) -> None:
    present = cookbook_world.adapter.present_links()
    assert {"lo", "wan0", "lan0", "guest0"} <= present
    want = desired(make_config(), facts(present_links=present))
    assert cookbook_world.converge(want)
    observed = cookbook_world.adapter.observe(scope(want))
    assert observed.addrs == want.addrs
    assert observed.routes == want.routes
    assert observed.links["lan0"].master == "br-lan"
    assert all(observed.links[n].up for n in ("br-lan", "lan0", "wan0", "guest0"))
    writes = cookbook_world.adapter.writes
    assert cookbook_world.converge(want) == []
    assert cookbook_world.adapter.writes == writes


def test_an_address_on_a_missing_link_is_refused_with_its_path(world: World) -> None:
    op = AddAddr(addr=Addr("nope0", "10.0.0.1/24"), where='networks[2] (name "x").address')
    with pytest.raises(ApplyFailed) as failed:
        world.adapter.apply([op])
    assert str(failed.value) == (
        'networks[2] (name "x").address: kernel refused to add address 10.0.0.1/24 to "nope0": '
        "No such device"
    )


def test_a_missing_member_names_its_path_and_the_rest_still_applies(world: World) -> None:
    for name in ("wan0", "lan0", "guest0"):
        world.add_device(name)

    def missing(raw: dict[str, Any]) -> None:
        raw["networks"][1]["members"] = ["lan0", "lan9"]

    want = desired(make_config(missing), facts())
    with pytest.raises(ApplyFailed) as failed:
        world.converge(want)
    assert [str(f) for f in failed.value.failures] == [
        'networks[1] (name "lan").members[1]: kernel refused to add "lan9" to bridge "br-lan": '
        "No such device"
    ]
    observed = world.adapter.observe(scope(want))
    assert Addr("guest0", "10.99.0.1/24") in observed.addrs
    assert observed.links["lan0"].master == "br-lan"


def test_a_misaligned_route_is_refused_and_the_other_routes_stay(cookbook_world: World) -> None:
    def bad_route(raw: dict[str, Any]) -> None:
        raw["routes"].insert(0, {"dest": "10.30.0.1", "prefix": 16, "iface": "br-lan"})

    want = desired(make_config(bad_route), facts())
    with pytest.raises(ApplyFailed) as failed:
        cookbook_world.converge(want)
    assert len(failed.value.failures) == 1
    assert str(failed.value).startswith(
        'routes[0]: kernel refused to add route 10.30.0.1/16 dev "br-lan" metric 1024: '
        "Invalid argument"
    )
    observed = cookbook_world.adapter.observe(scope(want))
    assert (4, 254, "10.20.0.0/16", 1024) in observed.routes  # routes[1] still went in (§5 item 25)


def test_an_unreachable_gateway_is_refused(cookbook_world: World) -> None:
    def far_gateway(raw: dict[str, Any]) -> None:
        raw["routes"][0]["gateway"] = "10.77.0.1"

    with pytest.raises(ApplyFailed) as failed:
        cookbook_world.converge(desired(make_config(far_gateway), facts()))
    assert str(failed.value).startswith(
        'routes[0]: kernel refused to add route 10.20.0.0/16 via 10.77.0.1 dev "br-lan" metric '
        "1024: Network is unreachable"
    )


def test_a_vlan_network_is_created_or_refused_with_its_vlan_key(cookbook_world: World) -> None:
    def iot(raw: dict[str, Any]) -> None:
        raw["networks"].append(
            {"type": "simple", "name": "iot", "iface": "iot0", "address": "192.168.30.1",
             "prefix": 24, "vlan": 30, "vlan_parent": "lan0"}
        )  # fmt: skip

    want = desired(make_config(iot), facts())
    try:
        cookbook_world.converge(want)
    except ApplyFailed as failed:
        assert str(failed.failures[0]).startswith(
            'networks[4] (name "iot").vlan: kernel refused to create VLAN link "iot0" '
            '(id 30 on "lan0"): Operation not supported'
        )
        assert (
            Addr("br-lan", "192.168.50.1/24") in cookbook_world.adapter.observe(scope(want)).addrs
        )
    else:
        got = cookbook_world.adapter.observe(scope(want)).links["iot0"]
        assert (got.kind, got.vlan_id, got.vlan_parent, got.created) == ("vlan", 30, "lan0", True)


def test_removing_a_network_removes_only_what_oxwrt_created(cookbook_world: World) -> None:
    cookbook_world.foreign_route()
    first = desired(make_config(), facts())
    cookbook_world.converge(first)

    def drop_lan(raw: dict[str, Any]) -> None:
        del raw["networks"][1]
        raw["routes"], raw["routes6"] = [], []

    second = desired(make_config(drop_lan), facts())
    cookbook_world.converge(second, previous=frozenset(first.links))
    observed = cookbook_world.adapter.observe(scope(second, frozenset(first.links)))
    assert "br-lan" not in observed.links
    assert observed.links["lan0"].master is None  # the veth stays, released
    assert observed.addrs == second.addrs
    assert observed.routes == second.routes
    assert cookbook_world.foreign_present()
    assert diff(second, observed) == []


def test_a_mac_override_is_applied_once(cookbook_world: World) -> None:
    def mac(raw: dict[str, Any]) -> None:
        raw["networks"][0]["mac_address"] = "02:11:22:33:44:55"

    want = desired(make_config(mac), facts())
    cookbook_world.converge(want)
    assert cookbook_world.adapter.observe(scope(want)).links["wan0"].mac == "02:11:22:33:44:55"
    assert cookbook_world.converge(want) == []


def test_bridge_vlan_filtering_is_applied_or_refused_with_its_path(cookbook_world: World) -> None:
    def vlan_aware(raw: dict[str, Any]) -> None:
        raw["networks"][1]["vlan_filtering"] = True
        raw["networks"][1]["vlan_ports"] = [{"iface": "lan0", "pvid": 10, "tagged": [30]}]

    want = desired(make_config(vlan_aware), facts())
    try:
        cookbook_world.converge(want)
    except ApplyFailed as failed:
        assert str(failed.failures[0]) == (
            'networks[1] (name "lan").bridge: kernel refused to turn VLAN filtering on on bridge '
            '"br-lan": Operation not supported'
        )
        assert (
            Addr("br-lan", "192.168.50.1/24") in cookbook_world.adapter.observe(scope(want)).addrs
        )
    else:
        observed = cookbook_world.adapter.observe(scope(want))
        assert observed.links["br-lan"].vlan_filtering
        assert observed.links["lan0"].port_vlans == want.links["lan0"].port_vlans
        assert cookbook_world.converge(want) == []


def test_the_inventory_lists_every_link_address_and_route_owned_or_not(
    cookbook_world: World,
) -> None:
    """`diag` sees the whole namespace: oxwrt's objects and everyone else's."""
    present = cookbook_world.adapter.present_links()
    want = desired(make_config(), facts(present_links=present))
    cookbook_world.converge(want)
    cookbook_world.foreign_route()
    inventory = cookbook_world.adapter.inventory()  # type: ignore[attr-defined]
    links = {row.name: row for row in inventory.links}
    assert {"lo", "wan0", "lan0", "guest0", "br-lan", "eth9"} <= set(links)
    assert links["lan0"].master == "br-lan" and links["br-lan"].kind == "bridge"
    assert links["lo"].kind == "loopback" and links["wan0"].mtu > 0
    addrs = {(row.link, row.cidr) for row in inventory.addrs}
    assert {(a.link, a.cidr) for a in want.addrs} <= addrs
    assert ("eth9", "172.16.0.2/12") in addrs  # not oxwrt's, listed all the same
    routes = {(row.dest, row.link, row.proto) for row in inventory.routes}
    for route in want.routes.values():
        dest = "default" if route.dest in {"0.0.0.0/0", "::/0"} else route.dest
        assert (dest, route.link, 155) in routes
    assert any(row.link == "eth9" and row.proto == 4 for row in inventory.routes)


def test_every_link_that_is_up_has_its_queueing_discipline_listed(world: World) -> None:
    world.add_device("wan0")
    if world.ns is None:
        assert isinstance(world.adapter, FakeNetlink)
        world.adapter.links["wan0"].up = True
    else:
        ip(world.ns, "link", "set", "lo", "up")
        ip(world.ns, "link", "set", "wan0", "up")
    qdiscs = world.adapter.qdiscs()  # type: ignore[attr-defined]
    assert {"lo", "wan0"} <= {q.link for q in qdiscs}
    assert all(q.kind for q in qdiscs)
