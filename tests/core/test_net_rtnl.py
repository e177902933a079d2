"""The sans-IO rtnetlink codec: requests decode back to what was asked; hostile bytes decode to
None or a value, never an exception, never past the buffer (pure tier)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from oxwrtd.core import net_rtnl as rtnl
from oxwrtd.core.net import ROUTE_PROTO_OXWRT, Addr, Route


def test_address_requests_round_trip() -> None:
    for cidr in ("192.168.50.1/24", "fd7a:5c3e:9b21::1/64"):
        request = rtnl.encode_addr(Addr("br-lan", cidr), 7, seq=42)
        [(kind, flags, seq, _)] = list(rtnl.messages(request))
        assert (kind, seq) == (rtnl.RTM_NEWADDR, 42)
        assert flags & 0x4  # NLM_F_ACK: every request is acknowledged
        decoded = rtnl.decode_addr(request)
        # no IFA_F_PERMANENT in a request: v4 is always ours, a v6 without it reads as SLAAC
        assert decoded == (7, cidr, ":" not in cidr)


def test_route_requests_round_trip_with_protocol_table_metric_gateway() -> None:
    routes = [
        Route(dest="0.0.0.0/0", link="wan0", gateway="203.0.113.1"),
        Route(dest="10.20.0.0/16", link="br-lan", gateway="192.168.50.2", metric=1024),
        Route(dest="fd99::/48", link="br-lan", metric=1024, table=1000),
    ]
    for route in routes:
        request = rtnl.encode_route(route, 3, seq=9, replace=True)
        [(kind, flags, _, _)] = list(rtnl.messages(request))
        assert kind == rtnl.RTM_NEWROUTE and flags & 0x100  # NLM_F_REPLACE
        proto, back = rtnl.decode_route(request) or (None, None)
        assert proto == ROUTE_PROTO_OXWRT
        assert back == Route(
            dest=route.dest, link="3", gateway=route.gateway, metric=route.metric, table=route.table
        )


def test_ack_carries_errno_and_the_kernels_extended_message() -> None:
    refused_header = struct.pack("=IHHII", 40, rtnl.RTM_NEWROUTE, 5, 9, 0)
    text = b"Invalid prefix for given prefix length\0"
    tlv = struct.pack("=HH", 4 + len(text), 1) + text + b"\0" * (-(4 + len(text)) % 4)
    body = struct.pack("=i", -22) + refused_header + tlv
    message = struct.pack("=IHHII", 16 + len(body), rtnl.NLMSG_ERROR, 0x300, 9, 0) + body
    [(kind, flags, seq, whole)] = list(rtnl.messages(message))
    assert (kind, seq) == (rtnl.NLMSG_ERROR, 9)
    assert rtnl.ack(whole, flags) == (22, "Invalid prefix for given prefix length")
    success = struct.pack("=IHHII", 36, rtnl.NLMSG_ERROR, 0x100, 10, 0) + bytes(20)
    assert rtnl.ack(success, 0x100) == (0, "")


@given(st.lists(st.tuples(st.sampled_from([20, 24, 2, 3]), st.binary(max_size=80)), max_size=4))
def test_any_message_bodies_decode_to_none_or_a_value(parts: list[tuple[int, bytes]]) -> None:
    framed = b"".join(
        struct.pack("=IHHII", 16 + len(body), kind, 0, n, 0) + body + bytes(-len(body) % 4)
        for n, (kind, body) in enumerate(parts)
    )
    seen = list(rtnl.messages(framed))
    assert [seq for _, _, seq, _ in seen] == list(range(len(parts)))
    for _kind, _flags, _seq, message in seen:
        rtnl.decode_addr(message)  # None or a value: never an exception, never past the end
        rtnl.decode_route(message)
        code, text = rtnl.ack(message, 0x200)
        assert isinstance(code, int) and isinstance(text, str)


def test_a_truncated_dump_yields_only_whole_messages() -> None:
    two = rtnl.encode_addr(Addr("x", "10.0.0.1/8"), 1, 1) + rtnl.encode_addr(
        Addr("x", "10.0.0.2/8"), 1, 2
    )
    assert [seq for _, _, seq, _ in rtnl.messages(two[:-3])] == [1]


def test_quiet_strips_only_the_ack_flag() -> None:
    loud = rtnl.encode_addr(Addr("x", "10.0.0.1/8"), 1, 5)
    quiet = rtnl.quiet(loud)
    [(kind, flags, seq, _)] = list(rtnl.messages(quiet))
    [(_, loud_flags, _, _)] = list(rtnl.messages(loud))
    assert (kind, seq, flags) == (rtnl.RTM_NEWADDR, 5, loud_flags & ~0x4)
    assert quiet[8:] == loud[8:] and len(quiet) == len(loud)
