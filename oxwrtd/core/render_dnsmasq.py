"""dnsmasq.conf from the config: LAN DHCP for every LAN/simple network, DNS forwarding per [dns].

Owns the text dnsmasq runs with, and the warnings about what it cannot do as configured.
Invariants:
- dnsmasq listens only on addresses of LAN/simple networks (never a WAN's): `listen-address` per
  address with `bind-dynamic`, and `except-interface` for every WAN as a second fence;
- with [dhcp], every LAN/simple network gets a pool: the one `[dhcp].network` names gets the
  configured pool/gateway/DNS, every other gets base+100..base+250 (the reference's auto pool)
  with itself as gateway; WireGuard links (no broadcast, no DHCP) and subnets under /30 are
  skipped, each with a line saying so;
- an encrypted upstream (https/tls/quic) is never rendered as plain DNS: dnsmasq cannot speak
  it, and sending those queries in clear would silently undo what the operator asked for; it is
  left out with a comment and a warning;
- the same Config (and options) always renders the same bytes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Final

import msgspec

from schema.config import Config, Dhcp, Lan, Simple, Wan
from schema.errors import ConfigIssue, Path
from schema.values import parse_duration

# The cookbook's dnsmasq service binds /var/lib/oxwrt/dnsmasq onto dnsmasq's default lease dir.
DEFAULT_LEASE_FILE: Final = "/var/lib/misc/dnsmasq.leases"
AUTO_POOL_FIRST: Final = 100  # reference auto pool: base + 100 ... base + 250
AUTO_POOL_LAST: Final = 250
MIN_DHCP_LEASE_S: Final = 120  # dnsmasq raises shorter leases to two minutes
DNS_PORT: Final = 53  # what DHCP clients use; they cannot be told another port
ENCRYPTED_PROTOCOLS: Final = frozenset({"https", "tls", "quic"})
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class DnsmasqOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where dnsmasq keeps its state on this machine (not part of the config)."""

    lease_file: str = DEFAULT_LEASE_FILE
    pid_file: str | None = None  # None: no pid file (a supervisor already knows the PID)
    user: str | None = None  # None: dnsmasq's compiled-in default
    # DNS servers the WAN lease offered, used only when [dns] lists no upstream at all.
    lease_dns: tuple[str, ...] = ()


class Pool(msgspec.Struct, frozen=True, kw_only=True):
    """One network dnsmasq hands addresses on."""

    network: str
    tag: str
    start: str
    end: str
    netmask: str
    gateway: str
    dns: tuple[str, ...]
    primary: bool


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    pools: tuple[Pool, ...]
    listen: tuple[str, ...]
    upstreams: tuple[str, ...]  # `server=` values
    warnings: tuple[ConfigIssue, ...]  # for status; the config is valid, the result is partial


def render(config: Config, options: DnsmasqOptions | None = None) -> Rendered:
    opts = options or DnsmasqOptions()
    out = _Out()
    routed = [(i, n) for i, n in enumerate(config.networks) if isinstance(n, Lan | Simple)]
    own_addrs = {n.address for _, n in routed}
    wan_ifaces = sorted({n.iface for n in config.networks if isinstance(n, Wan)})

    out.line("# dnsmasq.conf rendered by oxwrtd from oxwrt.toml ([dns], [dhcp], [[networks]]).")
    out.line("# Do not edit: every reload rewrites it.")
    out.line("bind-dynamic")
    for iface in wan_ifaces:
        out.line(f"except-interface={iface}")
    if opts.pid_file is None:
        out.line("pid-file")  # without a value: write none
    else:
        out.line(f"pid-file={opts.pid_file}")
    if opts.user is not None:
        out.line(f"user={opts.user}")

    dns_listen = _dns(config, opts, routed, own_addrs, out)
    pools = _dhcp(config, routed, dns_listen, out, opts) if config.dhcp is not None else []

    listen: list[str] = []
    for addr in [*dns_listen, *(_address_of(config, p.network) for p in pools)]:
        if addr not in listen:
            listen.append(addr)
    out.line("")
    out.line("# Listen only on the router's own LAN/simple addresses.")
    for addr in listen:
        if addr not in dns_listen:
            out.line(f"# {addr}: for DHCP; dnsmasq then answers DNS here too")
        out.line(f"listen-address={addr}")
    return Rendered(
        text=out.text(),
        pools=tuple(pools),
        listen=tuple(listen),
        upstreams=tuple(out.servers),
        warnings=tuple(out.warnings),
    )


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[ConfigIssue] = []
        self.servers: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(ConfigIssue(path=path, message=message))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ---------------------------------------------------------------- DNS


