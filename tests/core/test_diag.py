"""`diag`: argument checks and the text it lays out (pure)."""

from __future__ import annotations

import pytest

from oxwrtd.core.diag import (
    AddrRow,
    DiagError,
    Inventory,
    LinkRow,
    QdiscRow,
    RouteRow,
    addresses_text,
    check,
    dhcp_text,
    kmsg_text,
    links_text,
    nft_summary,
    qdiscs_text,
    routes_text,
    sysctl_path,
)
from oxwrtd.core.state import Lease

LISTING = """table inet oxwrt {
\tset no_internet {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 192.168.50.40, 192.168.50.41,
\t\t\t     192.168.50.200/29 }
\t}
\tset empty {
\t\ttype ipv4_addr
\t}
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiifname "lo" accept
\t\tct state established,related accept
\t}
\tchain zone_lan_input {
\t\taccept
\t}
\tchain revision_abc {
\t}
}
table ip oxwrt-nat {
\tchain srcnat {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "wan0" masquerade
\t}
}
"""


def test_nft_summary_counts_rules_per_chain_and_elements_per_set() -> None:
    assert nft_summary(LISTING) == (
        "table inet oxwrt\n"
        "  set no_internet: 3 elements\n"
        "  set empty: 0 elements\n"
        "  chain input (type filter hook input priority filter): 2 rules\n"
        "  chain zone_lan_input: 1 rules\n"
        "  chain revision_abc: 0 rules\n"
        "table ip oxwrt-nat\n"
        "  chain srcnat (type nat hook postrouting priority srcnat): 1 rules\n"
    )
    assert nft_summary("") == "no tables\n"


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("net.ipv4.ip_forward", "net/ipv4/ip_forward"),
        ("net/ipv4/conf/all/rp_filter", "net/ipv4/conf/all/rp_filter"),
        ("/net/ipv6/conf/all/forwarding/", "net/ipv6/conf/all/forwarding"),
        ("net/ipv4/conf/br-lan/forwarding", "net/ipv4/conf/br-lan/forwarding"),
    ],
)
def test_sysctl_keys_in_either_form_map_under_proc_sys(key: str, path: str) -> None:
    assert sysctl_path(key) == path


@pytest.mark.parametrize("key", ["../../etc/shadow", "net/../../etc", "net ipv4", "a;b", "", "."])
def test_a_sysctl_key_can_never_leave_proc_sys(key: str) -> None:
    with pytest.raises(DiagError) as err:
        sysctl_path(key)
    assert err.value.code == "bad-request"


def test_unknown_unavailable_and_mistyped_requests_are_refused_with_advice() -> None:
    with pytest.raises(DiagError, match="no diag operation 'nope'; available: links") as err:
        check("nope", [])
    assert err.value.code == "bad-request"
    with pytest.raises(DiagError, match="diag ping is not available on this router yet;") as err:
        check("ping", ["1.1.1.1"])
    assert err.value.code == "unsupported"
    with pytest.raises(DiagError, match="it would reboot the router"):
        check("stall", [])
    with pytest.raises(DiagError, match="diag links takes no arguments"):
        check("links", ["eth0"])
    with pytest.raises(DiagError, match="at most one key"):
        check("sysctl", ["a", "b"])
    with pytest.raises(DiagError, match="not a sysctl key"):
        check("sysctl", ["../x"])
    check("sysctl", [])
    check("sysctl", ["net.ipv4.ip_forward"])
    check("nft-summary", [])


def test_tables_of_links_addresses_and_routes() -> None:
    inv = Inventory(
        links=[
            LinkRow(
                index=2,
                name="lan0",
                kind="veth",
                operstate="up",
                mtu=1500,
                mac="02:00:00:00:00:02",
                master="br-lan",
            ),
            LinkRow(index=1, name="lo", kind="loopback", operstate="unknown", mtu=65536, mac=""),
        ],
        addrs=[AddrRow(link="lo", cidr="127.0.0.1/8"), AddrRow(link="br-lan", cidr="10.0.0.1/24")],
        routes=[
            RouteRow(
                dest="default", gateway="203.0.113.1", link="wan0", metric=0, table=254, proto=155
            )
        ],
    )
    assert links_text(inv).splitlines() == [
        "INDEX  NAME  KIND      STATE    MTU    MAC                MASTER",
        "1      lo    loopback  unknown  65536",
        "2      lan0  veth      up       1500   02:00:00:00:00:02  br-lan",
    ]
    assert addresses_text(inv).splitlines()[1:] == ["br-lan  10.0.0.1/24", "lo      127.0.0.1/8"]
    assert (
        routes_text(inv).splitlines()[1] == "default      203.0.113.1  wan0  0       main   oxwrt"
    )


def test_dhcp_shows_each_dhcp_wan_and_what_its_lease_is_worth_now() -> None:
    now = 1_800_000_000.0
    leases = {
        "wan0": Lease(
            interface="wan0",
            address="203.0.113.7/24",
            at=now - 100,
            gateway="203.0.113.1",
            dns=["203.0.113.1"],
            expires=now + 3500,
        ),
        "wan1": Lease(interface="wan1", address="198.51.100.9/24", at=now - 9000, expires=now - 1),
    }
    assert dhcp_text(leases, ["wan0", "wan1", "wan2"], now) == (
        "wan0: 203.0.113.7/24 via 203.0.113.1, dns 203.0.113.1, 3500 s left\n"
        "wan1: 198.51.100.9/24 via -, dns -, EXPIRED\n"
        "wan2: no lease yet\n"
    )
    assert dhcp_text(leases, [], now) == "no DHCP WAN in the running revision\n"


def test_dmesg_reads_kmsg_records_as_dmesg_prints_them_newest_last() -> None:
    records = [
        b"6,1,1500000,-;first line\n",
        b"4,2,2250001,-;usb 1-1: new device\n SUBSYSTEM=usb\n DEVICE=c189:1\n",
        b"garbage without a header\n",
        b"3,3,3000000,c;third\n",
    ]
    assert kmsg_text(records) == (
        "[    1.500000] first line\n[    2.250001] usb 1-1: new device\n[    3.000000] third\n"
    )
    assert kmsg_text(records, limit=1) == "(2 older lines not shown)\n[    3.000000] third\n"
    assert kmsg_text([]) == "(kernel log is empty)\n"


def test_qdiscs_show_handles_as_tc_does() -> None:
    rows = [
        QdiscRow(link="wan0", kind="cake", handle=0x80010000, parent=0xFFFFFFFF),
        QdiscRow(link="lo", kind="noqueue", handle=0, parent=0xFFFFFFFF),
        QdiscRow(link="wan0", kind="fq_codel", handle=0x10001, parent=0x10000),
    ]
    assert qdiscs_text(rows).splitlines() == [
        "LINK  QDISC     HANDLE  PARENT",
        "lo    noqueue   0:      root",
        "wan0  cake      8001:   root",
        "wan0  fq_codel  1:1     1:",
    ]
    check("qdisc", [])
    check("dmesg", [])
