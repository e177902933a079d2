"""Sans-IO rtnetlink codec for addresses and routes: ops to request bytes, dump/ack bytes to values.

Owns the wire layout of RTM_{NEW,DEL,GET}{ADDR,ROUTE} (linux/rtnetlink.h, linux/if_addr.h) so
the adapter can send a thousand requests in one write and read a dump without a per-message
library round trip. Invariants:
- every request carries a unique sequence number, so an error maps back to the op that caused
  it; the kernel reports every error whether or not NLM_F_ACK was asked (netlink_rcv_skb), so a
  batch needs an ack only on its last request (`quiet` strips it from the others);
- decoding never trusts lengths: a truncated message or attribute ends the walk, it never reads
  past the buffer.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections.abc import Iterator
from typing import Final

from oxwrtd.core.net import ROUTE_PROTO_OXWRT, Addr, Route

AF_INET: Final = 2
AF_INET6: Final = 10
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP: Final = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_ACK_TLVS: Final = 0x200  # on an ack: extended-ack attributes follow
NLMSGERR_ATTR_MSG: Final = 1
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_PERMANENT: Final = 0x80  # configured addresses; SLAAC/temporary ones lack it
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RTN_UNICAST: Final = 1
RT_TABLE_UNSPEC: Final = 0

ADD: Final = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
REPLACE: Final = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
DELETE: Final = NLM_F_REQUEST | NLM_F_ACK

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
# rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")
_WIDTH: Final = {AF_INET: 4, AF_INET6: 16}  # address bytes per family
_U32 = struct.Struct("=I")


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTA.size + len(payload)
    return _RTA.pack(length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body


def _pack(text: str) -> bytes:
    """Address bytes; dotted quads take a fast path (ipaddress costs ~25 us per address)."""
    parts = text.split(".")
    if len(parts) == 4 and all(
        p.isascii() and p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts
    ):
        return bytes(int(p) for p in parts)
    return ipaddress.ip_address(text).packed


def _family(version: int) -> int:
    return AF_INET if version == 4 else AF_INET6


def encode_addr(addr: Addr, index: int, seq: int, *, delete: bool = False) -> bytes:
    text, _, prefixlen = addr.cidr.partition("/")
    packed = _pack(text)
    body = _IFADDR.pack(AF_INET if len(packed) == 4 else AF_INET6, int(prefixlen), 0, 0, index)
    body += _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    return _message(RTM_DELADDR if delete else RTM_NEWADDR, DELETE if delete else ADD, seq, body)


def encode_route(
    route: Route, index: int, seq: int, *, delete: bool = False, replace: bool = False
) -> bytes:
    address, _, plen = route.dest.partition("/")
    dest = _pack(address)
    scope = RT_SCOPE_UNIVERSE if route.gateway else RT_SCOPE_LINK
    table = route.table if route.table < 256 else RT_TABLE_UNSPEC
    family = AF_INET if len(dest) == 4 else AF_INET6
    body = _RTMSG.pack(family, int(plen), 0, 0, table, ROUTE_PROTO_OXWRT, scope, RTN_UNICAST, 0)
    body += _attr(RTA_TABLE, _U32.pack(route.table)) + _attr(RTA_OIF, _U32.pack(index))
    body += _attr(RTA_PRIORITY, _U32.pack(route.metric))
    if int(plen) or any(dest):  # a default route carries no RTA_DST
        body += _attr(RTA_DST, dest)
    if route.gateway:
        body += _attr(RTA_GATEWAY, _pack(route.gateway))
    if delete:
        return _message(RTM_DELROUTE, DELETE, seq, body)
    return _message(RTM_NEWROUTE, REPLACE if replace else ADD, seq, body)


def quiet(request: bytes) -> bytes:
    """The request without NLM_F_ACK: silent on success, still answered on error."""
    (flags,) = struct.unpack_from("=H", request, 6)
    return request[:6] + struct.pack("=H", flags & ~NLM_F_ACK) + request[8:]


def dump_addrs_request(seq: int) -> bytes:
    return _message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, _IFADDR.pack(0, 0, 0, 0, 0))


def dump_routes_request(seq: int, version: int, protocol: int = ROUTE_PROTO_OXWRT) -> bytes:
    """With NETLINK_GET_STRICT_CHK on the socket the kernel itself filters by protocol (0: every
    route, whoever made it)."""
    body = _RTMSG.pack(_family(version), 0, 0, 0, 0, protocol, 0, 0, 0)
    return _message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def messages(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, whole message) for each complete message in `buf`."""
    offset = 0
    while offset + _HDR.size <= len(buf):
        length, kind, flags, seq, _pid = _HDR.unpack_from(buf, offset)
        if length < _HDR.size or offset + length > len(buf):
            return
        yield kind, flags, seq, buf[offset : offset + length]
        offset += (length + 3) & ~3