def _dns(
    config: Config,
    opts: DnsmasqOptions,
    routed: list[tuple[int, Lan | Simple]],
    own_addrs: set[str],
    out: _Out,
) -> list[str]:
    """Render the DNS half; return the addresses DNS is meant to answer on."""
    out.line("")
    dns = config.dns
    if dns is None:
        out.line("# No [dns]: DHCP only.")
        out.line("port=0")
        return []
    out.line("# DNS: a caching forwarder for the LAN.")
    out.line(f"port={dns.listen_port}")
    out.line("no-resolv")  # upstreams come from the config, never the router's resolv.conf
    out.line("domain-needed")  # plain names never leak upstream
    out.line("bogus-priv")  # nor reverse lookups of private ranges
    listen: list[str] = []
    for j, addr in enumerate(dns.listen_v4):
        if addr == "0.0.0.0":
            listen += [n.address for _, n in routed if n.address not in listen]
        elif addr in own_addrs:
            if addr not in listen:
                listen.append(addr)
        else:
            out.warn(
                ("dns", "listen_v4", j),
                f"{addr} is not the address of a LAN or simple network; dnsmasq does not listen"
                " there (it never listens on a WAN)",
            )
    for i, up in enumerate(dns.upstreams):
        port = up.port if up.port is not None else DNS_PORT
        if up.protocol in ENCRYPTED_PROTOCOLS:
            out.line(
                f"# {up.ip} ({up.protocol}) left out: dnsmasq cannot speak DNS over"
                f" {up.protocol.upper()}, and plain DNS would drop the encryption asked for."
            )
            out.warn(
                ("dns", "upstreams", i, "protocol"),
                f'dnsmasq cannot forward over "{up.protocol}"; upstream {up.ip} is not used'
                " (put a DoH/DoT forwarder in front and list it as udp)",
            )
            continue
        if up.protocol == "tcp":
            out.line(f"# {up.ip}: dnsmasq forwards over TCP for TCP queries and truncated replies")
        _server(out, up.ip, port)
    if not out.servers and dns.upstreams:
        out.warn(("dns", "upstreams"), "no upstream dnsmasq can use: only local names resolve")
    if not dns.upstreams:
        if opts.lease_dns:
            out.line("# No [[dns.upstreams]]: forwarding to the DNS servers of the WAN lease.")
            for addr in opts.lease_dns:
                _server(out, addr, DNS_PORT)
        else:
            out.line("# No [[dns.upstreams]] and no WAN lease DNS yet: only local names resolve.")
    return listen


def _server(out: _Out, ip: str, port: int) -> None:
    value = f"{ip}#{port}"
    out.servers.append(value)
    out.line(f"server={value}")


# ---------------------------------------------------------------- DHCP


def _dhcp(
    config: Config,
    routed: list[tuple[int, Lan | Simple]],
    dns_listen: list[str],
    out: _Out,
    opts: DnsmasqOptions,
) -> list[Pool]:
    dhcp = config.dhcp
    assert dhcp is not None
    lease_s = parse_duration(dhcp.lease_time)
    if lease_s < MIN_DHCP_LEASE_S:
        out.warn(
            ("dhcp", "lease_time"),
            f"dnsmasq raises leases shorter than {MIN_DHCP_LEASE_S}s to {MIN_DHCP_LEASE_S}s",
        )
    tunnels = {w.device for w in config.wireguard} | {v.iface for v in config.vpn_client}
    pools: list[Pool] = []
    notes: list[str] = []
    for i, net in routed:
        primary = net.name == dhcp.network
        if not primary and net.device in tunnels:
            notes.append(
                f"# {net.name}: {net.device} is a WireGuard tunnel (no broadcast, no DHCP)."
            )
            continue
        pool = _pool(
            net, dhcp if primary else None, dns_listen, {p.tag for p in pools}, config, out, i
        )
        if pool is None:
            notes.append(f"# {net.name}: /{net.prefix} is too small for a DHCP pool.")
        else:
            pools.append(pool)
    out.line("")
    out.line("# DHCP: [dhcp].network with its own settings, every other LAN/simple network with")
    out.line("# the automatic pool .100-.250 and the router as gateway and DNS.")
    out.line(f"dhcp-leasefile={opts.lease_file}")
    out.line("dhcp-authoritative")  # the only DHCP server on these links: answer at once
    # dnsmasq's default cap is 1000 leases in all; a large pool must not hit it.
    out.line(f"dhcp-lease-max={max(1000, sum(_size(p) for p in pools))}")
    for note in notes:
        out.line(note)
    for pool in pools:
        served = config.network(pool.network)
        assert isinstance(served, Lan | Simple)
        out.line(f"# {served.name} ({served.device}){' = [dhcp].network' if pool.primary else ''}")
        out.line(f"dhcp-range=set:{pool.tag},{pool.start},{pool.end},{pool.netmask},{lease_s}")
        out.line(f"dhcp-option=tag:{pool.tag},option:router,{pool.gateway}")
        # An empty value sends no option 6: better no DNS server than one that never answers.
        out.line(f"dhcp-option=tag:{pool.tag},option:dns-server{_csv(pool.dns)}")
    return pools


