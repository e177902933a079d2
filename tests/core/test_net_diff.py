"""diff(desired, observed): order, ownership, idempotence (pure tier, against the verified fake)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxwrtd.core.net import ROUTE_PROTO_OXWRT, Addr, NetState, Route, desired
from oxwrtd.core.net_diff import diff, scope
from oxwrtd.core.net_ops import (
    AddAddr,
    AddLink,
    AddRoute,
    ApplyFailed,
    DelAddr,
    DelLink,
    DelRoute,
    SetLinkUp,
    SetMaster,
)
from oxwrtd.shell.fake_netlink import FakeNetlink
from tests.core.test_net_desired import COOKBOOK_NETWORKS, facts, make_config

DEVICES = ("wan0", "lan0", "lan1", "guest0", "wg0")
FOREIGN_ROUTE = Route(dest="172.16.0.0/12", link="eth9", gateway=None, metric=5)


def kernel(*, vlans: bool = True) -> FakeNetlink:
    fake = FakeNetlink(link_kinds=("bridge", "vlan") if vlans else ("bridge",))
    for name in (*DEVICES, "eth9"):
        fake.add_device(name)
    fake.links["eth9"].up = True
    fake.addrs.add(Addr("eth9", "172.16.0.2/12"))
    fake.add_route(FOREIGN_ROUTE, proto=4)  # a route someone else (static, proto 4) owns
    return fake


def converge(
    fake: FakeNetlink, want: NetState, previous: frozenset[str] = frozenset()
) -> list[Any]:
    ops = diff(want, fake.observe(scope(want, previous)))
    fake.apply(ops)
    return ops


def test_create_order_parents_before_children() -> None:
    want = desired(make_config(), facts())
    ops = diff(want, kernel().observe(scope(want)))
    kinds = [type(op).__name__ for op in ops]
    assert kinds.index("AddLink") < kinds.index("SetMaster") < kinds.index("SetLinkUp")
    assert kinds.index("SetLinkUp") < kinds.index("AddAddr") < kinds.index("AddRoute")
    bridge_up = ops.index(SetLinkUp(name="br-lan", where='networks[1] (name "lan").bridge'))
    assert ops.index(AddLink(name="br-lan", kind="bridge", where=ops[bridge_up].where)) < bridge_up


def test_vlan_parent_bridge_created_before_the_vlan_and_deleted_after() -> None:
    def vlan_on_bridge(raw: dict[str, Any]) -> None:
        raw["networks"].append(
            {
                "type": "simple",
                "name": "iot",
                "iface": "iot0",
                "address": "192.168.30.1",
                "prefix": 24,
                "vlan": 30,
                "vlan_parent": "br-lan",
            }
        )

    fake = kernel()
    ops = converge(fake, desired(make_config(vlan_on_bridge), facts()))
    adds = [op.name for op in ops if isinstance(op, AddLink)]
    assert adds == ["br-lan", "iot0"]

    def no_lan(raw: dict[str, Any]) -> None:
        vlan_on_bridge(raw)
        del raw["networks"][1]
        raw["routes"], raw["routes6"] = [], []

    fewer = desired(make_config(no_lan, COOKBOOK_NETWORKS), facts())
    # dropping the bridge under a VLAN still wanted: children first, then the parent; the VLAN is
    # asked for again and the kernel will refuse it (its parent is gone), which names its path
    ops = diff(fewer, fake.observe(scope(fewer)))
    links = [(type(op).__name__, op.name) for op in ops if isinstance(op, AddLink | DelLink)]
    assert links == [("DelLink", "iot0"), ("DelLink", "br-lan"), ("AddLink", "iot0")]
    with pytest.raises(ApplyFailed, match=r'networks\[3\] \(name "iot"\)\.vlan: .*No such device'):
        fake.apply(ops)


def test_second_apply_is_empty_and_writes_nothing() -> None:
    fake = kernel()
    want = desired(make_config(), facts())
    assert converge(fake, want)
    writes = fake.writes
    assert converge(fake, want) == []
    assert fake.writes == writes


def test_removing_a_network_removes_only_what_oxwrt_created() -> None:
    fake = kernel()
    converge(fake, desired(make_config(), facts()))
    before = set(fake.links)

    def drop_lan(raw: dict[str, Any]) -> None:
        del raw["networks"][1]
        raw["routes"], raw["routes6"] = [], []

    smaller = desired(make_config(drop_lan), facts())
    ops = converge(fake, smaller, previous=frozenset({"br-lan", "lan0"}))
    assert {type(op) for op in ops} <= {DelLink, DelRoute, DelAddr, SetMaster}
    assert set(fake.links) == before - {"br-lan"}  # lan0 (a veth) stays, released
    assert fake.links["lan0"].master is None
    assert fake.routes[FOREIGN_ROUTE.key] == (FOREIGN_ROUTE, 4)
    assert Addr("eth9", "172.16.0.2/12") in fake.addrs
    assert Addr("lo", "127.0.0.1/8") in fake.addrs
    assert diff(smaller, fake.observe(scope(smaller))) == []


def test_foreign_links_addresses_and_routes_are_never_touched() -> None:
    fake = kernel()
    fake.addrs.add(Addr("lo", "127.0.0.53/8"))  # e.g. a resolver's stub address
    ops = converge(fake, desired(make_config(), facts()))
    touched = {n for op in ops for n in op.links()} | {
        op.addr.link for op in ops if isinstance(op, AddAddr | DelAddr)
    }
    assert "eth9" not in touched
    assert not [op for op in ops if isinstance(op, DelAddr | DelRoute)]
    assert Addr("lo", "127.0.0.53/8") in fake.addrs


def test_a_changed_gateway_replaces_the_route_without_a_delete() -> None:
    fake = kernel()
    converge(fake, desired(make_config(), facts()))

    def new_gateway(raw: dict[str, Any]) -> None:
        raw["routes"][0]["gateway"] = "192.168.50.3"

    ops = converge(fake, desired(make_config(new_gateway), facts()))
    assert [type(op) for op in ops] == [AddRoute]
    assert ops[0].replace


def test_a_missing_member_fails_with_its_path_and_other_networks_still_apply() -> None:
    def missing_member(raw: dict[str, Any]) -> None:
        raw["networks"][1]["members"] = ["lan0", "lan9"]

    fake = kernel()
    want = desired(make_config(missing_member), facts())
    with pytest.raises(ApplyFailed) as failed:
        converge(fake, want)
    assert str(failed.value).startswith(
        'networks[1] (name "lan").members[1]: kernel refused to add "lan9" to bridge "br-lan": '
        "No such device"
    )
    assert len(failed.value.failures) == 1
    assert fake.links["lan0"].master == "br-lan"
    assert Addr("guest0", "10.99.0.1/24") in fake.addrs  # later networks still configured


def test_vlan_refused_by_the_kernel_names_the_vlan_key() -> None:
    def iot(raw: dict[str, Any]) -> None:
        raw["networks"].append(
            {
                "type": "simple",
                "name": "iot",
                "iface": "iot0",
                "address": "192.168.30.1",
                "prefix": 24,
                "vlan": 30,
                "vlan_parent": "lan0",
            }
        )

    fake = kernel(vlans=False)
    with pytest.raises(ApplyFailed) as failed:
        converge(fake, desired(make_config(iot), facts()))
    assert str(failed.value.failures[0]) == (
        'networks[4] (name "iot").vlan: kernel refused to create VLAN link "iot0" '
        '(id 30 on "lan0"): Operation not supported'
    )
    assert [op.describe() for op in failed.value.skipped] == [
        'set link "iot0" up',
        'add address 192.168.30.1/24 to "iot0"',
    ]
    assert Addr("br-lan", "192.168.50.1/24") in fake.addrs


# ------------------------------------------------------------ property: diff, apply, diff: empty


def _simple(name: str, iface: str, address: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "simple",
        "name": name,
        "iface": iface,
        "address": address,
        "prefix": 24,
        **extra,
    }


def _lan(name: str, bridge: str, member: str, address: str, **extra: Any) -> dict[str, Any]:
    return {"type": "lan", "name": name, "bridge": bridge, "members": [member],
            "address": address, "prefix": 24, **extra}  # fmt: skip


NETWORK_POOL: list[dict[str, Any]] = [
    {"type": "wan", "name": "wan", "iface": "wan0", "mode": "dhcp"},
    _lan("lan", "br-lan", "lan0", "192.168.50.1"),
    _lan(
        "lan2",
        "br-two",
        "lan1",
        "192.168.51.1",
        ipv6_address="fd00:51::1",
        vlan_filtering=True,
        vlan_ports=[{"iface": "lan1", "pvid": 5, "tagged": [7]}],
    ),
    _simple("guest", "guest0", "10.99.0.1"),
    _simple("iot", "iot0", "192.168.30.1", vlan=30, vlan_parent="lan0"),
    _simple("cams", "cams0", "192.168.31.1", vlan=31, vlan_parent="br-lan"),
    _simple("vpn", "wg0", "10.8.0.1"),
]
ROUTE_POOL: list[dict[str, Any]] = [
    {"dest": "10.20.0.0", "prefix": 16, "iface": "guest0", "gateway": "10.99.0.2"},
    {"dest": "10.21.0.0", "prefix": 16, "iface": "guest0"},
    {"dest": "10.21.0.0", "prefix": 16, "iface": "guest0", "metric": 7},
]


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    nets = draw(st.lists(st.sampled_from(range(len(NETWORK_POOL))), unique=True, max_size=7))
    raw = copy.deepcopy(COOKBOOK_NETWORKS)
    raw["networks"] = [copy.deepcopy(NETWORK_POOL[i]) for i in sorted(nets)]
    names = {n["name"] for n in raw["networks"]}
    if "lan" not in names:  # VLANs on lan0/br-lan need their parent configured or present
        raw["networks"] = [n for n in raw["networks"] if n.get("vlan_parent") != "br-lan"]
    raw["routes"] = (
        [copy.deepcopy(r) for r in draw(st.lists(st.sampled_from(ROUTE_POOL), max_size=2))]
        if "guest" in names
        else []
    )
    raw["routes"] = list({(r["dest"], r.get("metric")): r for r in raw["routes"]}.values())
    raw["routes6"] = []
    raw["hostname"] = draw(st.sampled_from(["a", "b"]))
    return raw


@st.composite
def lease_facts(draw: st.DrawFn) -> Any:
    leases = draw(st.sampled_from([{}, {"wan": facts().leases["wan"]}]))
    return facts(present_links=frozenset(DEVICES), leases=leases)


def disturb(fake: FakeNetlink, choice: int) -> None:
    """Out-of-band changes to owned objects (someone ran `ip` by hand)."""
    if choice == 1 and "br-lan" in fake.links:
        fake.links["br-lan"].up = False
    elif choice == 2:
        fake.addrs.add(Addr("guest0", "10.99.0.77/24"))
    elif choice == 3:
        stray = Route(dest="10.250.0.0/16", link="wan0")
        fake.add_route(stray, ROUTE_PROTO_OXWRT)
    elif choice == 4:
        fake.links["lan0"].master = None
        fake.links["lan0"].port_vlans = {}
    elif choice == 5:
        fake.hostname = "tampered"


@settings(max_examples=150, deadline=None)
@given(before=configs(), after=configs(), facts_a=lease_facts(), facts_b=lease_facts(),
       tamper=st.integers(0, 5))  # fmt: skip
def test_apply_the_diff_then_diff_again_is_empty(
    before: dict[str, Any], after: dict[str, Any], facts_a: Any, facts_b: Any, tamper: int
) -> None:
    fake = kernel()
    first = desired(make_config(base=before), facts_a)
    converge(fake, first)
    disturb(fake, tamper)
    second = desired(make_config(base=after), facts_b)
    previous = frozenset(first.links)
    observed = fake.observe(scope(second, previous))
    fake.apply(diff(second, observed))
    again = fake.observe(scope(second, previous))
    assert diff(second, again) == []
    # apply(diff(d, o)) gives d on owned objects
    assert again.addrs == second.addrs
    assert again.routes == second.routes
    for name, link in second.links.items():
        got = again.links[name]
        assert (got.up, got.master, got.kind) == (link.up, link.master, link.kind)
    # nothing oxwrt does not own was touched
    assert fake.routes[FOREIGN_ROUTE.key] == (FOREIGN_ROUTE, 4)
    assert Addr("eth9", "172.16.0.2/12") in fake.addrs
    assert set(DEVICES) | {"eth9", "lo"} <= set(fake.links)


def test_a_vlan_on_a_recreated_parent_is_recreated_after_it() -> None:
    fake = kernel()
    fake.add_device("br-x", kind="veth")  # someone else's link under a name oxwrt will want
    fake.links["br-x"].alias = "oxwrt"  # ... that oxwrt once created as another kind

    def on_br_x(raw: dict[str, Any]) -> None:
        raw["networks"] = [
            _lan("x", "br-x", "lan1", "192.168.60.1"),
            _simple("xv", "xv0", "192.168.61.1", vlan=61, vlan_parent="br-x"),
        ]
        raw["routes"], raw["routes6"] = [], []

    want = desired(make_config(on_br_x), facts())
    fake.add_device("xv0", kind="vlan")
    fake.links["xv0"].alias, fake.links["xv0"].vlan_parent, fake.links["xv0"].vlan_id = (
        "oxwrt",
        "br-x",
        61,
    )
    ops = diff(want, fake.observe(scope(want)))
    names = [(type(op).__name__, op.name) for op in ops if isinstance(op, AddLink | DelLink)]
    assert names == [
        ("DelLink", "xv0"),
        ("DelLink", "br-x"),
        ("AddLink", "br-x"),
        ("AddLink", "xv0"),
    ]
    fake.apply(ops)
    assert diff(want, fake.observe(scope(want))) == []
