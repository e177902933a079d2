"""chrony.conf from [ntp]: the router's own clock, and NTP for the LAN when `listen` asks for it.

Owns the text chronyd runs with (the reference rendered ntpd-rs; Debian ships chrony). Invariants:
- no [ntp] renders nothing (None); an [ntp] with an empty `listen` is client only (`port 0`):
  chronyd opens no NTP server socket at all;
- with `listen`, only LAN/simple subnets are `allow`ed, whatever address chronyd binds to;
- a source address or listen entry can never add a line of its own (spaces, newlines, a leading
  "-" are issues, not output);
- the same Config always renders the same bytes.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

import msgspec

from oxwrtd.core.render_doc import RenderDoc
from schema.config import Config, Lan, Ntp, Simple
from schema.errors import ConfigError, ConfigIssue, Path
from schema.values import parse_socket_addr

# Where the cookbook's chrony service binds its config from (mounted at /run/chrony/chrony.conf).
CHRONY_CONF: Final = "/run/oxwrt/chrony.conf"
FILE_MODE: Final = 0o644
# The service binds /var/lib/oxwrt/chrony here, so the frequency estimate and NTS cookies
# survive restarts and reboots (Debian's own paths for both).
DRIFT_FILE: Final = "/var/lib/chrony/chrony.drift"
NTS_DUMP_DIR: Final = "/var/lib/chrony"
# Step the clock when it is more than 1 s off during the first 3 updates: a router without an RTC
# boots with the build-time floor, often days behind, and slewing that at chrony's 83 ppm
# maximum would take weeks. Later it only slews, so running timers never see a jump.
MAKESTEP: Final = "makestep 1 3"
POLL_LIMITS: Final = (-6, 24)  # chrony's minpoll/maxpoll range (log2 seconds)
MAXSOURCES_MAX: Final = 16  # chrony's limit for a pool's maxsources
NTP_PORT: Final = 123

_HOST = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.:-]*[A-Za-z0-9_.])?$")


class Rendered(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    bind: tuple[str, ...]  # `bindaddress` values (empty: all addresses, or client only)
    port: int  # the NTP server port; 0 = client only
    warnings: tuple[ConfigIssue, ...]


def render(config: Config) -> Rendered | None:
    """chrony.conf for [ntp]; None without [ntp]; ConfigError for what chrony cannot be given."""
    ntp = config.ntp
    if ntp is None:
        return None
    out = RenderDoc()
    out.line("# chrony.conf rendered by oxwrtd from oxwrt.toml ([ntp]).")
    out.line("# Do not edit: every reload rewrites it.")
    _sources(ntp, out)
    out.line("")
    out.line(f"driftfile {DRIFT_FILE}")
    out.line(MAKESTEP)
    # The kernel copies system time to the RTC every 11 minutes where the board has one, so the
    # next boot starts close; a board without an RTC makes it a no-op.
    out.line("rtcsync")
    bind, port = _serve(config, ntp, out)
    if out.errors:
        raise ConfigError(out.errors)
    return Rendered(text=out.text(), bind=bind, port=port, warnings=tuple(out.warnings))


def check(config: Config) -> list[ConfigIssue]:
    """The issues `render` would raise, for a caller validating before it applies."""
    try:
        render(config)
    except ConfigError as exc:
        return exc.issues
    return []


def _sources(ntp: Ntp, out: RenderDoc) -> None:
    low, high = POLL_LIMITS
    for key, value in (("poll_min", ntp.poll_min), ("poll_max", ntp.poll_max)):
        if not low <= value <= high:
            out.err(("ntp", key), f"{key} must be {low}..{high} (log2 seconds; is {value})")
    if ntp.poll_min > ntp.poll_max:
        out.err(("ntp", "poll_min"), f"poll_min {ntp.poll_min} is above poll_max {ntp.poll_max}")
    # chrony has no global poll limits: each source line carries them.
    poll = f"minpoll {ntp.poll_min} maxpoll {ntp.poll_max}"
    out.line("")
    if not ntp.sources:
        out.line("# No [[ntp.sources]]: the clock is never set from the network.")
        out.warn(("ntp", "sources"), "no sources: the router's clock is never synchronised")
    nts = False
    for i, src in enumerate(ntp.sources):
        p: Path = ("ntp", "sources", i)
        if not _HOST.match(src.address):
            out.err((*p, "address"), f'"{src.address}" is not a host name or IP address')
            continue
        if src.mode == "pool":
            count = src.count if src.count is not None else 4  # chrony's own default
            if not 1 <= count <= MAXSOURCES_MAX:
                out.err((*p, "count"), f"count must be 1..{MAXSOURCES_MAX} (is {count})")
            out.line(f"pool {src.address} iburst maxsources {count} {poll}")
        elif src.mode in ("server", "nts"):
            if src.count is not None:
                out.err((*p, "count"), f'count is only used with mode "pool" ({src.mode})')
            suffix = " nts" if src.mode == "nts" else ""
            nts = nts or src.mode == "nts"
            out.line(f"server {src.address} iburst {poll}{suffix}")
        else:
            out.err((*p, "mode"), f'mode "{src.mode}" must be pool, server or nts')
    if nts:
        out.line(f"ntsdumpdir {NTS_DUMP_DIR}")
        # Certificates carry validity dates and the clock is wrong until the first update: the
        # first update may come from an NTS server whose certificate time was not checked.
        out.line("nocerttimecheck 1")


def _serve(config: Config, ntp: Ntp, out: RenderDoc) -> tuple[tuple[str, ...], int]:
    """`listen` -> chrony's serving directives. chrony has one NTP `port` for every address and
    binds at most one IPv4 and one IPv6 address (`bindaddress`); 0.0.0.0 / :: mean all. Who may
    ask is a separate list: `allow` for every LAN/simple subnet, so a WAN client is refused
    even where chronyd listens on every address."""
    out.line("")
    if not ntp.listen:
        out.line("# No [ntp].listen: client only, no NTP server socket.")
        out.line("port 0")
        return (), 0
    by_family: dict[int, list[tuple[int, str]]] = {4: [], 6: []}
    ports: set[int] = set()
    own = _own_addresses(config)
    for j, text in enumerate(ntp.listen):
        try:
            addr, port = parse_socket_addr(text)
        except ValueError as exc:
            out.err(("ntp", "listen", j), str(exc))
            continue
        ports.add(port)
        if not addr.is_unspecified and addr not in own:
            out.warn(
                ("ntp", "listen", j),
                f"{addr} is not the address of a LAN or simple network; chronyd cannot bind it"
                " unless another interface holds it",
            )
        by_family[addr.version].append((j, str(addr)))
    if len(ports) > 1:
        out.err(
            ("ntp", "listen"),
            f"chrony serves NTP on one port; listen names {', '.join(map(str, sorted(ports)))}",
        )
    port = min(ports) if ports else NTP_PORT
    bind: list[str] = []
    for version, entries in by_family.items():
        addrs = {a for _, a in entries}
        if len(addrs) == 1 and not ipaddress.ip_address(next(iter(addrs))).is_unspecified:
            bind.append(addrs.pop())
        elif len(addrs) > 1 and not any(ipaddress.ip_address(a).is_unspecified for a in addrs):
            out.warn(
                ("ntp", "listen", entries[1][0]),
                f"chrony binds at most one IPv{version} address, so it listens on every one;"
                " the `allow` list still answers LAN/simple clients only",
            )
    out.line("# Serve the LAN: these addresses and port, these clients only.")
    for bound in bind:
        out.line(f"bindaddress {bound}")
    out.line(f"port {port}")
    subnets = _lan_subnets(config)
    if not subnets:
        out.warn(("ntp", "listen"), "no LAN or simple network to serve: every client is refused")
    for subnet in subnets:
        out.line(f"allow {subnet}")
    return tuple(bind), port


def _routed(config: Config) -> list[Lan | Simple]:
    return [n for n in config.networks if isinstance(n, Lan | Simple)]


def _own_addresses(config: Config) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for net in _routed(config):
        for text in (net.address, net.ipv6_address):
            if text is not None:
                try:
                    found.add(ipaddress.ip_address(text))
                except ValueError:
                    continue  # validation names the bad address
    return found


def _lan_subnets(config: Config) -> list[str]:
    subnets: list[str] = []
    for net in _routed(config):
        pairs = [(net.address, net.prefix), (net.ipv6_address, net.ipv6_prefix)]
        for addr, prefix in pairs:
            if addr is None or prefix is None:
                continue
            try:
                subnet = str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
            except ValueError:
                continue  # validation names the bad address
            if subnet not in subnets:
                subnets.append(subnet)
    return subnets


def chronyd_argv(conf: str, binary: str = "/usr/sbin/chronyd") -> list[str]:
    """The command the cookbook's [[services]] entry runs (foreground, logs on stderr)."""
    return [binary, "-d", "-f", conf]


__all__ = [
    "CHRONY_CONF",
    "DRIFT_FILE",
    "FILE_MODE",
    "MAKESTEP",
    "Rendered",
    "check",
    "chronyd_argv",
    "render",
]