def _size(pool: Pool) -> int:
    return int(ipaddress.IPv4Address(pool.end)) - int(ipaddress.IPv4Address(pool.start)) + 1


def _pool(  # noqa: PLR0917 - one call site, every argument a distinct role
    net: Lan | Simple,
    dhcp: Dhcp | None,
    dns_listen: list[str],
    used: set[str],
    config: Config,
    out: _Out,
    index: int,
) -> Pool | None:
    router = ipaddress.IPv4Address(net.address)
    subnet = ipaddress.IPv4Network(f"{net.address}/{net.prefix}", strict=False)
    if dhcp is not None and dhcp.pool_start is not None and dhcp.pool_end is not None:
        start, end = ipaddress.IPv4Address(dhcp.pool_start), ipaddress.IPv4Address(dhcp.pool_end)
        if start <= router <= end:
            out.warn(
                ("dhcp", "pool_start"),
                f"the pool {start}-{end} holds the router's own address {router}",
            )
    else:
        auto = _auto_pool(subnet, router)
        if auto is None:
            where: Path = ("dhcp", "network") if dhcp is not None else ("networks", index)
            out.warn(where, f"{net.name} (/{net.prefix}) is too small for a DHCP pool; no DHCP")
            return None
        start, end = auto
    gateway = dhcp.gateway if dhcp is not None and dhcp.gateway is not None else net.address
    dns_answers_here = net.address in dns_listen and config.dns is not None
    if dhcp is not None and dhcp.dns_servers:
        dns: tuple[str, ...] = tuple(dhcp.dns_servers)
    elif dns_answers_here:
        dns = (net.address,)
        assert config.dns is not None
        if config.dns.listen_port != DNS_PORT:
            out.warn(
                ("dns", "listen_port"),
                f"DHCP clients of {net.name} ask {net.address} on port {DNS_PORT}, but dnsmasq"
                f" answers on {config.dns.listen_port}",
            )
    else:
        dns = ()
        where = ("dhcp", "dns_servers") if dhcp is not None else ("dns", "listen_v4")
        why = f"does not answer on {net.address}" if config.dns else "is off (no [dns])"
        out.warn(
            where if config.dns or dhcp is not None else ("dns",),
            f"{net.name} gets no DNS server by DHCP: the router's DNS {why}",
        )
    return Pool(
        network=net.name,
        tag=_tag(net.name, index, used),
        start=str(start),
        end=str(end),
        netmask=str(subnet.netmask),
        gateway=gateway,
        dns=dns,
        primary=dhcp is not None,
    )


def _auto_pool(
    subnet: ipaddress.IPv4Network, router: ipaddress.IPv4Address
) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
    """base+100 .. base+250, clamped to the usable hosts and kept clear of the router's address.
    A subnet with no room above .100 (a /26 or smaller) uses its usable hosts after the router's
    address instead, rather than the reference's empty or inverted range."""
    if subnet.prefixlen > 30:
        return None
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    base = subnet.network_address
    if base + AUTO_POOL_FIRST <= last:
        start, end = base + AUTO_POOL_FIRST, min(base + AUTO_POOL_LAST, last)
    else:
        start, end = first, last
    if start <= router <= end:
        if int(router) - int(start) >= int(end) - int(router):
            end = router - 1
        else:
            start = router + 1
    return (start, end) if start <= end else None


def _tag(name: str, index: int, used: set[str]) -> str:
    """dnsmasq tags are bare words: the network name when it is one, else its position."""
    tag = name if _TAG.match(name) else f"net{index}"
    return tag if tag not in used else f"{tag}-{index}"


def _address_of(config: Config, name: str) -> str:
    net = config.network(name)
    assert isinstance(net, Lan | Simple)
    return net.address


def _csv(items: Sequence[str]) -> str:
    return "".join(f",{item}" for item in items)


def dnsmasq_argv(conf: str, binary: str = "/usr/sbin/dnsmasq") -> list[str]:
    """The command the cookbook's [[services]] entry runs (foreground, logs on stderr)."""
    return [binary, "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}"]


__all__ = [
    "DEFAULT_LEASE_FILE",
    "ENCRYPTED_PROTOCOLS",
    "DnsmasqOptions",
    "Pool",
    "Rendered",
    "dnsmasq_argv",
    "render",
]