def attrs(buf: bytes, offset: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + _RTA.size <= len(buf):
        length, kind = _RTA.unpack_from(buf, offset)
        if length < _RTA.size or offset + length > len(buf):
            break
        found[kind & 0x3FFF] = buf[offset + _RTA.size : offset + length]
        offset += (length + 3) & ~3
    return found


def ack(message: bytes, flags: int) -> tuple[int, str]:
    """(errno, kernel text) of an NLMSG_ERROR message; errno 0 is success."""
    if len(message) < _HDR.size + 4:
        return errno.EBADMSG, "truncated netlink ack"
    (err,) = struct.unpack_from("=i", message, _HDR.size)
    if not err or not flags & NLM_F_ACK_TLVS:
        return -err, ""
    # after the error code: the refused message's header (capped), then the ext-ack TLVs
    found = attrs(message, _HDR.size + 4 + _HDR.size)
    text = found.get(NLMSGERR_ATTR_MSG, b"").split(b"\0", 1)[0]
    return -err, text.decode(errors="replace")


def decode_addr(message: bytes) -> tuple[int, str, bool] | None:
    """(link index, canonical "address/prefix", owned-kind) of an RTM_NEWADDR.

    owned-kind is False for what the kernel or the network configured on its own: IPv6
    link-local addresses and addresses without IFA_F_PERMANENT (SLAAC, privacy addresses)."""
    if len(message) < _HDR.size + _IFADDR.size:
        return None
    family, prefixlen, flags, _scope, index = _IFADDR.unpack_from(message, _HDR.size)
    found = attrs(message, _HDR.size + _IFADDR.size)
    raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
    if raw is None or len(raw) != _WIDTH.get(family):
        return None
    if IFA_FLAGS in found and len(found[IFA_FLAGS]) == 4:
        (flags,) = _U32.unpack(found[IFA_FLAGS])
    address = ipaddress.ip_address(raw)
    configured = family == AF_INET or (bool(flags & IFA_F_PERMANENT) and not address.is_link_local)
    return index, f"{address}/{prefixlen}", configured


def decode_route(message: bytes) -> tuple[int, Route] | None:
    """(protocol, route with link = str(oif index)) of an RTM_NEWROUTE; the caller names links."""
    if len(message) < _HDR.size + _RTMSG.size:
        return None
    family, dst_len, _src, _tos, table, proto, _scope, _type, _flags = _RTMSG.unpack_from(
        message, _HDR.size
    )
    found = attrs(message, _HDR.size + _RTMSG.size)
    width = _WIDTH.get(family)
    if width is None or any(
        len(found.get(k, bytes(width))) != width for k in (RTA_DST, RTA_GATEWAY)
    ):
        return None
    default = "0.0.0.0" if family == AF_INET else "::"
    dest = str(ipaddress.ip_address(found[RTA_DST])) if RTA_DST in found else default
    gateway = str(ipaddress.ip_address(found[RTA_GATEWAY])) if RTA_GATEWAY in found else None

    def u32(kind: int, fallback: int) -> int:
        value = found.get(kind)
        return _U32.unpack(value)[0] if value is not None and len(value) == 4 else fallback

    route = Route(
        dest=f"{dest}/{dst_len}",
        link=str(u32(RTA_OIF, 0)),
        gateway=gateway,
        metric=u32(RTA_PRIORITY, 0),
        table=u32(RTA_TABLE, table),
    )
    return proto, route


__all__ = [
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "RTM_NEWADDR",
    "RTM_NEWROUTE",
    "ack",
    "decode_addr",
    "decode_route",
    "dump_addrs_request",
    "dump_routes_request",
    "encode_addr",
    "encode_route",
    "messages",
    "quiet",
]
